"""Typed errors raised by ckptcompat.

Every error subclasses :class:`CkptCompatError` and the builtin it refines, so callers can
catch either. Messages say what was found, what was expected and what to do.
"""

from __future__ import annotations

import os as _os
from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any

__all__ = [
    "CkptCompatError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "UnsupportedFormatError",
    "IncompatibleStateError",
    "UnsafeCheckpointError",
    "MissingDependencyError",
    "InvalidArgumentError",
    "TemplateKeyError",
    "StoreLockedError",
    "StoreWriteError",
]


class CkptCompatError(Exception):
    """Base class of every error ckptcompat raises on purpose.

    ``path`` is the file or directory concerned (``None`` when there is none) and ``hint``
    says what the user can do about it.
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None,
                 hint: str | None = None) -> None:
        where = None if path is None else str(path)
        parts = [f"{where}: {message}" if where else message]
        if hint:
            parts.append(f"Hint: {hint}")
        super().__init__(" ".join(parts))
        # set after the builtin's __init__, which (ImportError, OSError) may reset ``path``
        self.message = message
        self.path = where
        self.hint = hint

    def __str__(self) -> str:  # OSError subclasses would otherwise format errno/strerror
        return str(self.args[0]) if self.args else self.message


class CheckpointNotFoundError(CkptCompatError, FileNotFoundError):
    """No checkpoint where one was looked for (missing path, empty folder, dangling state file)."""


class CorruptCheckpointError(CkptCompatError, ValueError):
    """The file is of a known format but damaged: truncated, bad checksum, absurd contents."""


class UnsupportedFormatError(CkptCompatError, ValueError):
    """The file is not a checkpoint format ckptcompat can read or write."""


class IncompatibleStateError(CkptCompatError, ValueError):
    """The checkpoint does not fit the target: missing, unexpected or misshaped variables.

    ``mismatches`` lists every problem found, one line each; all of them are in the message.
    """

    def __init__(self, message: str, mismatches: Iterable[str] = (), *,
                 path: str | PathLike[str] | None = None, hint: str | None = None) -> None:
        self.mismatches: list[str] = list(mismatches)
        if self.mismatches:
            listed = "\n".join(f"  - {m}" for m in self.mismatches)
            message = f"{message} ({len(self.mismatches)} problem(s)):\n{listed}\n"
        super().__init__(message, path=path, hint=hint)


class UnsafeCheckpointError(CkptCompatError, ValueError):
    """Reading the file would execute code (pickle globals, Lambda byte-code); refused."""


class MissingDependencyError(CkptCompatError, ImportError):
    """An optional dependency (TensorFlow, Keras, matplotlib, ...) is needed but not installed."""


class StoreLockedError(CkptCompatError, BlockingIOError):
    """A checkpoint store is already open for writing by another live process.

    ``holder`` is the lock file's content (``pid``, ``host``, ``time``) when it could be read.
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None,
                 hint: str | None = None, holder: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, path=path, hint=hint)
        self.holder: dict[str, Any] = dict(holder or {})


class StoreWriteError(CkptCompatError, OSError):
    """Writing a checkpoint failed (disk full, I/O error, read-only file system, ...).

    ``errno`` is the errno of the underlying :class:`OSError` (``None`` when there was none);
    nothing was committed and the checkpoints already in the store are untouched.
    """

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None,
                 hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, path=path, hint=hint)
        self.errno = errno
        self.strerror = _os.strerror(errno) if errno is not None else None


class InvalidArgumentError(CkptCompatError, ValueError):
    """An argument (callback, optimizer, fit keyword, file-path template) cannot be translated."""


class TemplateKeyError(CkptCompatError, KeyError):
    """A file-path template names a key that no logged metric (nor any alias of one) provides.

    ``key`` is the missing field name and ``available`` the keys that could be used.
    """

    def __init__(self, message: str, *, key: str = "", available: Iterable[str] = (),
                 path: str | PathLike[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, path=path, hint=hint)
        self.key = key
        self.available: list[str] = list(available)
