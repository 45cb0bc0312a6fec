"""The checkpoint store's manifest, ``ckptcompat.json``: entries, schema, atomic replace.

Schema 1::

    {"schema": 1, "ckptcompat_version": "0.1.0", "next_id": 13,
     "monitor": "val_loss" | null, "mode": "min" | "max" | null,
     "checkpoints": [
       {"id": 12, "name": "ckpt-000012-e0003-s000000", "epoch": 3, "step": 0,
        "global_step": 300 | null, "metrics": {"val_loss": 0.25},
        "format": "keras_zip" | null,
        "producer": {"framework": "keras" | null, "versions": {"keras": "3.15.1"}},
        "time": "2025-01-31T12:00:00.000Z",
        "files": {"model.keras": {"size": 1234, "sha256": "..."}},
        "tags": ["best"]}]}

Non-finite metric values are stored as the strings ``"nan"``, ``"inf"``, ``"-inf"`` so the
file stays standard JSON. Every replace keeps the previous manifest as ``ckptcompat.json.bak``.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ckptcompat import _bounded
from ckptcompat.store.io import atomic_write_bytes
from ckptcompat.errors import CorruptCheckpointError, StoreWriteError, UnsupportedFormatError

__all__ = [
    "BACKUP_NAME",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "CheckpointEntry",
    "FileRecord",
    "Manifest",
    "checkpoint_dir_name",
    "load_manifest",
    "parse_manifest",
    "save_manifest",
]

MANIFEST_NAME = "ckptcompat.json"
BACKUP_NAME = "ckptcompat.json.bak"
SCHEMA_VERSION = 1
#: Limits of a manifest read from disk (10 000 checkpoints are ~6 MiB and list in ~2 s).
MAX_MANIFEST_BYTES = 16 << 20
MAX_ENTRIES = 10_000
MAX_FILES_PER_ENTRY = 10_000
MAX_METRICS = 1_000
MAX_TAGS = 100
MAX_NAME = 255
#: Largest epoch, step and id accepted (a 32-bit epoch; steps and ids exact in int64/float64).
MAX_EPOCH = 2**31 - 1
MAX_COUNT = 2**53
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class FileRecord:
    """Size and sha256 of one file of a committed checkpoint."""

    size: int
    sha256: str


@dataclass(frozen=True)
class CheckpointEntry:
    """One committed checkpoint as the manifest lists it.

    ``id`` is the commit sequence number (unique in the store, never reused); ``path`` is
    the checkpoint's directory. Entries order by :attr:`order_key`.
    """

    id: int
    name: str
    epoch: int
    step: int
    global_step: int | None
    metrics: Mapping[str, float]
    format: str | None
    framework: str | None
    versions: Mapping[str, str]
    time: str
    files: Mapping[str, FileRecord]
    tags: tuple[str, ...] = ()
    path: Path = field(default=Path(), compare=False)

    @property
    def order_key(self) -> tuple[int, int, int]:
        """``(epoch, step, id)``: the store's only ordering (never directory-listing order)."""
        return (self.epoch, self.step, self.id)

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in the manifest."""
        return {
            "id": self.id, "name": self.name, "epoch": self.epoch, "step": self.step,
            "global_step": self.global_step,
            "metrics": {k: _encode_float(v) for k, v in self.metrics.items()},
            "format": self.format,
            "producer": {"framework": self.framework, "versions": dict(self.versions)},
            "time": self.time,
            "files": {rel: {"size": rec.size, "sha256": rec.sha256}
                      for rel, rec in sorted(self.files.items())},
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest; ``raw`` is the file's bytes (``None`` when there was no file)."""

    entries: tuple[CheckpointEntry, ...] = ()
    next_id: int = 1
    monitor: str | None = None
    mode: str | None = None
    raw: bytes | None = None

    def to_bytes(self, version: str) -> bytes:
        """Serialise (entries in store order)."""
        doc = {
            "schema": SCHEMA_VERSION, "ckptcompat_version": version, "next_id": self.next_id,
            "monitor": self.monitor, "mode": self.mode,
            "checkpoints": [e.to_json() for e in sorted(self.entries, key=lambda e: e.order_key)],
        }
        return (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8")


def checkpoint_dir_name(ckpt_id: int, epoch: int, step: int) -> str:
    """``ckpt-<id>-e<epoch>-s<step>``, zero-padded so names sort like the store orders."""
    return f"ckpt-{ckpt_id:06d}-e{epoch:04d}-s{step:06d}"


def _encode_float(value: float) -> float | str:
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _decode_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: metric value {value!r} is not a number")
    if isinstance(value, str):
        if value not in _NONFINITE:
            raise ValueError(f"{where}: metric value {value!r} is not a number")
        return _NONFINITE[value]
    try:
        return float(value)
    except OverflowError as exc:  # an integer beyond float range (10**400)
        raise ValueError(f"{where}: metric value is too large for a float") from exc


def _need(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str,
          *, optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise ValueError(f"{where}: missing key {key!r}")
    value = obj[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ValueError(f"{where}: {key!r} is {value!r}, expected {types}")
    if not isinstance(value, types):
        raise ValueError(f"{where}: {key!r} is {type(value).__name__}, expected "
                         f"{getattr(types, '__name__', types)}")
    return value


def _safe_relpath(rel: str, where: str) -> str:
    norm = posixpath.normpath(rel)
    if (not rel or rel.startswith("/") or "\\" in rel or norm != rel
            or norm == "." or norm.split("/")[0] == ".."):
        raise ValueError(f"{where}: file path {rel!r} is not a plain relative path")
    return rel


def _entry_from_json(obj: Any, directory: Path, index: int) -> CheckpointEntry:
    where = f"checkpoints[{index}]"
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is not an object")
    name = _need(obj, "name", str, where)
    if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
        raise ValueError(f"{where}: directory name {name!r} is not a plain name")
    files_obj = _need(obj, "files", dict, where)
    files: dict[str, FileRecord] = {}
    for rel, rec in files_obj.items():
        fwhere = f"{where}.files[{rel!r}]"
        if not isinstance(rec, dict):
            raise ValueError(f"{fwhere} is not an object")
        size = _need(rec, "size", int, fwhere)
        digest = _need(rec, "sha256", str, fwhere)
        if size < 0 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{fwhere}: bad size or sha256")
        files[_safe_relpath(rel, fwhere)] = FileRecord(size, digest)
    producer = _need(obj, "producer", dict, where, optional=True) or {}
    versions = producer.get("versions") or {}
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise ValueError(f"{where}: producer.versions must map names to version strings")
    framework = producer.get("framework")
    if framework is not None and not isinstance(framework, str):
        raise ValueError(f"{where}: producer.framework must be a string")
    metrics_obj = _need(obj, "metrics", dict, where, optional=True) or {}
    tags = _need(obj, "tags", list, where, optional=True) or []
    if not all(isinstance(t, str) for t in tags):
        raise ValueError(f"{where}: tags must be strings")
    entry = CheckpointEntry(
        id=_need(obj, "id", int, where), name=name,
        epoch=_need(obj, "epoch", int, where), step=_need(obj, "step", int, where),
        global_step=_need(obj, "global_step", int, where, optional=True),
        metrics={str(k): _decode_float(v, f"{where}.metrics[{k!r}]")
                 for k, v in metrics_obj.items()},
        format=_need(obj, "format", str, where, optional=True),
        framework=framework, versions=dict(versions),
        time=_need(obj, "time", str, where), files=files, tags=tuple(tags),
        path=directory / name,
    )
    if entry.id < 1 or entry.epoch < 0 or entry.step < 0:
        raise ValueError(f"{where}: id must be >= 1, epoch and step >= 0")
    _check_entry_ranges(entry, where)
    return entry


def _check_entry_ranges(entry: CheckpointEntry, where: str) -> None:
    """Plausible ranges and counts of one entry (absurd values are damage, never used)."""
    for key, value, top in (("id", entry.id, MAX_COUNT), ("epoch", entry.epoch, MAX_EPOCH),
                            ("step", entry.step, MAX_COUNT),
                            ("global_step", entry.global_step or 0, MAX_COUNT)):
        if not 0 <= value <= top:
            raise ValueError(f"{where}: {key} {_short(value)} is outside 0..{top}")
    for key, count, top in (("files", len(entry.files), MAX_FILES_PER_ENTRY),
                            ("metrics", len(entry.metrics), MAX_METRICS),
                            ("tags", len(entry.tags), MAX_TAGS)):
        if count > top:
            raise ValueError(f"{where}: {count} {key}, over the limit of {top}")
    if len(entry.name) > MAX_NAME or any(len(rel) > 4096 for rel in entry.files):
        raise ValueError(f"{where}: a directory or file name is over the length limit")
    if any(rec.size > MAX_COUNT for rec in entry.files.values()):
        raise ValueError(f"{where}: a file size is over {MAX_COUNT} bytes")


def _short(value: int) -> str:
    """``value`` for a message; huge integers abbreviated (10**400 has 401 digits)."""
    return str(value) if abs(value) < 10**30 else f"of {value.bit_length()} bits"


def parse_manifest(data: bytes, directory: Path) -> Manifest:
    """Parse manifest bytes; :class:`ValueError` (or UnsupportedFormatError) when invalid."""
    try:
        doc = _bounded.loads(data, path=None, what="the manifest", max_bytes=MAX_MANIFEST_BYTES)
    except CorruptCheckpointError as exc:
        raise ValueError(exc.message) from exc
    if not isinstance(doc, dict):
        raise ValueError("the top level is not an object")
    schema = _need(doc, "schema", int, "manifest")
    if schema > SCHEMA_VERSION:
        raise UnsupportedFormatError(
            f"manifest schema {schema} is newer than this ckptcompat understands "
            f"({SCHEMA_VERSION})", path=directory / MANIFEST_NAME,
            hint="upgrade ckptcompat to read this checkpoint directory")
    if schema < 1:
        raise ValueError(f"unknown schema {schema}")
    raw_entries = _need(doc, "checkpoints", list, "manifest")
    if len(raw_entries) > MAX_ENTRIES:
        raise ValueError(f"{len(raw_entries)} checkpoints listed, over the limit of {MAX_ENTRIES}")
    entries = tuple(_entry_from_json(obj, directory, i) for i, obj in enumerate(raw_entries))
    ids = [e.id for e in entries]
    names = [e.name for e in entries]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        raise ValueError("duplicate checkpoint id or directory name")
    next_id = _need(doc, "next_id", int, "manifest", optional=True) or 1
    if not 1 <= next_id <= MAX_COUNT:
        raise ValueError(f"next_id {_short(next_id)} is outside 1..{MAX_COUNT}")
    mode = _need(doc, "mode", str, "manifest", optional=True)
    if mode not in (None, "min", "max"):
        raise ValueError(f"mode {mode!r} is not 'min' or 'max'")
    return Manifest(entries=tuple(sorted(entries, key=lambda e: e.order_key)),
                    next_id=max([next_id, *(i + 1 for i in ids)]),
                    monitor=_need(doc, "monitor", str, "manifest", optional=True),
                    mode=mode, raw=data)


def _recovery_hint(directory: Path) -> str:
    backup = directory / BACKUP_NAME
    try:
        if backup.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError("oversized")
        previous = parse_manifest(backup.read_bytes(), directory)
    except FileNotFoundError:
        return (f"there is no {BACKUP_NAME}; run `ckptcompat verify {directory}` to see which "
                "checkpoint directories are intact, or move the manifest away to start afresh")
    except (OSError, ValueError, UnsupportedFormatError):
        return (f"{BACKUP_NAME} is not usable either; run `ckptcompat verify {directory}` and "
                "move the manifest away to start afresh")
    return (f"the previous manifest {BACKUP_NAME} is readable and lists "
            f"{len(previous.entries)} checkpoint(s): copy it over {MANIFEST_NAME} to recover, "
            f"then run `ckptcompat verify {directory}`")


def load_manifest(directory: str | Path) -> Manifest:
    """The store's manifest; an empty :class:`Manifest` when the store has none yet.

    Raises :class:`CorruptCheckpointError` (with a recovery hint) when it is unreadable or
    invalid.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise CorruptCheckpointError(
                f"the store manifest is {size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                path=path, hint=_recovery_hint(directory))
        data = path.read_bytes()
    except FileNotFoundError:
        return Manifest()
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read the store manifest ({exc})", path=path,
                                     hint=_recovery_hint(directory)) from exc
    key = str(directory)
    cached = _PARSED.get(key)
    if cached is not None and cached[0] == data:
        return cached[1]  # same bytes: same (immutable) manifest, parsed once
    try:
        manifest = parse_manifest(data, directory)
    except ValueError as exc:
        if isinstance(exc, UnsupportedFormatError):
            raise
        raise CorruptCheckpointError(f"the store manifest is damaged: {exc}", path=path,
                                     hint=_recovery_hint(directory)) from exc
    _PARSED.pop(key, None)
    _PARSED[key] = (data, manifest)
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.pop(next(iter(_PARSED)))
    return manifest


#: directory -> (manifest bytes, parsed manifest): reading a store several times (discovery,
#: selection, verification) parses a large manifest once; any change of the bytes re-parses.
_PARSED: dict[str, tuple[bytes, Manifest]] = {}
_PARSED_MAX = 8


def save_manifest(directory: str | Path, manifest: Manifest, previous: bytes | None,
                  version: str) -> Manifest:
    """Atomically replace the manifest by ``manifest``; ``previous`` (the bytes of the one
    being replaced, if any) is kept as ``ckptcompat.json.bak``.

    Returns ``manifest`` with ``raw`` set to the bytes written. On :class:`OSError` the
    manifest file is unchanged.
    """
    directory = Path(directory)
    if len(manifest.entries) > MAX_ENTRIES:
        raise StoreWriteError(
            f"a store holds at most {MAX_ENTRIES} checkpoints; this commit would make "
            f"{len(manifest.entries)}", path=directory / MANIFEST_NAME,
            hint="prune old checkpoints (Retention(keep_last=...)) or start a new store directory")
    data = manifest.to_bytes(version)
    backup = directory / BACKUP_NAME
    old_backup: bytes | None = None
    if previous is not None:
        try:
            old_backup = backup.read_bytes()
        except FileNotFoundError:
            pass
        atomic_write_bytes(backup, previous)
    try:
        atomic_write_bytes(directory / MANIFEST_NAME, data)
    except OSError:
        if previous is not None:  # put the backup back as it was (best effort)
            try:
                if old_backup is None:
                    backup.unlink()
                else:
                    atomic_write_bytes(backup, old_backup)
            except OSError:
                pass
        raise
    return replace(manifest, raw=data)
