"""Crash-safe checkpoint directories: atomic commit, manifest, checksums, retention, lock.

A store directory holds one sub-directory per committed checkpoint
(``ckpt-000012-e0003-s000000``: commit id, epoch, step) and the manifest ``ckptcompat.json``
listing each with its metrics, format, producer versions, time and every file's size and
sha256. Writing::

    with CheckpointStore("runs/a", write=True, retention=Retention(keep_last=3),
                         monitor="val_loss", mode="min") as store:
        with store.begin(epoch=3, global_step=300, metrics={"val_loss": 0.25},
                         format="keras_zip", producer={"keras": "3.15.1"}) as pending:
            model.save(pending.path / "model.keras")
        # committed here: fsync'ed, renamed into place, listed in the manifest

Reading (no lock)::

    store = CheckpointStore("runs/a")
    entry = store.latest_good()   # newest checkpoint whose checksums match, or None

See ``docs/store.md`` for the guarantees.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ckptcompat._atomic import atomic_replace
from ckptcompat.store.io import (
    TEMP_PREFIX,
    fsync_dir,
    fsync_tree,
    is_temp_name,
    remove_tree,
    write_error,
)
from ckptcompat.store.lock import StoreLock
from ckptcompat.store.urls import is_remote, local_path
from ckptcompat.store.pending import PendingCheckpoint, check_int, producer_fields, utc_now
from ckptcompat.store.manifest import (
    CheckpointEntry,
    FileRecord,
    Manifest,
    checkpoint_dir_name,
    load_manifest,
    save_manifest,
)
from ckptcompat.store.retention import Retention, best_entry, check_mode, select_kept
from ckptcompat.store.verify import DAMAGE_KINDS, Problem, VerifyReport, check_entry, verify_store
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    StoreWriteError,
)

__all__ = ["CheckpointEntry", "CheckpointStore", "FileRecord", "PendingCheckpoint", "Problem",
           "Retention", "VerifyReport", "verify"]

logger = logging.getLogger(__name__)

_ID_IN_NAME = re.compile(r"^(?:\.tmp-)?ckpt-(\d+)-")


def _version() -> str:
    from ckptcompat import __version__
    return __version__


class CheckpointStore:
    """A checkpoint directory; read-only unless ``write=True``.

    ``write=True`` creates the directory if needed, takes the single-writer lock
    (:class:`~ckptcompat.errors.StoreLockedError` if a live process holds it; a stale one is
    taken over) and removes temporaries left by crashed writers. ``retention`` prunes after
    each commit; ``monitor``/``mode`` name the metric that decides "best" (defaults: the
    values recorded in the manifest, and ``"min"``).

    ``directory`` may be a ``file://`` URL (a local path), or an fsspec URL (``gs://``,
    ``s3://``, ``memory://``, ...): the store is then a
    :class:`~ckptcompat.store.remote_store.RemoteCheckpointStore` (``pip install
    'ckptcompat[remote]'`` and the protocol's package; missing ones raise
    :class:`~ckptcompat.errors.MissingDependencyError` and nothing is created).
    """

    def __new__(cls, directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        if cls is CheckpointStore and is_remote(directory):
            from ckptcompat.store.remote_store import RemoteCheckpointStore

            return super().__new__(RemoteCheckpointStore)
        return super().__new__(cls)

    def __init__(self, directory: str | os.PathLike[str], *, write: bool = False,
                 retention: Retention | None = None, monitor: str | None = None,
                 mode: str | None = None) -> None:
        self.directory = local_path(directory)  # file:// URLs too; never a mangled URL
        self.write = write
        self.retention = retention or Retention()
        self._monitor = monitor
        self._mode = check_mode(mode)
        self._pending: PendingCheckpoint | None = None
        self._lock: StoreLock | None = None
        if not write:
            if not self.directory.is_dir():
                raise CheckpointNotFoundError("no checkpoint directory here", path=self.directory,
                                              hint="check the path, or open it with write=True")
            return
        if self.retention.keep_best is not None and not (self.retention.monitor or monitor):
            raise ValueError("Retention(keep_best=...) needs a monitor (a metric name)")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, "creating the store directory", self.directory) from exc
        self._lock = StoreLock(self.directory)
        self._lock.acquire()
        try:
            manifest = load_manifest(self.directory)
            self._clean_temporaries(manifest)
        except BaseException:
            self._lock.release()
            raise

    # -- life cycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the write lock (idempotent); an open pending checkpoint is aborted."""
        if self._pending is not None:
            self._pending.abort()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.directory)!r}, write={self.write})"

    def _clean_temporaries(self, manifest: Manifest) -> None:
        listed = {e.name for e in manifest.entries}
        for name in sorted(os.listdir(self.directory)):
            if is_temp_name(name):
                logger.warning("%s: removing %s left by an interrupted write",
                               self.directory, name)
                remove_tree(self.directory / name)
            elif _ID_IN_NAME.match(name) and name not in listed:
                logger.warning("%s: %s is not in the manifest (interrupted commit?); it is "
                               "ignored, and kept for inspection", self.directory, name)

    # -- reading ----------------------------------------------------------------------------
    def _manifest(self) -> Manifest:
        return load_manifest(self.directory)

    @property
    def monitor(self) -> str | None:
        """The metric that decides "best": the store's, else the manifest's."""
        return self._monitor or self.retention.monitor or self._manifest().monitor

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: the store's, else the manifest's, else ``"min"``."""
        return self._mode or self.retention.mode or self._manifest().mode or "min"

    def checkpoints(self) -> list[CheckpointEntry]:
        """Every committed checkpoint listed in the manifest, oldest first (not verified)."""
        return list(self._manifest().entries)

    def latest(self) -> CheckpointEntry | None:
        """The newest listed checkpoint (by epoch, step, commit id), not verified."""
        entries = self._manifest().entries
        return entries[-1] if entries else None

    def get(self, key: int | str) -> CheckpointEntry:
        """The listed checkpoint with commit id ``key`` (int) or directory name ``key``."""
        for entry in self._manifest().entries:
            if entry.id == key or entry.name == key:
                return entry
        raise CheckpointNotFoundError(f"no checkpoint {key!r} in the manifest",
                                      path=self.directory,
                                      hint="list them with CheckpointStore(...).checkpoints()")

    def fetch(self, entry: CheckpointEntry) -> Path:
        """The local folder of ``entry``'s files (a store at a URL downloads them first)."""
        return entry.path

    def is_intact(self, entry: CheckpointEntry, *, deep: bool = True) -> bool:
        """Whether ``entry``'s files match the manifest (sha256 when ``deep``, sizes otherwise);
        damage is logged as a warning."""
        return self._is_good(entry, deep)

    def _is_good(self, entry: CheckpointEntry, deep: bool) -> bool:
        damage = [p for p in check_entry(entry, deep=deep) if p.kind in DAMAGE_KINDS]
        if damage:
            logger.warning("%s: skipping damaged checkpoint %s: %s", self.directory, entry.name,
                           "; ".join(str(p) for p in damage))
        return not damage

    def _iter_good(self, deep: bool) -> Iterator[CheckpointEntry]:
        for entry in reversed(self._manifest().entries):
            if self._is_good(entry, deep):
                yield entry

    def good_checkpoints(self, *, deep: bool = True) -> list[CheckpointEntry]:
        """Listed checkpoints whose files match the manifest, newest first (damaged ones are
        logged as warnings and skipped). ``deep=False`` compares sizes only."""
        return list(self._iter_good(deep))

    def latest_good(self, *, deep: bool = True) -> CheckpointEntry | None:
        """The newest checkpoint whose checksums match: the one to resume from."""
        return next(self._iter_good(deep), None)

    def best(self, metric: str | None = None, mode: str | None = None, *,
             verified: bool = False) -> CheckpointEntry | None:
        """The best checkpoint by ``metric`` (default: the store's monitor) in ``mode``;
        with ``verified`` the best one whose checksums match. ``None`` when none logged it."""
        metric = metric or self.monitor
        if metric is None:
            raise ValueError("best() needs a metric: pass best(metric=...) or open the store "
                             "with monitor=...")
        mode = check_mode(mode) or self.mode
        entries = list(self._manifest().entries)
        while entries:
            found = best_entry(entries, metric, mode)
            if found is None or not verified or self._is_good(found, True):
                return found
            entries.remove(found)
        return None

    def verify(self, *, deep: bool = True) -> VerifyReport:
        """Every problem of the store (see :class:`VerifyReport`); never raises for damage."""
        return verify_store(self.directory, deep=deep)

    # -- writing ----------------------------------------------------------------------------
    def begin(self, *, epoch: int, step: int = 0, global_step: int | None = None,
              metrics: Mapping[str, float] | None = None, format: str | None = None,
              producer: Any = None, tags: tuple[str, ...] | list[str] = ()) -> PendingCheckpoint:
        """Start a checkpoint; write its files under the returned ``pending.path``.

        ``epoch`` = completed epochs, ``step`` = batches seen in the current epoch,
        ``producer`` a ``{name: version}`` mapping or a :class:`ckptcompat.state.Producer`,
        ``format`` the registry name of the main file (default: the producer's).
        """
        if not self.write or self._lock is None or not self._lock.held:
            raise CkptCompatError("this store is not open for writing", path=self.directory,
                                  hint="open it with CheckpointStore(directory, write=True)")
        if self._pending is not None:
            raise CkptCompatError("a checkpoint is already being written in this store",
                                  path=self._pending.path,
                                  hint="commit or abort it before beginning another")
        epoch_i = check_int("epoch", epoch)
        step_i = check_int("step", step)
        clean_metrics: dict[str, float] = {}
        for key, value in (metrics or {}).items():
            try:
                clean_metrics[str(key)] = float(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"metric {key!r} = {value!r} is not a number") from exc
        framework, versions, fmt = producer_fields(producer)
        ckpt_id = self._next_id()
        assert epoch_i is not None and step_i is not None
        draft = CheckpointEntry(
            id=ckpt_id, name=checkpoint_dir_name(ckpt_id, epoch_i, step_i), epoch=epoch_i,
            step=step_i, global_step=check_int("global_step", global_step, optional=True),
            metrics=clean_metrics, format=format or fmt, framework=framework, versions=versions,
            time="", files={}, tags=tuple(str(t) for t in tags))
        path = self.directory / f"{TEMP_PREFIX}{draft.name}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
        except OSError as exc:
            raise write_error(exc, "creating a temporary checkpoint directory", path) from exc
        self._pending = PendingCheckpoint(draft, path, self._commit, self._clear_pending)
        return self._pending

    def _clear_pending(self) -> None:
        self._pending = None

    def _next_id(self) -> int:
        used = [self._manifest().next_id]
        for name in os.listdir(self.directory):
            match = _ID_IN_NAME.match(name)
            if match:
                used.append(int(match.group(1)) + 1)
        return max(used)

    def _commit(self, draft: CheckpointEntry, tmp: Path,
                known: Mapping[str, tuple[int, str]] | None = None) -> CheckpointEntry:
        final = self.directory / draft.name
        try:
            try:
                records = fsync_tree(tmp, known)
            except ValueError as exc:
                raise StoreWriteError(f"cannot commit: {exc}", path=tmp,
                                      hint="write plain files into pending.path") from exc
            if not records:
                raise StoreWriteError("nothing was written into pending.path", path=tmp,
                                      hint="write the checkpoint files under pending.path")
            if final.exists():
                raise StoreWriteError(f"{draft.name} exists already", path=final,
                                      hint="move the foreign directory out of the store")
            previous = load_manifest(self.directory)
            entry = dataclasses.replace(
                draft, time=utc_now(), path=final,
                files={rel: FileRecord(size, digest) for rel, (size, digest) in records.items()})
            atomic_replace(tmp, final, durable=False, overwrite=False)  # fsync'ed below
        except OSError as exc:
            remove_tree(tmp)
            if isinstance(exc, CkptCompatError):
                raise
            raise write_error(exc, f"committing checkpoint {draft.name}", tmp) from exc
        except BaseException:
            remove_tree(tmp)
            raise
        try:
            fsync_dir(self.directory)
            manifest = self._with_best_tag(dataclasses.replace(
                previous, entries=(*previous.entries, entry), next_id=entry.id + 1,
                monitor=self.monitor, mode=self.mode))
            manifest = save_manifest(self.directory, manifest, previous.raw, _version())
        except BaseException as exc:
            self._discard(final)
            if isinstance(exc, OSError) and not isinstance(exc, CkptCompatError):
                raise write_error(exc, f"listing checkpoint {draft.name} in the manifest",
                                  self.directory) from exc
            raise
        committed = next(e for e in manifest.entries if e.id == entry.id)
        logger.info("%s: committed %s", self.directory, committed.name)
        self._prune(manifest)
        return committed

    def _discard(self, path: Path) -> None:
        """Move a directory out of the listed namespace, then delete it."""
        grave = self.directory / f"{TEMP_PREFIX}discard-{path.name}-{uuid.uuid4().hex[:8]}"
        try:
            atomic_replace(path, grave, durable=False, overwrite=False)
        except OSError as exc:
            logger.warning("could not move %s aside (%s)", path, exc)
            grave = path
        remove_tree(grave)

    def _with_best_tag(self, manifest: Manifest) -> Manifest:
        monitor = self.monitor
        if monitor is None:
            return manifest
        best = best_entry(manifest.entries, monitor, self.mode)
        entries = []
        for entry in manifest.entries:
            tags = tuple(t for t in entry.tags if t != "best")
            if best is not None and entry.id == best.id:
                tags = (*tags, "best")
            entries.append(dataclasses.replace(entry, tags=tags))
        return dataclasses.replace(manifest, entries=tuple(entries))

    def _prune(self, manifest: Manifest) -> None:
        keep = select_kept(manifest.entries, self.retention, self.monitor, self.mode)
        doomed = [e for e in manifest.entries if e.id not in keep]
        if not doomed:
            return
        kept = dataclasses.replace(manifest, entries=tuple(e for e in manifest.entries
                                                           if e.id in keep))
        try:
            save_manifest(self.directory, kept, manifest.raw, _version())
        except OSError as exc:
            logger.warning("%s: pruning skipped, the manifest could not be replaced (%s)",
                           self.directory, exc)
            return
        for entry in doomed:
            logger.info("%s: pruning %s", self.directory, entry.name)
            self._discard(entry.path)


def verify(directory: str | os.PathLike[str], *, deep: bool = True) -> VerifyReport:
    """Check a store directory (or URL) without opening it for writing (see
    :class:`VerifyReport`)."""
    if is_remote(directory):
        return CheckpointStore(directory).verify(deep=deep)
    return verify_store(local_path(directory), deep=deep)

