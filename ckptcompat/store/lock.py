"""The single-writer lock of a checkpoint store: ``.ckptcompat.lock``.

The lock file is created with ``O_CREAT | O_EXCL`` and holds ``{"pid", "host", "time"}``.
While held, the writer also keeps an exclusive ``flock`` on it (where the platform has
``fcntl``). Ownership is the OS lock, not the file's content: a lock file whose ``flock`` can
be taken is stale whatever pid or host it names (a job rescheduled on another host of a
shared file system, a restarted container whose trainer is pid 1 again), and is rewritten in
place by the one process that gets the ``flock``. The content only names the holder in
messages. Without ``fcntl`` a lock is stale only when its pid is dead on this host.
The lock is released on :meth:`StoreLock.release`, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ckptcompat import _bounded
from ckptcompat.store.io import write_error
from ckptcompat.errors import CorruptCheckpointError, StoreLockedError, StoreWriteError

try:  # pragma: no cover - fcntl is absent on Windows only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "StoreLock", "lock_is_free", "pid_alive", "read_holder", "is_stale"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".ckptcompat.lock"
_ATTEMPTS = 5
#: A lock file is ~80 bytes of flat JSON; anything bigger or nested is not ours.
MAX_LOCK_BYTES = 4096
_MAX_LOCK_DEPTH = 2
#: Largest process id accepted (Linux caps pid_max at 2**22; a C ``pid_t`` is 32-bit).
MAX_PID = 2**31 - 1


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as alive)."""
    if pid <= 0 or pid > MAX_PID:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. pid out of range
        return False
    return True


def read_holder(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The lock file's content, or ``None`` when it is absent, empty, not valid JSON, over
    :data:`MAX_LOCK_BYTES`, nested, or holds a ``pid`` that is no plausible process id."""
    try:
        data = _bounded.load_file(path, what="the store lock", max_bytes=MAX_LOCK_BYTES,
                                  max_depth=_MAX_LOCK_DEPTH)
    except (OSError, CorruptCheckpointError) as exc:
        if not isinstance(exc, FileNotFoundError):
            logger.debug("%s: unreadable lock file: %s", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 < pid <= MAX_PID):
        logger.debug("%s: implausible pid in the lock file", path)
        return None
    return data


def is_stale(holder: dict[str, Any] | None) -> bool:
    """Whether a lock held by ``holder`` is stale by its content alone: its process is dead
    on this host (the test used where the platform has no ``flock``)."""
    if holder is None:
        return False
    pid = holder.get("pid")
    if (holder.get("host") != socket.gethostname() or not isinstance(pid, int)
            or isinstance(pid, bool) or not 0 < pid <= MAX_PID):
        return False  # another host, or no plausible pid: nobody can tell it is dead
    return not pid_alive(pid)


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "an unknown process (the lock file is empty or unreadable)"
    return f"pid {holder.get('pid')} on host {holder.get('host')!r} since {holder.get('time')}"


def lock_is_free(path: str | os.PathLike[str]) -> bool | None:
    """Whether the lock file at ``path`` exists and nobody holds its OS lock (a stale lock).

    Probes with a shared, non-blocking ``flock`` released at once; ``None`` when the file is
    absent or unreadable. Without ``fcntl``, falls back to :func:`is_stale` on its content.
    """
    if fcntl is None:  # pragma: no cover
        holder = read_holder(path)
        return None if holder is None else is_stale(holder)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _try_flock(handle: IO[str]) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class StoreLock:
    """Exclusive write lock on a store directory; use :meth:`acquire` / :meth:`release`."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._handle: IO[str] | None = None
        self._owner_pid: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._handle is not None

    def _content(self) -> str:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": now})

    def _write_mine(self, handle: IO[str]) -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(self._content())
        handle.flush()
        os.fsync(handle.fileno())

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the live holder."""
        if self._handle is not None:
            return
        try:
            for _ in range(_ATTEMPTS):
                if self._try_create() or self._try_take_over():
                    self._owner_pid = os.getpid()
                    atexit.register(self.release)
                    return
        except OSError as exc:
            if isinstance(exc, (StoreLockedError, StoreWriteError)):
                raise
            raise write_error(exc, "taking the store lock", self.path) from exc
        holder = read_holder(self.path)
        raise StoreLockedError(f"could not take the store lock, held by {_describe(holder)}",
                               path=self.path, holder=holder,
                               hint="another process keeps creating and releasing it; retry")

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return False
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        if not _try_flock(handle):  # another process grabbed the brand-new file first
            handle.close()
            return False
        self._write_mine(handle)
        self._handle = handle
        return True

    def _try_take_over(self) -> bool:
        try:
            handle = open(self.path, "r+", encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False  # released meanwhile: try creating again
        try:
            if not _try_flock(handle):
                holder = read_holder(self.path)
                raise StoreLockedError(
                    f"the store is open for writing by {_describe(holder)}", path=self.path,
                    holder=holder,
                    hint="only one writer may use a checkpoint directory at a time: close the "
                         "other writer (or wait for it), or open this store read-only")
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released and unlinked while we opened it: start over
                handle.close()
                return False
            text = handle.read(MAX_LOCK_BYTES + 1)
            holder = read_holder(self.path) if text.strip() else None
            if fcntl is None and text.strip() and not is_stale(holder):  # pragma: no cover
                raise StoreLockedError(
                    f"the store is open for writing by {_describe(holder)}", path=self.path,
                    holder=holder,
                    hint="only one writer may use a checkpoint directory at a time; if that "
                         f"process is gone, delete {self.path} by hand")
            # we hold the OS lock: whoever the file names (another host, a reused pid, even
            # our own pid in a restarted container) no longer holds it
            logger.warning("%s: taking over a stale store lock left by %s (nobody holds its "
                           "OS lock any more)", self.path, _describe(holder))
            self._write_mine(handle)
        except BaseException:
            if self._handle is not handle:
                handle.close()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        """Release the lock (idempotent); the lock file is removed."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        atexit.unregister(self.release)
        if self._owner_pid != os.getpid():  # a forked child: the lock is its parent's
            handle.close()
            return
        try:
            os.unlink(self.path)  # unlink while still holding the flock (see _try_take_over)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove the store lock %s: %s", self.path, exc)
        finally:
            handle.close()
