"""Low-level tensor-bundle I/O: prefix resolution, ``.index`` entries, tensor bytes, writing.

Pure Python + numpy. A V2 bundle is ``<prefix>.index`` (a sorted table: key ``""`` holds the
``BundleHeaderProto``, every other key a ``BundleEntryProto``) plus data shards
``<prefix>.data-0000k-of-0000n`` holding the raw little-endian tensor bytes.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._compat import prod
from ckptcompat.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats import _protowire as pw
from ckptcompat.formats._headers import TensorHeader, skip_data
from ckptcompat.formats.tf_bundle import _crc32c
from ckptcompat.formats.tf_bundle._sstable import SnappyBlockError, TableError, build_table, read_table

__all__ = ["DTYPES", "Bundle", "resolve_prefix", "open_bundle", "encode_tensor", "write_bundle",
           "shard_name", "STATE_FILE"]

log = logging.getLogger(__name__)

STATE_FILE = "checkpoint"
#: Limits of what an index may claim before anything is allocated.
MAX_SHARDS = 100_000
MAX_RANK = 254           # TensorFlow's own limit
MAX_STATE_FILE_BYTES = 1 << 20

#: TensorFlow DataType enum -> numpy dtype (DT_STRING handled separately).
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("float32"), 2: np.dtype("float64"), 3: np.dtype("int32"), 4: np.dtype("uint8"),
    5: np.dtype("int16"), 6: np.dtype("int8"), 8: np.dtype("complex64"), 9: np.dtype("int64"),
    10: np.dtype("bool"), 17: np.dtype("uint16"), 18: np.dtype("complex128"), 19: np.dtype("float16"),
    22: np.dtype("uint32"), 23: np.dtype("uint64"),
}
DT_STRING = 7
_DT_NAMES = {14: "bfloat16", 20: "resource", 21: "variant", 11: "qint8", 12: "quint8", 13: "qint32"}
_NP_TO_DT = {v: k for k, v in DTYPES.items()}


def shard_name(prefix: str | Path, shard: int, num_shards: int) -> Path:
    return Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")


def _state_candidates(state_file: Path) -> list[Path]:
    try:
        if state_file.stat().st_size > MAX_STATE_FILE_BYTES:
            raise CorruptCheckpointError(
                f"the checkpoint state file is over {MAX_STATE_FILE_BYTES} bytes", path=state_file,
                hint="it is a small text file listing bundle prefixes; this one is damaged")
        text = state_file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CheckpointNotFoundError(f"cannot read checkpoint state file: {exc}", path=state_file) from exc
    fields = pw.parse_checkpoint_state(text)
    paths = fields.get("model_checkpoint_path", []) + list(reversed(fields.get("all_model_checkpoint_paths", [])))
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        # absolute (often from another machine), relative to the state file, then its basename here
        base = raw.replace("\\", "/").rsplit("/", 1)[-1]
        for cand in (p if p.is_absolute() else state_file.parent / p, state_file.parent / base):
            if cand not in out:
                out.append(cand)
    return out


def resolve_prefix(path: str | os.PathLike[str]) -> Path:
    """The bundle prefix for ``path``: a prefix, a ``.index`` file, or a folder with ``checkpoint``."""
    p = Path(path)
    if p.name.endswith(".index") and p.is_file():
        return p.with_name(p.name[: -len(".index")])
    if Path(f"{p}.index").is_file():
        return p
    if p.is_file() and ".data-" in p.name:
        return p.with_name(p.name.split(".data-")[0])
    if p.is_dir():
        tried: list[str] = []
        state = p / STATE_FILE
        if state.is_file():
            cands = _state_candidates(state)
            for cand in cands:
                if Path(f"{cand}.index").is_file():
                    return cand
                tried.append(f"{cand}.index")
        indexes = sorted(p.glob("*.index"))
        if len(indexes) == 1 and not tried:
            return indexes[0].with_name(indexes[0].name[: -len(".index")])
        what = ("the checkpoint state file names no existing bundle; tried: " + ", ".join(tried)
                if tried else f"no 'checkpoint' state file and {len(indexes)} '*.index' files")
        raise CheckpointNotFoundError(what, path=p,
                                      hint="pass the bundle prefix explicitly (e.g. folder/model.ckpt)")
    if p.is_file():
        return p  # maybe a V1 single-file checkpoint; the caller decides
    raise CheckpointNotFoundError("no such file, folder or bundle prefix", path=p,
                                  hint="give the prefix (model.ckpt), the .index file or the folder")


@dataclass
class Bundle:
    """An opened bundle: its prefix, header and entries (key -> entry)."""

    prefix: Path
    header: pw.BundleHeader
    entries: dict[str, pw.BundleEntry]

    def keys(self) -> list[str]:
        return list(self.entries)

    def dtype_name(self, key: str) -> str:
        dt = self.entries[key].dtype
        if dt == DT_STRING:
            return "string"
        return str(DTYPES[dt]) if dt in DTYPES else _DT_NAMES.get(dt, f"dtype#{dt}")

    def is_numeric_or_string(self, key: str) -> bool:
        return self.entries[key].dtype in DTYPES or self.entries[key].dtype == DT_STRING

    def _bytes(self, key: str) -> bytes:
        e = self.entries[key]
        shard = shard_name(self.prefix, e.shard_id, max(self.header.num_shards, 1))
        try:
            with open(shard, "rb") as fh:
                fh.seek(e.offset)
                raw = fh.read(e.size)
        except FileNotFoundError as exc:
            raise CorruptCheckpointError(f"data shard {shard.name} is missing (needed for {key!r})",
                                         path=self.prefix,
                                         hint="copy every .data-* file along with the .index") from exc
        except OSError as exc:
            raise CorruptCheckpointError(f"cannot read {shard.name}: {exc}", path=self.prefix) from exc
        if len(raw) != e.size:
            raise CorruptCheckpointError(f"{shard.name} is truncated: {key!r} needs bytes "
                                         f"{e.offset}..{e.offset + e.size}", path=self.prefix)
        return raw

    def read(self, key: str) -> np.ndarray:
        """The tensor ``key`` as a numpy array (bitwise), verifying its CRC-32C."""
        e = self.entries[key]
        if e.num_slices:
            raise UnsupportedFormatError(f"tensor {key!r} is partitioned into slices", path=self.prefix,
                                         hint="re-save without partitioners, or load with TensorFlow")
        if e.shape is None:
            raise CorruptCheckpointError(f"tensor {key!r} has an unknown rank", path=self.prefix)
        if e.dtype not in DTYPES and e.dtype != DT_STRING:
            raise UnsupportedFormatError(f"tensor {key!r} has dtype {self.dtype_name(key)}",
                                         path=self.prefix, hint="only numeric, bool and string tensors are read")
        if e.dtype != DT_STRING and skip_data(e.shape):
            return self._header(key, e)
        raw = self._bytes(key)
        if e.dtype == DT_STRING:
            return self._strings(key, e, raw)
        if e.crc32c is not None and _crc32c.mask(_crc32c.crc32c(raw)) != e.crc32c:
            raise CorruptCheckpointError(f"checksum mismatch in tensor {key!r}", path=self.prefix,
                                         hint="the data shard is damaged; use an older checkpoint")
        dtype = DTYPES[e.dtype]
        if self.header.endianness == 1:
            dtype = dtype.newbyteorder(">")
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != len(raw):
            raise CorruptCheckpointError(f"tensor {key!r}: {len(raw)} bytes for shape {e.shape} "
                                         f"of {dtype}", path=self.prefix)
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e.shape)

    def _header(self, key: str, e: pw.BundleEntry) -> Any:
        """A headers-only read: the index entry (its size already checked against the shard by
        ``check_entries``) as a :class:`TensorHeader`; a missing shard is still an error."""
        shard = shard_name(self.prefix, e.shard_id, max(self.header.num_shards, 1))
        if not shard.is_file():
            raise CorruptCheckpointError(f"data shard {shard.name} is missing (needed for {key!r})",
                                         path=self.prefix,
                                         hint="copy every .data-* file along with the .index")
        return TensorHeader(tuple(e.shape or ()), DTYPES[e.dtype])

    def _strings(self, key: str, e: pw.BundleEntry, raw: bytes) -> np.ndarray:
        count = int(np.prod(e.shape, dtype=np.int64))
        if count == 0:  # an empty string tensor (an unadapted lookup's accumulator): TF may still write a checksum
            return np.zeros(tuple(e.shape or ()), dtype=object)
        try:
            pos, lens = 0, []
            for _ in range(count):
                n, pos = pw.read_varint(raw, pos)
                lens.append(n)
            len_bytes = pos
            stored_len_crc = struct.unpack_from("<I", raw, pos)[0] if count else None
            pos += 4 if count else 0
        except (ValueError, struct.error) as exc:
            raise CorruptCheckpointError(f"string tensor {key!r} is malformed", path=self.prefix) from exc
        if pos + sum(lens) != len(raw):
            raise CorruptCheckpointError(f"string tensor {key!r} lengths do not match its size",
                                         path=self.prefix)
        if e.crc32c is not None and count:
            ok = False
            for fmt in ("<I", "<Q"):  # element sizes are checksummed as uint32 (TF 2.x) or uint64
                try:
                    crc = _crc32c.crc32c(b"".join(struct.pack(fmt, n) for n in lens))
                except struct.error:
                    continue
                if _crc32c.mask(crc) == stored_len_crc:
                    crc = _crc32c.extend(crc, raw[len_bytes:])
                    ok = _crc32c.mask(crc) == e.crc32c
                    break
            if not ok:
                raise CorruptCheckpointError(f"checksum mismatch in string tensor {key!r}", path=self.prefix)
        out = np.empty(count, dtype=object)
        for i, n in enumerate(lens):
            out[i] = raw[pos:pos + n]
            pos += n
        return out.reshape(e.shape)


def open_bundle(prefix: Path) -> Bundle:
    """Parse ``prefix.index``; raise typed errors for truncated/corrupt/unsupported files."""
    index = Path(f"{prefix}.index")
    try:
        data = index.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError("bundle index is missing", path=index) from exc
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read the bundle index: {exc}", path=index) from exc
    try:
        table = read_table(data)
    except SnappyBlockError as exc:
        raise UnsupportedFormatError("the index uses snappy-compressed blocks", path=index,
                                     hint="open it with TensorFlow (tf.train.load_checkpoint) and re-save") from exc
    except TableError as exc:
        raise CorruptCheckpointError(f"the bundle index is damaged: {exc}", path=index,
                                     hint="the .index file is truncated or not a tensor bundle") from exc
    header = None
    entries: dict[str, pw.BundleEntry] = {}
    try:
        for key, value in table:
            if key == b"":
                header = pw.decode_header(value)
            else:
                entries[key.decode("utf-8", "replace")] = pw.decode_entry(value)
    except ValueError as exc:
        raise CorruptCheckpointError(f"undecodable bundle entry: {exc}", path=index) from exc
    if header is None:
        raise CorruptCheckpointError("the bundle index has no header entry", path=index)
    if not 1 <= header.num_shards <= MAX_SHARDS or header.endianness not in (0, 1):
        raise CorruptCheckpointError(f"absurd bundle header {header}", path=index,
                                     hint=f"a bundle has 1..{MAX_SHARDS} shards; the index is damaged")
    for key, e in entries.items():
        if e.shard_id >= header.num_shards or e.offset < 0 or e.size < 0:
            raise CorruptCheckpointError(f"entry {key!r} points outside its shards", path=index)
    check_entries(Path(prefix), header, entries, index)
    return Bundle(Path(prefix), header, entries)


def check_entries(prefix: Path, header: pw.BundleHeader, entries: dict[str, pw.BundleEntry],
                  index: Path) -> None:
    """Refuse entries whose shape or byte range cannot be right, before anything is allocated.

    Every entry must lie inside its shard (``offset + size <= shard size``; a missing shard is
    reported when a tensor in it is read), have a rank of at most :data:`MAX_RANK` and no
    negative dimension, and a numeric one exactly ``prod(shape) * itemsize`` bytes.
    """
    sizes: dict[int, int | None] = {}
    hint = "the .index file is damaged or crafted; use an older checkpoint"
    for key, e in entries.items():
        shown = key if len(key) <= 200 else key[:200] + "..."
        if e.shape is not None and (len(e.shape) > MAX_RANK or any(d < 0 for d in e.shape)):
            raise CorruptCheckpointError(f"entry {shown!r} has an impossible shape (rank "
                                         f"{len(e.shape)}, limit {MAX_RANK}; dimensions >= 0)",
                                         path=index, hint=hint)
        if e.shard_id not in sizes:
            try:
                sizes[e.shard_id] = shard_name(prefix, e.shard_id, header.num_shards).stat().st_size
            except OSError:
                sizes[e.shard_id] = None
        shard_size = sizes[e.shard_id]
        if shard_size is not None and e.offset + e.size > shard_size:
            raise CorruptCheckpointError(
                f"data shard {e.shard_id} is truncated or the index damaged: entry {shown!r} claims "
                f"bytes {e.offset}..{e.offset + e.size}, the shard has {shard_size} bytes", path=index,
                hint="copy the complete .data-* files along with the .index, or use an older checkpoint")
        if e.num_slices or e.shape is None:
            continue
        count = prod(e.shape)
        if e.dtype in DTYPES and count * DTYPES[e.dtype].itemsize != e.size:
            raise CorruptCheckpointError(
                f"entry {shown!r}: {e.size} bytes for shape {e.shape} of {DTYPES[e.dtype]}",
                path=index, hint=hint)
        if e.dtype == DT_STRING and count > e.size:
            raise CorruptCheckpointError(f"string entry {shown!r}: {count} strings in {e.size} bytes",
                                         path=index, hint=hint)


def encode_tensor(value: np.ndarray) -> tuple[int, bytes, int]:
    """(TF dtype enum, stored bytes, masked crc32c) of one tensor."""
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU":
        items = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in arr.reshape(-1).tolist()]
        lens = b"".join(pw.encode_varint(len(x)) for x in items)
        if not items:
            return DT_STRING, b"", _crc32c.mask(0)
        crc = _crc32c.crc32c(b"".join(struct.pack("<I", len(x)) for x in items))
        len_crc = struct.pack("<I", _crc32c.mask(crc))
        body = b"".join(items)
        crc = _crc32c.extend(_crc32c.extend(crc, len_crc), body)
        return DT_STRING, lens + len_crc + body, _crc32c.mask(crc)
    native = np.dtype(arr.dtype.name) if arr.dtype.kind in "biufc" else arr.dtype
    if native not in _NP_TO_DT:
        raise UnsupportedFormatError(f"cannot store dtype {arr.dtype} in a tensor bundle")
    raw = np.ascontiguousarray(arr, dtype=native.newbyteorder("<")).tobytes()
    return _NP_TO_DT[native], raw, _crc32c.mask(_crc32c.crc32c(raw))


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray]) -> list[Path]:
    """Write ``prefix.index`` + one data shard (no fsync/rename: the caller does that)."""
    data = bytearray()
    items: list[tuple[bytes, bytes]] = [(b"", pw.encode_header(pw.BundleHeader(num_shards=1, producer=1)))]
    for key in sorted(tensors, key=lambda k: k.encode("utf-8")):
        dt, raw, crc = encode_tensor(tensors[key])
        entry = pw.BundleEntry(dtype=dt, shape=tuple(int(d) for d in np.shape(tensors[key])),
                               offset=len(data), size=len(raw), crc32c=crc)
        data += raw
        items.append((key.encode("utf-8"), pw.encode_entry(entry)))
    shard = shard_name(prefix, 0, 1)
    shard.write_bytes(bytes(data))
    index = Path(f"{prefix}.index")
    index.write_bytes(build_table(items))
    return [index, shard]
