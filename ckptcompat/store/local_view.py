"""Local copies of remote checkpoints, for the readers (``resume``, ``read``, ``inspect``, ``ls``).

One job: :func:`localize` turns a location into a local path the existing readers can use.
A local path (or ``file://`` URL) is returned as it is. For an fsspec URL:

- a ckptcompat store: its committed checkpoints (those the remote manifest lists) are
  downloaded into the private mirror of a read-only
  :class:`~ckptcompat.store.remote_store.RemoteCheckpointStore`; the local manifest is the
  remote one, so the local readers check every sha256 and fall back past damaged ones.
  With ``lazy=True`` only the manifest is downloaded, and :func:`materialize` fetches the
  one checkpoint a reader picked (``resume`` reads one checkpoint, whatever the store holds);
- a checkpoint folder of such a store (``.../ckpt-000003-e0003-s000000``): the same, inside;
- anything else (a file, a TF bundle prefix, a foreign folder): downloaded into a temporary
  folder.

The cache is bounded: the copies of the :data:`MAX_COPIES` most recently used URLs are kept
(a second read of an unchanged store downloads nothing), older ones are removed, and every
copy is removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ckptcompat.errors import CheckpointNotFoundError
from ckptcompat.store.urls import check_available, is_remote, local_path

__all__ = ["MAX_COPIES", "localize", "materialize", "clear"]

MAX_COPIES = 2
#: url -> (local path, cleanup, the read-only store of a store copy or None)
_COPIES: OrderedDict[str, tuple[Path, Callable[[], None], Any]] = OrderedDict()


def clear() -> None:
    """Remove every local copy."""
    while _COPIES:
        _, (_, cleanup, _) = _COPIES.popitem(last=False)
        cleanup()


atexit.register(clear)


def _remember(url: str, path: Path, cleanup: Callable[[], None], view: Any = None) -> Path:
    _COPIES[url] = (path, cleanup, view)
    _COPIES.move_to_end(url)
    while len(_COPIES) > MAX_COPIES:
        _, (_, old, _) = _COPIES.popitem(last=False)
        old()
    return path


def _store_copy(url: str, lazy: bool = False) -> Path:
    from ckptcompat.store.remote_store import RemoteCheckpointStore

    cached = _COPIES.pop(url, None)
    view = cached[2] if cached else None
    if not isinstance(view, RemoteCheckpointStore):
        if cached:
            cached[1]()
        view = RemoteCheckpointStore(url)
    view.drop_unlisted()  # also pulls the current remote manifest
    for entry in [] if lazy else view.checkpoints():
        view.fetch(entry)
    return _remember(url, view.directory, view.close, view)


def _plain_copy(url: str) -> Path:
    from ckptcompat.store.remote import RemoteFiles

    files = RemoteFiles(url)
    fs, root = files.fs, files.root
    name = root.rsplit("/", 1)[-1] or "checkpoint"
    tmp = Path(tempfile.mkdtemp(prefix="ckptcompat-remote-"))
    try:
        if fs.isdir(root):
            fs.get(root + "/", str(tmp / name), recursive=True)
        elif fs.exists(root):
            fs.get(root, str(tmp / name))
        else:  # a TF bundle prefix: <prefix>.index, <prefix>.data-*
            siblings = fs.glob(f"{root}.*")
            if not siblings:
                raise CheckpointNotFoundError("no such file, folder or bundle prefix", path=url,
                                              hint="check the URL")
            for sibling in siblings:
                fs.get(sibling, str(tmp / str(sibling).rsplit("/", 1)[-1]))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = _COPIES.pop(url, None)
    if old:
        old[1]()
    return _remember(url, tmp / name, lambda: shutil.rmtree(tmp, ignore_errors=True))


def materialize(path: str | os.PathLike[str]) -> None:
    """Download the store checkpoint at ``path`` (a folder of a lazily localized store's
    mirror) if it is not local yet; any other path is left as it is."""
    path = Path(path)
    for _, _, view in list(_COPIES.values()):
        if view is not None and path.parent == view.directory and not path.exists():
            listed = {e.name: e for e in view.checkpoints()}
            if path.name in listed:
                view.fetch(listed[path.name])
            return


def localize(location: str | os.PathLike[str], *, lazy: bool = False) -> Path:
    """A local path holding what ``location`` names (see the module docstring); ``lazy``: of
    a store, only its manifest (the caller fetches what it reads with :func:`materialize`).

    Raises :class:`~ckptcompat.errors.MissingDependencyError` when fsspec or the URL's
    protocol package is missing (nothing is created), and
    :class:`~ckptcompat.errors.CheckpointNotFoundError` when nothing is at the URL.
    """
    if not is_remote(location):
        return local_path(location)
    url = str(location).rstrip("/")
    check_available(url)
    from ckptcompat.store.remote import RemoteFiles

    if RemoteFiles(url).read_manifest() is not None:
        return _store_copy(url, lazy)
    parent, _, name = url.rpartition("/")
    if name.startswith("ckpt-") and "://" in parent and \
            RemoteFiles(parent).read_manifest() is not None:
        return _store_copy(parent, lazy) / name
    return _plain_copy(url)
