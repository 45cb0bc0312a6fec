"""The one crash-safe write path of ckptcompat: every file the library writes goes through here.

One durability rule: write a temporary file in the destination's directory, fsync it,
rename it over the destination, fsync the directory. A reader (or a crash) sees the old
file or the new one, never a half-written one. Rules shared by every writer:

- Temporary names are ``.tmp-<hex>-<name>`` beside the destination: they keep the name's
  ending (writers that pick the format from it still work) and start with
  :data:`TEMP_PREFIX`, which the checkpoint store cleans up after a crash.
- Files get the permissions the umask gives (0644 under umask 022), never ``mkstemp``'s 0600.
- On any failure the temporary file is removed and the destination is unchanged.
- An :class:`OSError` becomes :class:`~ckptcompat.errors.StoreWriteError` naming the path,
  the errno and what to do. A failed directory fsync is reported too: only ``EINVAL`` is
  tolerated (logged at debug level), the answer of file systems that cannot fsync a
  directory at all, where there is nothing more to flush. On Windows directories cannot be
  opened, so there is no directory fsync.
- ``durable=False`` skips the fsyncs (not the temporary file, the rename nor the cleanup):
  for writers inside a checkpoint-store commit, which fsyncs and checksums every file and
  directory itself before the checkpoint becomes visible.

Only this module renames files (a source-scan test keeps it that way).
"""

from __future__ import annotations

import errno as _errno
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, IO, Union

from ckptcompat.errors import CkptCompatError, StoreWriteError

__all__ = [
    "TEMP_PREFIX",
    "atomic_path",
    "atomic_replace",
    "atomic_write",
    "fsync_dir",
    "fsync_file",
    "remove_temp",
    "scratch_dir",
    "temp_name",
    "write_error",
]

logger = logging.getLogger(__name__)

#: every temporary name ckptcompat creates starts with this; readers never look inside them
TEMP_PREFIX = ".tmp-"

PathLike = Union[str, "os.PathLike[str]"]
Data = Union[bytes, bytearray, memoryview, str, Callable[[IO[bytes]], Any]]

_UNCHANGED = ("nothing was replaced: the files and checkpoints already there are intact")


def write_error(exc: OSError, what: str, path: PathLike, *, hint: str | None = None
                ) -> StoreWriteError:
    """A :class:`StoreWriteError` describing ``exc`` (raise it ``from exc``); ``hint``
    overrides the default advice, which depends on the errno."""
    code = exc.errno
    if hint is None:
        if code in (_errno.ENOSPC, getattr(_errno, "EDQUOT", -1)):
            hint = ("the disk (or quota) is full: free some space or keep fewer checkpoints "
                    f"(Retention(keep_last=...)); {_UNCHANGED}")
        elif code in (_errno.EROFS, _errno.EACCES, _errno.EPERM):
            hint = "the directory is not writable: check its permissions and mount"
        else:
            hint = _UNCHANGED
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StoreWriteError(f"{what} failed: {reason} (errno {code})", path=path, hint=hint,
                           errno=code)


def _typed(exc: OSError, what: str, path: PathLike) -> OSError:
    """``exc`` itself when it is already typed, else a :class:`StoreWriteError` for it."""
    return exc if isinstance(exc, CkptCompatError) else write_error(exc, what, path)


def temp_name(path: PathLike) -> Path:
    """A fresh temporary name beside ``path`` that keeps its ending."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


def fsync_file(path: PathLike) -> None:
    """Flush a written file (or every file and directory of a written tree) to disk."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in sorted(files):
                    _fsync_fd_of(Path(root) / name)
            for root, dirs, _ in os.walk(path, topdown=False):
                for name in sorted(dirs):
                    fsync_dir(Path(root) / name)
            fsync_dir(path)
            return
        _fsync_fd_of(path)
    except OSError as exc:
        raise _typed(exc, "flushing the file to disk", path) from exc


