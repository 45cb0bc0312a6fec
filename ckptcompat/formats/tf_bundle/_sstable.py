"""Reader and writer of the LevelDB-style sorted table TensorFlow uses for ``.index`` files.

Layout: data blocks, an (empty) meta-index block, an index block, and a 48-byte footer
(two block handles, zero padding, 8-byte magic). Each block is a run of entries
(``varint shared, varint unshared, varint value_len, key delta, value``) followed by
``uint32`` restart offsets and their count, then a 5-byte trailer (compression type byte
and masked CRC-32C of contents + type). Only uncompressed blocks are supported.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from ckptcompat.formats.tf_bundle import _crc32c
from ckptcompat.formats._protowire import encode_varint, read_varint

__all__ = ["MAGIC", "FOOTER_SIZE", "TableError", "SnappyBlockError", "read_table", "build_table"]

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_TRAILER = 5
_RESTART_INTERVAL = 16
_BLOCK_SIZE = 4096


class TableError(ValueError):
    """The bytes are not a well-formed table (truncated, bad magic, bad checksum, ...)."""


class SnappyBlockError(TableError):
    """A block is snappy-compressed (type 1), which this pure-Python reader does not decode."""


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int, verify: bool) -> bytes:
    end = offset + size
    if offset < 0 or end + _TRAILER > len(data):
        raise TableError(f"block at {offset}+{size} runs past the end of the file ({len(data)} bytes)")
    contents = data[offset:end]
    ctype = data[end]
    if verify:
        stored = struct.unpack_from("<I", data, end + 1)[0]
        actual = _crc32c.mask(_crc32c.crc32c(data[offset:end + 1]))
        if stored != actual:
            raise TableError(f"block checksum mismatch at offset {offset}")
    if ctype == 1:
        raise SnappyBlockError("snappy-compressed block")
    if ctype != 0:
        raise TableError(f"unknown block compression type {ctype}")
    return contents


def _iter_block(contents: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(contents) < 4:
        raise TableError("block too short")
    num_restarts = struct.unpack_from("<I", contents, len(contents) - 4)[0]
    limit = len(contents) - 4 - 4 * num_restarts
    if limit < 0:
        raise TableError("bad restart count")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(contents, pos)
        unshared, pos = read_varint(contents, pos)
        vlen, pos = read_varint(contents, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise TableError("malformed block entry")
        key = key[:shared] + contents[pos:pos + unshared]
        pos += unshared
        yield key, contents[pos:pos + vlen]
        pos += vlen


def read_table(data: bytes, *, verify_checksums: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a table, in file order. Raises :class:`TableError`."""
    if len(data) < FOOTER_SIZE:
        raise TableError(f"file too short for a table footer ({len(data)} < {FOOTER_SIZE} bytes)")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != MAGIC:
        raise TableError("bad table magic number (not a tensor-bundle index or truncated)")
    try:
        _, _, pos = _handle(footer, 0)
        idx_off, idx_size, _ = _handle(footer, pos)
        entries: list[tuple[bytes, bytes]] = []
        body = data[:-FOOTER_SIZE]
        for _, handle in _iter_block(_block(body, idx_off, idx_size, verify_checksums)):
            off, size, _ = _handle(handle, 0)
            entries.extend(_iter_block(_block(body, off, size, verify_checksums)))
    except TableError:
        raise
    except ValueError as exc:  # varint errors
        raise TableError(str(exc)) from exc
    keys = [k for k, _ in entries]
    if keys != sorted(keys):
        raise TableError("table keys are not sorted")
    return entries


class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.interval = restart_interval
        self.buf = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < self.interval:
            n = min(len(key), len(self.last))
            while shared < n and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.count = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buf += key[shared:] + value
        self.last = key
        self.count += 1

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buf) + tail + struct.pack("<I", len(self.restarts))

    def size(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4


def build_table(items: Iterable[tuple[bytes, bytes]], *, block_size: int = _BLOCK_SIZE) -> bytes:
    """Serialize sorted (key, value) pairs as a table (uncompressed blocks)."""
    out = bytearray()

    def emit(contents: bytes) -> bytes:
        offset = len(out)
        out.extend(contents)
        out.append(0)
        out.extend(struct.pack("<I", _crc32c.mask(_crc32c.crc32c(contents + b"\x00"))))
        return encode_varint(offset) + encode_varint(len(contents))

    index = _BlockBuilder(1)
    block = _BlockBuilder(_RESTART_INTERVAL)
    last: bytes | None = None
    for key, value in items:
        if last is not None and key <= last:
            raise ValueError(f"keys must be strictly increasing: {key!r} after {last!r}")
        if block.count and block.size() >= block_size:
            index.add(block.last, emit(block.finish()))
            block = _BlockBuilder(_RESTART_INTERVAL)
        block.add(key, value)
        last = key
    if block.count or not index.count:
        index.add(block.last, emit(block.finish()))
    meta_handle = emit(_BlockBuilder(1).finish())
    index_handle = emit(index.finish())
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    out.extend(footer)
    return bytes(out)
