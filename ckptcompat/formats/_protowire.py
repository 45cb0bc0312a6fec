"""Minimal protobuf wire-format codec for the few TensorFlow messages a bundle holds.

Messages decoded: ``BundleHeaderProto``, ``BundleEntryProto`` (with ``TensorShapeProto``),
``TrackableObjectGraph``; plus the text-format ``CheckpointState`` (the ``checkpoint`` file).
Decoding raises :class:`ValueError` on malformed bytes; callers wrap it in a typed error.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "read_varint", "encode_varint", "iter_fields",
    "BundleHeader", "BundleEntry", "decode_header", "encode_header", "decode_entry", "encode_entry",
    "ObjectReference", "SerializedTensor", "SlotVariableReference", "TrackableObject",
    "decode_object_graph", "parse_checkpoint_state", "format_checkpoint_state",
]


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, new position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int (negative ints as 64-bit two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field; length-delimited values are bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        num, wtype = key >> 3, key & 7
        if wtype == 0:
            val, pos = read_varint(buf, pos)
            yield num, wtype, val
        elif wtype == 1:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            yield num, wtype, struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wtype == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise ValueError("truncated length-delimited field")
            yield num, wtype, bytes(buf[pos:pos + n])
            pos += n
        elif wtype == 5:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            yield num, wtype, struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wtype}")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _key(num: int, wtype: int) -> bytes:
    return encode_varint((num << 3) | wtype)


def _len_field(num: int, payload: bytes) -> bytes:
    return _key(num, 2) + encode_varint(len(payload)) + payload


@dataclass
class BundleHeader:
    num_shards: int = 0
    endianness: int = 0  # 0 little, 1 big
    producer: int = 0
    min_consumer: int = 0


@dataclass
class BundleEntry:
    dtype: int = 0
    shape: tuple[int, ...] | None = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    num_slices: int = 0


def decode_header(buf: bytes) -> BundleHeader:
    h = BundleHeader()
    for num, _, val in iter_fields(buf):
        if num == 1:
            h.num_shards = int(val)  # type: ignore[arg-type]
        elif num == 2:
            h.endianness = int(val)  # type: ignore[arg-type]
        elif num == 3 and isinstance(val, bytes):
            for vnum, _, vval in iter_fields(val):
                if vnum == 1:
                    h.producer = _signed(int(vval))  # type: ignore[arg-type]
                elif vnum == 2:
                    h.min_consumer = _signed(int(vval))  # type: ignore[arg-type]
    return h


def encode_header(h: BundleHeader) -> bytes:
    version = _key(1, 0) + encode_varint(h.producer)
    if h.min_consumer:
        version += _key(2, 0) + encode_varint(h.min_consumer)
    out = _key(1, 0) + encode_varint(h.num_shards)
    if h.endianness:
        out += _key(2, 0) + encode_varint(h.endianness)
    return out + _len_field(3, version)


#: Most dimensions a TensorShapeProto may list (TensorFlow's limit is 254).
MAX_DIMS = 254


def _decode_shape(buf: bytes) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown = False
    for num, _, val in iter_fields(buf):
        if num == 2 and isinstance(val, bytes):
            if len(dims) >= MAX_DIMS:
                raise ValueError(f"shape has more than {MAX_DIMS} dimensions")
            size = 0
            for dnum, _, dval in iter_fields(val):
                if dnum == 1:
                    size = _signed(int(dval))  # type: ignore[arg-type]
            dims.append(size)
        elif num == 3 and val:
            unknown = True
    return None if unknown else tuple(dims)


def decode_entry(buf: bytes) -> BundleEntry:
    e = BundleEntry()
    for num, _, val in iter_fields(buf):
        if num == 1:
            e.dtype = int(val)  # type: ignore[arg-type]
        elif num == 2 and isinstance(val, bytes):
            e.shape = _decode_shape(val)
        elif num == 3:
            e.shard_id = int(val)  # type: ignore[arg-type]
        elif num == 4:
            e.offset = _signed(int(val))  # type: ignore[arg-type]
        elif num == 5:
            e.size = _signed(int(val))  # type: ignore[arg-type]
        elif num == 6:
            e.crc32c = int(val)  # type: ignore[arg-type]
        elif num == 7:
            e.num_slices += 1
    return e


def encode_entry(e: BundleEntry) -> bytes:
    shape = b"".join(_len_field(2, _key(1, 0) + encode_varint(d) if d else b"")
                     for d in (e.shape or ()))
    out = _key(1, 0) + encode_varint(e.dtype) + _len_field(2, shape)
    if e.shard_id:
        out += _key(3, 0) + encode_varint(e.shard_id)
    if e.offset:
        out += _key(4, 0) + encode_varint(e.offset)
    if e.size:
        out += _key(5, 0) + encode_varint(e.size)
    if e.crc32c is not None:
        out += _key(6, 5) + struct.pack("<I", e.crc32c)
    return out


@dataclass
class ObjectReference:
    node_id: int
    local_name: str


@dataclass
class SerializedTensor:
    name: str
    full_name: str
    checkpoint_key: str


@dataclass
class SlotVariableReference:
    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclass
class TrackableObject:
    children: list[ObjectReference] = field(default_factory=list)
    attributes: list[SerializedTensor] = field(default_factory=list)
    slot_variables: list[SlotVariableReference] = field(default_factory=list)


def _text(val: int | bytes) -> str:
    return val.decode("utf-8", "replace") if isinstance(val, bytes) else ""


def decode_object_graph(buf: bytes) -> list[TrackableObject]:
    """Decode a serialized ``TrackableObjectGraph`` into its node list (node 0 is the root)."""
    nodes: list[TrackableObject] = []
    for num, _, val in iter_fields(buf):
        if num != 1 or not isinstance(val, bytes):
            continue
        node = TrackableObject()
        for fnum, _, fval in iter_fields(val):
            if not isinstance(fval, bytes):
                continue
            sub = {n: v for n, _, v in iter_fields(fval)}
            if fnum == 1:
                node.children.append(ObjectReference(int(sub.get(1, 0)), _text(sub.get(2, b""))))
            elif fnum == 2:
                node.attributes.append(SerializedTensor(_text(sub.get(1, b"")), _text(sub.get(2, b"")),
                                                        _text(sub.get(3, b""))))
            elif fnum == 3:
                node.slot_variables.append(SlotVariableReference(
                    int(sub.get(1, 0)), _text(sub.get(2, b"")), int(sub.get(3, 0))))
        nodes.append(node)
    return nodes


_TEXT_FIELD = re.compile(r'^\s*([A-Za-z_]+)\s*:\s*"((?:[^"\\]|\\.)*)"\s*$')


def _unescape(s: str) -> str:
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode(
        "latin-1", "replace").decode("utf-8", "replace")


def parse_checkpoint_state(text: str) -> dict[str, list[str]]:
    """Parse the text ``CheckpointState``: field name -> list of string values."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _TEXT_FIELD.match(line)
        if m:
            out.setdefault(m.group(1), []).append(_unescape(m.group(2)))
    return out


def format_checkpoint_state(model_checkpoint_path: str, all_paths: list[str]) -> str:
    """Text ``CheckpointState`` with the given (relative) paths."""
    def q(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')
    lines = [f'model_checkpoint_path: "{q(model_checkpoint_path)}"']
    lines += [f'all_model_checkpoint_paths: "{q(p)}"' for p in all_paths]
    return "\n".join(lines) + "\n"