def _fsync_fd_of(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: PathLike) -> None:
    """fsync a directory so that renames and new entries in it survive a power loss.

    Raises :class:`StoreWriteError` when it fails, except ``EINVAL`` (the file system cannot
    fsync directories at all; logged) and on Windows (directories cannot be opened).
    """
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == _errno.EINVAL:
            logger.debug("%s: the file system cannot fsync directories (%s)", path, exc)
            return
        raise write_error(exc, "flushing the directory to disk", path,
                          hint="the directory entry may not survive a power loss: check the "
                               "disk and retry the save") from exc


def atomic_replace(src: PathLike, dst: PathLike, *, durable: bool = True,
                   overwrite: bool = True) -> None:
    """Rename ``src`` (a file or directory) to ``dst`` in one step; with ``durable`` fsync
    the directory (both directories when they differ) afterwards.

    ``overwrite=False`` uses :func:`os.rename`, which refuses to replace a non-empty
    directory (callers check that ``dst`` does not exist). Failures raise
    :class:`StoreWriteError`; ``src`` and ``dst`` are then unchanged.
    """
    src, dst = Path(src), Path(dst)
    try:
        if overwrite:
            os.replace(src, dst)
        else:
            os.rename(src, dst)
    except OSError as exc:
        raise _typed(exc, f"renaming {src.name} into place", dst) from exc
    if durable:
        fsync_dir(dst.parent)
        if src.parent.resolve() != dst.parent.resolve():
            fsync_dir(src.parent)


def remove_temp(path: PathLike) -> None:
    """Remove a temporary file or directory; best effort (a warning when it stays)."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - the store removes .tmp- names on open
        logger.warning("could not remove temporary %s: %s", path, exc)


def _create(tmp: Path) -> None:
    """Reserve ``tmp`` exclusively, with the umask's permissions (0o666 & ~umask)."""
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0),
                     0o666))


@contextmanager
def atomic_path(path: PathLike, *, durable: bool = True, synced: bool = False,
                create: bool = True, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that need a file name (h5py,
    ``zipfile``, ``savefig``, ``model.save``); on normal exit move it into place.

    ``create``: the temporary file exists (empty, umask permissions) when yielded; with
    ``create=False`` only the name is reserved, for writers that make a directory there.
    ``synced=True``: the writer has fsync'ed the file itself (only the directory is
    flushed here). ``overwrite=False`` refuses to replace
    an existing directory. On an exception the temporary is removed, ``path`` is unchanged
    and an :class:`OSError` is raised as :class:`StoreWriteError`.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        if create:
            _create(tmp)
        yield tmp
        if durable and not synced:
            fsync_file(tmp)
        atomic_replace(tmp, path, durable=durable, overwrite=overwrite)
    except OSError as exc:
        remove_temp(tmp)
        raise _typed(exc, f"writing {path.name}", path) from exc
    except BaseException:
        remove_temp(tmp)
        raise


@contextmanager
def scratch_dir(path: PathLike) -> Iterator[Path]:
    """Yield a new empty directory beside ``path`` (umask permissions), removed on exit.

    For writers that prepare several files and move them into place one by one with
    :func:`atomic_replace` (TF bundles). An :class:`OSError` is raised as
    :class:`StoreWriteError`.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        tmp.mkdir()
        yield tmp
    except OSError as exc:
        raise _typed(exc, f"writing {path.name}", path) from exc
    finally:
        remove_temp(tmp)


def atomic_write(path: PathLike, data: Data, *, durable: bool = True,
                 check: Callable[[Path], Any] | None = None, encoding: str = "utf-8") -> Path:
    """Replace ``path`` by ``data`` crash-safely; return ``path``.

    ``data``: bytes, text (written with ``encoding``) or a callback that writes into the
    open binary file. ``check(tmp)`` runs on the complete temporary file before the rename
    (read-back verification); an exception from it leaves ``path`` unchanged.
    """
    path = Path(path)
    with atomic_path(path, durable=durable, synced=True) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode(encoding) if isinstance(data, str) else data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
    return path
