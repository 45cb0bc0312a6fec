"""Unit tests of the pure-Python table, protobuf-wire and CRC-32C helpers of tf_bundle."""

from __future__ import annotations

import struct

import pytest

from ckptcompat.formats import _protowire as pw
from ckptcompat.formats.tf_bundle import _crc32c
from ckptcompat.formats.tf_bundle._sstable import FOOTER_SIZE, SnappyBlockError, TableError, build_table, read_table


def _items(n: int) -> list[tuple[bytes, bytes]]:
    return sorted((f"layer_{i // 3}/kernel/Adam_{i}".encode(), bytes([i % 251]) * (i % 97)) for i in range(n))


def test_crc32c_known_vectors() -> None:
    assert _crc32c.crc32c(b"123456789") == 0xE3069283
    assert _crc32c.crc32c(b"") == 0
    assert _crc32c.crc32c(bytes(32)) == 0x8A9136AA
    big = bytes(range(256)) * 1000  # exercises the chunked numpy path
    assert _crc32c.crc32c(big) == _crc32c._raw_update(0xFFFFFFFF, big) ^ 0xFFFFFFFF
    assert _crc32c.extend(_crc32c.crc32c(big[:70001]), big[70001:]) == _crc32c.crc32c(big)
    assert _crc32c.unmask(_crc32c.mask(0x12345678)) == 0x12345678


@pytest.mark.parametrize("n", [0, 1, 17, 600])
def test_table_round_trip(n: int) -> None:
    items = _items(n)
    data = build_table(items, block_size=512)
    assert read_table(data) == items


def test_table_rejects_unsorted_keys() -> None:
    with pytest.raises(ValueError):
        build_table([(b"b", b""), (b"a", b"")])


def test_truncated_and_bad_magic() -> None:
    data = build_table(_items(50), block_size=256)
    for cut in range(0, len(data), max(1, len(data) // 10)):
        with pytest.raises(TableError):
            read_table(data[:cut])
    with pytest.raises(TableError, match="magic"):
        read_table(data[:-1] + b"\x00")


def test_block_checksum_and_snappy() -> None:
    items = _items(5)
    data = bytearray(build_table(items))
    flipped = bytearray(data)
    flipped[3] ^= 0xFF
    with pytest.raises(TableError, match="checksum"):
        read_table(bytes(flipped))
    # mark the first data block as snappy (type byte 1) with a matching checksum
    size = _first_block_size(bytes(data))
    data[size] = 1
    data[size + 1:size + 5] = struct.pack("<I", _crc32c.mask(_crc32c.crc32c(bytes(data[:size + 1]))))
    with pytest.raises(SnappyBlockError):
        read_table(bytes(data))


def _first_block_size(data: bytes) -> int:
    footer = data[-FOOTER_SIZE:]
    _, pos = pw.read_varint(footer, 0)
    _, pos = pw.read_varint(footer, pos)
    idx_off, pos = pw.read_varint(footer, pos)
    idx_size, _ = pw.read_varint(footer, pos)
    index = data[idx_off:idx_off + idx_size]
    # first index entry: shared=0, unshared, vlen, key, value=handle(offset, size)
    _, p = pw.read_varint(index, 0)
    unshared, p = pw.read_varint(index, p)
    _, p = pw.read_varint(index, p)
    off, p = pw.read_varint(index, p + unshared)
    size, _ = pw.read_varint(index, p)
    assert off == 0
    return size


def test_entry_and_header_round_trip() -> None:
    e = pw.BundleEntry(dtype=1, shape=(3, 0, 4), shard_id=2, offset=123456789, size=48, crc32c=0xDEADBEEF)
    assert pw.decode_entry(pw.encode_entry(e)) == e
    h = pw.BundleHeader(num_shards=3, endianness=0, producer=1)
    assert pw.decode_header(pw.encode_header(h)) == h
    assert pw.decode_entry(pw.encode_entry(pw.BundleEntry(dtype=9, shape=()))).shape == ()


def test_varint_errors() -> None:
    with pytest.raises(ValueError):
        pw.read_varint(b"\x80\x80", 0)
    assert pw.read_varint(pw.encode_varint(2**63 + 5), 0)[0] == 2**63 + 5


def test_checkpoint_state_text() -> None:
    text = pw.format_checkpoint_state("model.ckpt-2", ["model.ckpt-1", 'we"ird\\name'])
    fields = pw.parse_checkpoint_state(text + "# comment\nlast_preserved_timestamp: 1.5\n")
    assert fields["model_checkpoint_path"] == ["model.ckpt-2"]
    assert fields["all_model_checkpoint_paths"] == ["model.ckpt-1", 'we"ird\\name']
