"""A checkpoint being written into a store (the object ``CheckpointStore.begin`` returns),
and the argument checks of ``begin``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from ckptcompat._compat import is_within
from ckptcompat.store.io import remove_tree, write_error
from ckptcompat.store.manifest import CheckpointEntry
from ckptcompat.errors import CkptCompatError

__all__ = ["PendingCheckpoint", "check_int", "producer_fields", "utc_now"]

#: formats whose writer can hash the file while writing it (``checksum=True``)
_HASHING_WRITERS = frozenset({"keras_h5", "keras_zip"})


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and a ``Z``."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return now.replace("+00:00", "Z")


def producer_fields(producer: Any) -> tuple[str | None, dict[str, str], str | None]:
    """``(framework, versions, format)`` from a versions mapping or a ``state.Producer``."""
    if producer is None:
        return None, {}, None
    if isinstance(producer, Mapping):
        return None, {str(k): str(v) for k, v in producer.items()}, None
    versions = getattr(producer, "versions", None) or {}
    return (getattr(producer, "framework", None), {str(k): str(v) for k, v in versions.items()},
            getattr(producer, "format", None))


def check_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    """``value`` when it is a non-negative int (or ``None`` when ``optional``); else ValueError."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, not {value!r}")
    return int(value)


class PendingCheckpoint:
    """A checkpoint being written: write files under :attr:`path`, then commit.

    Used as a context manager (from :meth:`CheckpointStore.begin`), it commits on normal exit
    and aborts on an exception (an :class:`OSError` is re-raised as
    :class:`~ckptcompat.errors.StoreWriteError`). :attr:`entry` is set once committed.
    """

    def __init__(self, draft: CheckpointEntry, path: Path,
                 commit: Callable[[CheckpointEntry, Path, Mapping[str, tuple[int, str]]], CheckpointEntry],
                 done: Callable[[], None]) -> None:
        self._commit = commit
        self._on_done = done
        self._draft = draft
        self.path = path
        self.entry: CheckpointEntry | None = None
        self._done = False
        self._digests: dict[str, tuple[int, str]] = {}

    @property
    def id(self) -> int:
        """The commit id the checkpoint will get."""
        return self._draft.id

    def __enter__(self) -> PendingCheckpoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, OSError) and not isinstance(exc, CkptCompatError):
            raise write_error(exc, f"writing checkpoint {self._draft.name}", self.path) from exc

    def write_state(self, name: str, state: Any, *, format: str) -> list[Path]:
        """Write a ``TrainingState`` as ``name`` (in ``format``) plus its ``state.json``;
        return every file written (the format's files, then ``state.json``).

        The commit fsyncs and checksums every file, so the format writer skips its own fsync
        and read-back comparison here (``verify=False, durable=False``). The ``keras_h5``
        writer hashes the file while writing and flushing it (``checksum=True,
        durable=True``); the commit records that sha256 instead of reading the file again.
        """
        from ckptcompat import formats
        from ckptcompat.formats import sidecar

        options: dict[str, Any] = {"verify": False, "durable": False}
        if format in _HASHING_WRITERS:  # its fsync overlaps its hashing: cheaper done there
            options.update(checksum=True, durable=True)
        written = formats.write(self.path / name, state, format=format, **options)
        root = self.path.resolve()
        for path in written:
            if not is_within(path.resolve(), root):
                raise CkptCompatError(f"the {format} writer wrote {path}, outside the checkpoint",
                                      path=self.path, hint="report this as a ckptcompat bug")
        for path, digest in written.digests.items():
            self._digests[path.resolve().relative_to(root).as_posix()] = digest
        return [*written, *sidecar.write(self.path / "state.json", state)]

    def abort(self) -> None:
        """Discard the checkpoint: nothing is committed, the temp directory is removed."""
        if not self._done:
            self._done = True
            self._on_done()
            remove_tree(self.path)

    def commit(self) -> CheckpointEntry:
        """fsync every file, rename into place, list in the manifest, then prune."""
        if self._done:
            raise CkptCompatError("this pending checkpoint was already committed or aborted")
        try:
            self.entry = self._commit(self._draft, self.path, dict(self._digests))
        finally:
            self._done = True
            self._on_done()
        return self.entry
