"""The fsspec side of a store at a URL: files up and down, manifest, orphans, advisory lock.

One job: move a store's files between a local folder and the URL. The commit protocol
(:mod:`ckptcompat.store.remote_store`) needs only what every object store offers: whole
objects written by a single ``PUT`` (:meth:`RemoteFiles.write_manifest` is the commit point),
listing, deleting. Nothing relies on a rename.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from ckptcompat._compat import unlink_if_present
from ckptcompat.errors import StoreWriteError
from ckptcompat.store.io import is_temp_name
from ckptcompat.store.lock import LOCK_NAME
from ckptcompat.store.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, FileRecord
from ckptcompat.store.pending import utc_now
from ckptcompat.store.urls import filesystem

__all__ = ["RemoteFiles"]

logger = logging.getLogger(__name__)

_CHUNK = 4 << 20
_CHECKPOINT_NAME = re.compile(r"^ckpt-\d+-")


class RemoteFiles:
    """The files of the store at ``url`` (fsspec); paths given relative to the store root."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = filesystem(url)
        self._token: str | None = None

    def _full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str = "") -> bool:
        path = self._full(rel)  # fsspec before 2023.x: a folder implied by its files is no "exists"
        return bool(self.fs.exists(path) or self.fs.isdir(path))

    # -- manifest ---------------------------------------------------------------------------
    def read_manifest(self) -> bytes | None:
        """The manifest's bytes, ``None`` when the store has none yet."""
        path = self._full(MANIFEST_NAME)
        try:
            with self.fs.open(path, "rb") as handle:
                data = handle.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            return None
        return bytes(data)

    def write_manifest(self, data: bytes) -> None:
        """Replace the manifest in one write: the commit point of a checkpoint."""
        self.fs.pipe_file(self._full(MANIFEST_NAME), data)

    # -- checkpoint files -------------------------------------------------------------------
    def upload(self, local: Path, name: str, files: Iterable[str]) -> None:
        """Copy ``local/<rel>`` to ``<name>/<rel>`` for every ``rel`` in ``files``, streaming."""
        for rel in sorted(files):
            with open(local / rel, "rb") as src, self.fs.open(self._full(f"{name}/{rel}"),
                                                              "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    dst.write(chunk)

    def download(self, name: str, files: Mapping[str, FileRecord], dest: Path) -> list[str]:
        """Copy ``<name>/<rel>`` to ``dest/<rel>``; returns the problems (missing, unreadable,
        larger than listed). Checksums are left to the store's own check of ``dest``."""
        problems = []
        for rel, record in sorted(files.items()):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.fs.open(self._full(f"{name}/{rel}"), "rb") as src, \
                        open(target, "wb") as dst:
                    size = 0
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        size += len(chunk)
                        if size > record.size:
                            raise ValueError(f"more than the {record.size} bytes listed")
                        dst.write(chunk)
            except (OSError, ValueError) as exc:
                unlink_if_present(target)
                problems.append(f"{name}/{rel}: {exc}")
        return problems

    def remove(self, name: str) -> None:
        """Delete ``<name>`` and everything under it (best effort, logged)."""
        try:
            self.fs.rm(self._full(name), recursive=True)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("%s: could not remove %s (%s)", self.url, name, exc)

    def remove_unlisted(self, listed: Iterable[str], *, why: str,
                        level: int = logging.WARNING) -> None:
        """Delete every checkpoint folder (and temporary) under the root not in ``listed``."""
        keep = set(listed)
        try:
            children = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return
        for child in children:
            name = str(child).rstrip("/").rsplit("/", 1)[-1]
            if name not in keep and (_CHECKPOINT_NAME.match(name) or is_temp_name(name)):
                logger.log(level, "%s: removing %s (%s)", self.url, name, why)
                self.remove(name)

    # -- advisory lock ----------------------------------------------------------------------
    def lock(self) -> None:
        """Write the advisory lock object; one left by another writer is taken over with a
        warning: an object store has no OS lock to tell a live writer from a dead one."""
        path = self._full(LOCK_NAME)
        try:
            previous = self.fs.cat_file(path)[:4096].decode("utf-8", "replace")
        except FileNotFoundError:
            previous = None
        if previous is not None:
            logger.warning("%s: taking over the advisory store lock %s; on an object store "
                           "ckptcompat cannot tell whether its writer still runs: make sure "
                           "only one writer uses this store", self.url, previous.strip())
        self._token = uuid.uuid4().hex
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "time": utc_now(),
                  "token": self._token}
        try:
            self.fs.pipe_file(path, json.dumps(holder).encode())
        except OSError as exc:
            raise StoreWriteError(f"cannot write the store lock ({exc})", path=path,
                                  hint="check the credentials and that the bucket is writable"
                                  ) from exc

    def unlock(self) -> None:
        """Remove the advisory lock if it is still ours (best effort)."""
        token, self._token = self._token, None
        if token is None:
            return
        path = self._full(LOCK_NAME)
        try:
            if json.loads(self.fs.cat_file(path)).get("token") == token:
                self.fs.rm_file(path)
        except (OSError, ValueError, AttributeError) as exc:
            logger.debug("%s: lock not removed: %s", self.url, exc)

