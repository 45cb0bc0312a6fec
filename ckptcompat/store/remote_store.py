"""``CheckpointStore`` at a URL (fsspec): commit without rename, read through a local copy.

``CheckpointStore("memory://run")`` (or ``gs://``, ``s3://``, ...) is a
:class:`RemoteCheckpointStore`: a local store in a private temporary folder (the *mirror*)
that holds the manifest and the checkpoints being written or read, synchronised with the URL.

Commit protocol (object stores have no atomic rename):

1. the checkpoint is written and committed locally, into the mirror, by the local store
   (fsync, sha256 of every file, manifest);
2. its files are uploaded under a fresh key ``<store>/ckpt-<id>-e<epoch>-s<step>/``;
3. the manifest is written last, in one ``PUT``: that write is the commit. Pruned
   checkpoints are deleted only after it.

Readers trust only what the remote manifest lists and whose sha256 match: an entry's files
are downloaded into the mirror and checked by the local store's own check. Files of an
interrupted commit are never listed; the next writer deletes them when it opens the store.
The mirror is removed when the store is closed or garbage-collected.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptcompat._compat import unlink_if_present
from ckptcompat._atomic import atomic_replace
from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError, StoreWriteError
from ckptcompat.store import CheckpointStore
from ckptcompat.store.io import TEMP_PREFIX, remove_tree
from ckptcompat.store.manifest import MANIFEST_NAME, CheckpointEntry, load_manifest
from ckptcompat.store.remote import RemoteFiles
from ckptcompat.store.retention import Retention

__all__ = ["RemoteCheckpointStore"]

logger = logging.getLogger(__name__)


class RemoteCheckpointStore(CheckpointStore):
    """A checkpoint store at an fsspec URL; same API as :class:`CheckpointStore`.

    ``directory`` is the local mirror (private, temporary) and ``url`` the store's address.
    The write lock is advisory: an object store has no OS lock (see ``docs/store.md``).
    """

    def __init__(self, directory: str | os.PathLike[str], *, write: bool = False,
                 retention: Retention | None = None, monitor: str | None = None,
                 mode: str | None = None) -> None:
        self.url = str(directory).rstrip("/")
        self.remote = RemoteFiles(self.url)  # typed error when fsspec / the protocol is missing
        self._failed_ids: set[int] = set()
        data = self.remote.read_manifest()
        if data is None and not write and not self.remote.exists():
            raise CheckpointNotFoundError("no checkpoint store at this URL", path=self.url,
                                          hint="check the URL, or open it with write=True")
        mirror = Path(tempfile.mkdtemp(prefix="ckptcompat-remote-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, mirror, True)
        try:
            if data is not None:
                (mirror / MANIFEST_NAME).write_bytes(data)
            if write:
                self.remote.lock()
                listed = load_manifest(mirror).entries
                self.remote.remove_unlisted([e.name for e in listed],
                                            why="left by an interrupted commit, never listed")
            super().__init__(mirror, write=write, retention=retention, monitor=monitor,
                             mode=mode)
        except BaseException:
            self.remote.unlock()
            self._cleanup()
            raise

    def close(self) -> None:
        """Release the (advisory) write lock and remove the local mirror (idempotent)."""
        try:
            super().close()
        finally:
            self.remote.unlock()
            self._cleanup()

    def __repr__(self) -> str:
        return f"CheckpointStore({self.url!r}, write={self.write})"

    # -- reading ----------------------------------------------------------------------------
    def _manifest(self) -> Any:
        if not self.write:  # a reader follows the remote manifest; a writer owns it
            data = self.remote.read_manifest()
            path = self.directory / MANIFEST_NAME
            current = path.read_bytes() if path.exists() else None
            if data != current:
                if data is None:
                    path.unlink()
                else:
                    path.write_bytes(data)
        return load_manifest(self.directory)

    def fetch(self, entry: CheckpointEntry) -> Path:
        """Download ``entry``'s files into the mirror (once); returns the local folder.
        Files that cannot be downloaded are left out: the check then reports them missing."""
        local = self.directory / entry.name
        if local.is_dir():
            return local
        staging = self.directory / f"{TEMP_PREFIX}fetch-{entry.name}"
        remove_tree(staging)
        staging.mkdir()
        for problem in self.remote.download(entry.name, entry.files, staging):
            logger.warning("%s: %s", self.url, problem)
        # a local cache of the URL store: complete or absent, no durability needed
        atomic_replace(staging, local, durable=False, overwrite=False)
        return local

    def _is_good(self, entry: CheckpointEntry, deep: bool) -> bool:
        self.fetch(entry)
        return super()._is_good(entry, deep)

    def verify(self, *, deep: bool = True) -> Any:
        """Every problem of the store, after downloading every listed checkpoint."""
        for entry in self._manifest().entries:
            self.fetch(entry)
        return super().verify(deep=deep)

    def drop_unlisted(self) -> None:
        """Remove downloaded checkpoints that the manifest no longer lists."""
        listed = {e.name for e in self._manifest().entries}
        for child in self.directory.iterdir():
            if child.is_dir() and child.name.startswith("ckpt-") and child.name not in listed:
                remove_tree(child)

    # -- writing ----------------------------------------------------------------------------
    def _next_id(self) -> int:
        return max([super()._next_id(), *(i + 1 for i in self._failed_ids)])

    def _commit(self, draft: CheckpointEntry, tmp: Path,
                known: Mapping[str, tuple[int, str]] | None = None) -> CheckpointEntry:
        manifest_path = self.directory / MANIFEST_NAME
        before = manifest_path.read_bytes() if manifest_path.exists() else None
        committed = super()._commit(draft, tmp, known)  # local: fsync, sha256, manifest
        local = self.directory / committed.name
        try:
            self.remote.upload(local, committed.name, committed.files)
            self.remote.write_manifest(manifest_path.read_bytes())  # the commit point
        except BaseException as exc:
            self._failed_ids.add(committed.id)
            self._roll_back(committed.name, before)
            if isinstance(exc, OSError) and not isinstance(exc, CkptCompatError):
                raise StoreWriteError(
                    f"uploading checkpoint {committed.name} failed ({exc}); nothing was "
                    "committed", path=f"{self.url}/{committed.name}",
                    hint="check the connection and credentials; the checkpoints already in "
                         "the store are untouched") from exc
            raise
        remove_tree(local)  # uploaded: downloaded again on demand
        listed = [e.name for e in load_manifest(self.directory).entries]
        self.remote.remove_unlisted(listed, why="pruned by the retention rules",
                                    level=logging.INFO)
        logger.info("%s: committed %s", self.url, committed.name)
        return committed

    def _discard(self, path: Path) -> None:
        if path.exists():  # the mirror holds only the checkpoints downloaded or being written
            super()._discard(path)

    def _roll_back(self, name: str, before: bytes | None) -> None:
        """Forget a checkpoint whose upload failed, here and there (best effort there)."""
        path = self.directory / MANIFEST_NAME
        if before is None:
            unlink_if_present(path)
        else:
            path.write_bytes(before)
        remove_tree(self.directory / name)
        self.remote.remove(name)
