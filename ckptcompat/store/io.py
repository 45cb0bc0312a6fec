"""Low-level file operations of the checkpoint store: hashing, flushing trees, listing.

Everything here is deterministic (listings are sorted, never in ``os.listdir`` order). The
crash-safe writes themselves (temp file, fsync, rename, fsync dir) and their errors are
:mod:`ckptcompat._atomic`'s, re-exported here for the store's modules.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

from ckptcompat._atomic import TEMP_PREFIX, atomic_write, fsync_dir, fsync_file, write_error

__all__ = [
    "AUX_PREFIX",
    "TEMP_PREFIX",
    "atomic_write_bytes",
    "fsync_dir",
    "fsync_tree",
    "hash_file",
    "is_temp_name",
    "list_files",
    "remove_tree",
    "write_error",
]

logger = logging.getLogger(__name__)

#: Folders of a store named ``.aux-<name>`` belong to the run's callbacks (the best weights of
#: ``EarlyStopping``, each a store of its own): not checkpoints of this store, not foreign.
AUX_PREFIX = ".aux-"

_CHUNK = 4 << 20


def is_temp_name(name: str) -> bool:
    """Whether ``name`` (a directory entry of a store) is one of the store's temporaries."""
    return name.startswith(TEMP_PREFIX)


def hash_file(path: str | os.PathLike[str], *, fsync: bool = False) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file's bytes; with ``fsync`` also flush it to disk."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        for n in iter(lambda: handle.readinto(buffer), 0):
            digest.update(view[:n])  # releases the GIL: overlaps with a concurrent fsync
            size += n
        if fsync:
            os.fsync(handle.fileno())
    return size, digest.hexdigest()


def _fsync_files(paths: list[Path], errors: list[BaseException]) -> None:
    try:
        for path in paths:
            fsync_file(path)
    except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread
        errors.append(exc)


def list_files(root: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Regular files and sub-directories under ``root``, as sorted POSIX relative paths.

    Symbolic links and other special files are returned in neither list but raise
    :class:`ValueError`, since a checkpoint must be self-contained.
    """
    root = Path(root)
    files: list[str] = []
    dirs: list[str] = []
    pending = [root]
    while pending:
        current = pending.pop()
        for name in sorted(os.listdir(current)):
            full = current / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                raise ValueError(f"{rel} is a symbolic link; checkpoints must hold plain files")
            if full.is_dir():
                dirs.append(rel)
                pending.append(full)
            elif full.is_file():
                files.append(rel)
            else:
                raise ValueError(f"{rel} is not a regular file")
    return sorted(files), sorted(dirs)


def fsync_tree(root: str | os.PathLike[str],
               known: Mapping[str, tuple[int, str]] | None = None) -> dict[str, tuple[int, str]]:
    """fsync every file and directory under ``root``; return ``rel path -> (size, sha256)``.

    The files are flushed on a helper thread while this one hashes them (from the page
    cache), so a save costs about max(flush, hash) rather than their sum. ``known``: ``rel
    path -> (size, sha256)`` of files hashed while they were written; only their size is
    checked here.
    """
    root = Path(root)
    files, dirs = list_files(root)
    errors: list[BaseException] = []
    flusher = threading.Thread(target=_fsync_files, args=([root / rel for rel in files], errors),
                               name="ckptcompat-fsync", daemon=True)
    flusher.start()
    try:
        records = {}
        for rel in files:
            given = (known or {}).get(rel)
            if given is not None and os.path.getsize(root / rel) == given[0]:
                records[rel] = (int(given[0]), str(given[1]))
            else:
                records[rel] = hash_file(root / rel)
    finally:
        flusher.join()
    if errors:
        raise errors[0]
    for rel in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        fsync_dir(root / rel)
    fsync_dir(root)
    return records


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` crash-safely (see :func:`ckptcompat._atomic.atomic_write`).

    On failure ``path`` is unchanged, the temp file is removed and a
    :class:`~ckptcompat.errors.StoreWriteError` is raised.
    """
    atomic_write(path, data)


def remove_tree(path: str | os.PathLike[str]) -> bool:
    """Remove a file or directory tree; log (never raise) on failure; True when it is gone."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        logger.warning("could not remove %s (%s); the next writer will retry", path, exc)
        return False
    return True
