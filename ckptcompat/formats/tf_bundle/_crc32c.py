"""CRC-32C (Castagnoli), as used by TensorFlow tensor bundles and LevelDB tables.

Pure Python + numpy: small inputs use a table loop; large ones are split into equal
chunks whose CRCs are computed side by side with numpy and then combined (the zlib
``crc32_combine`` construction over GF(2)). ``mask``/``unmask`` are LevelDB's masking.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crc32c", "extend", "mask", "unmask"]

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()
_NP_TABLE = np.array(_TABLE, dtype=np.uint32)
_SMALL = 1 << 16
_CHUNKS = 4096


def _raw_update(reg: int, data: bytes | memoryview) -> int:
    table = _TABLE
    for byte in bytes(data):
        reg = table[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg


def _gf2_times(mat: list[int], vec: int) -> int:
    out = 0
    i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def _zeros_operator(length: int) -> list[int]:
    """Matrix that advances a finalized CRC over ``length`` zero bytes (zlib's construction)."""
    odd = [_POLY] + [1 << n for n in range(31)]  # operator for one zero bit
    even = _gf2_square(odd)  # two bits
    odd = _gf2_square(even)  # four bits
    result: list[int] | None = None
    while length:
        even = _gf2_square(odd)
        if length & 1:
            result = even if result is None else [_gf2_times(even, c) for c in result]
        length >>= 1
        if not length:
            break
        odd = _gf2_square(even)
        if length & 1:
            result = odd if result is None else [_gf2_times(odd, c) for c in result]
        length >>= 1
    return result if result is not None else [1 << n for n in range(32)]


def _combine(crc1: int, crc2: int, op: list[int]) -> int:
    return _gf2_times(op, crc1) ^ crc2


def extend(crc: int, data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of (the bytes whose CRC is ``crc``) followed by ``data``."""
    view = memoryview(data).cast("B")
    n = len(view)
    if n < _SMALL:
        return _raw_update(crc ^ 0xFFFFFFFF, view) ^ 0xFFFFFFFF
    chunk = n // _CHUNKS
    body = np.frombuffer(view[: chunk * _CHUNKS], dtype=np.uint8).reshape(_CHUNKS, chunk)
    reg = np.full(_CHUNKS, 0xFFFFFFFF, dtype=np.uint32)
    table = _NP_TABLE
    for j in range(chunk):
        reg = table[(reg ^ body[:, j]) & 0xFF] ^ (reg >> np.uint32(8))
    crcs = (reg ^ np.uint32(0xFFFFFFFF)).tolist()
    op = _zeros_operator(chunk)
    result = crc
    for c in crcs:
        result = _combine(result, c, op)
    tail = view[chunk * _CHUNKS:]
    if len(tail):
        result = _raw_update(result ^ 0xFFFFFFFF, tail) ^ 0xFFFFFFFF
    return result


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data``."""
    return extend(0, data)


def mask(crc: int) -> int:
    """LevelDB/TensorFlow masked CRC (stored CRCs are masked)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
