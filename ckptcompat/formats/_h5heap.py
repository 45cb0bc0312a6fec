"""The global heap behind variable-length attributes, checked before HDF5 reads it.

Keras keeps ``model_config``, ``training_config`` and other text attributes as HDF5
variable-length strings, whose bytes live in a *global heap collection*. HDF5 (1.14) walks a
collection object by object when it loads it, and a free-space object that claims 0 bytes
makes that walk stand still: the read never returns, inside C, where no Python timeout
reaches (a fuzzed ``model.h5`` did exactly this). So before the attributes of a file are read,
:func:`check_file` finds every heap reference of every variable-length attribute -- parsing
the object headers of the file's groups from the bytes, without HDF5 -- and walks each
referenced collection the way HDF5 will; a walk that cannot end is a
:class:`~ckptcompat.errors.CorruptCheckpointError`. Anything this parser does not know
(dense attribute storage, unknown versions) is left to HDF5 as before.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Any, Callable

from ckptcompat.errors import CorruptCheckpointError

__all__ = ["check_file"]

log = logging.getLogger(__name__)

_ReadAt = Callable[[int, int], bytes]
_ATTRIBUTE, _CONTINUATION = 0x000C, 0x0010
_VLEN_CLASS = 9
#: header blocks and messages looked at per object (a crafted header may claim any count)
_MAX_MESSAGES, _MAX_BLOCKS = 4096, 64


def check_file(h5: Any, read_at: _ReadAt, path: str | os.PathLike[str]) -> None:
    """Walk the heap collections every variable-length attribute of ``h5``'s groups refers to."""
    import h5py

    sizes = _superblock_sizes(read_at)
    if sizes is None:
        return
    headers = [_root_header(read_at, sizes)]

    def note_group(_name: bytes, info: Any) -> None:  # HDF5's own object walk: no h5py object per member
        if info.type == h5py.h5o.TYPE_GROUP:
            try:
                headers.append(int(info.addr))
            except (AttributeError, TypeError, ValueError, OverflowError):
                pass  # no header address from HDF5 for this one (a damaged header)

    try:
        h5py.h5o.visit(h5.id, note_group, info=True)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:  # a damaged header further down:
        log.debug("%s: not every group listed (%s); checking those found", path, exc)  # HDF5 says so later
    heaps = set(_collections_near_the_start(read_at))
    for addr in headers:
        if addr is not None:
            heaps.update(_vlen_heap_addresses(read_at, addr, sizes))
    for heap in sorted(heaps):
        _walk_collection(read_at, heap, sizes[1], path)


#: bytes scanned for collection signatures: the heaps of the text attributes Keras writes first
#: sit early in the file; beyond this, only the collections the headers name are walked (a
#: metadata-only ``inspect`` stays well under 1 % of a large file's bytes)
_SCAN_BYTES = 64 << 10


def _collections_near_the_start(read_at: _ReadAt) -> list[int]:
    """Addresses of ``GCOL`` version-1 signatures in the first :data:`_SCAN_BYTES` of the file:
    a damaged object header may hide which collection an attribute uses, the bytes do not."""
    data = read_at(0, _SCAN_BYTES)
    out, at = [], data.find(b"GCOL\x01\x00\x00\x00")
    while at != -1:
        out.append(at)
        at = data.find(b"GCOL\x01\x00\x00\x00", at + 1)
    return out


def _root_header(read_at: _ReadAt, sizes: tuple[int, int]) -> int | None:
    """The root group's object header address, from the superblock (versions 0-3)."""
    offsets = sizes[0]
    head = read_at(0, 128)
    if head[8] in (0, 1):  # ... base, free-space, EOF, driver addresses, then the root symbol entry
        at = (24 if head[8] == 0 else 28) + 4 * offsets + offsets
    elif head[8] in (2, 3):  # base, extension, EOF, then the root object header address
        at = 12 + 3 * offsets
    else:
        return None
    return _uint(head, at, offsets) if len(head) >= at + offsets else None


def _superblock_sizes(read_at: _ReadAt) -> tuple[int, int] | None:
    """(size of offsets, size of lengths) from a superblock at byte 0, else None."""
    head = read_at(0, 16)
    if len(head) < 16 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return None
    if head[8] in (0, 1):
        return head[13], head[14]
    if head[8] in (2, 3):
        return head[9], head[10]
    return None


def _uint(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "little")


def _vlen_heap_addresses(read_at: _ReadAt, addr: int, sizes: tuple[int, int]) -> list[int]:
    """Heap collection addresses of the variable-length attributes in the object header at ``addr``."""
    out: list[int] = []
    for msg_type, data in _messages(read_at, addr, sizes):
        if msg_type == _ATTRIBUTE:
            out += _attribute_heaps(data, sizes[0], sizes[1])
    return out


def _messages(read_at: _ReadAt, addr: int, sizes: tuple[int, int]) -> list[tuple[int, bytes]]:
    """(type, data) of the header messages, following continuation blocks."""
    offsets, lengths = sizes
    first = read_at(addr, 16)
    if first[:4] == b"OHDR":
        flags = first[5]
        at = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        head = read_at(addr, at + width)
        blocks = [(addr + at + width, _uint(head, at, width), 2, flags)]
    elif first[:1] == b"\x01":
        blocks = [(addr + 16, _uint(first, 8, 4), 1, 0)]
    else:
        return []
    out: list[tuple[int, bytes]] = []
    while blocks and len(out) < _MAX_MESSAGES and len(blocks) < _MAX_BLOCKS:
        start, size, version, flags = blocks.pop(0)
        data = read_at(start, size)
        for msg_type, body in _block_messages(data, version, flags):
            out.append((msg_type, body))
            if msg_type == _CONTINUATION and len(body) >= offsets + lengths:
                nxt, length = _uint(body, 0, offsets), _uint(body, offsets, lengths)
                if version == 2:
                    blocks.append((nxt + 4, max(length - 8, 0), 2, flags))  # "OCHK" ... checksum
                else:
                    blocks.append((nxt, length, 1, 0))
    return out


def _block_messages(data: bytes, version: int, flags: int) -> list[tuple[int, bytes]]:
    out = []
    at = 0
    head = 8 if version == 1 else 4 + (2 if flags & 0x04 else 0)
    while at + head <= len(data):
        if version == 1:
            msg_type, size = struct.unpack_from("<HH", data, at)
        else:
            msg_type, size = data[at], struct.unpack_from("<H", data, at + 1)[0]
        body = data[at + head:at + head + size]
        out.append((msg_type, body))
        at += head + size
        if version == 1:
            at = (at + 7) & ~7
    return out


def _attribute_heaps(data: bytes, offsets: int, lengths: int) -> list[int]:
    """Heap addresses held by one attribute message, when its datatype is variable-length."""
    if len(data) < 8 or data[0] not in (1, 2, 3):
        return []
    version = data[0]
    name_size, type_size, space_size = struct.unpack_from("<HHH", data, 2)
    at = 8 if version == 1 else (8 if version == 2 else 9)
    pad = (lambda n: (n + 7) & ~7) if version == 1 else (lambda n: n)
    at += pad(name_size)
    if at >= len(data) or data[at] & 0x0F != _VLEN_CLASS:
        return []
    at += pad(type_size)
    count = _element_count(data[at:at + space_size], lengths)
    at += pad(space_size)
    step = 4 + offsets + 4  # length, collection address, object index
    return [_uint(data, at + i * step + 4, offsets) for i in range(min(count, 1 << 16))
            if at + (i + 1) * step <= len(data)]


def _element_count(space: bytes, lengths: int) -> int:
    if len(space) < 4:
        return 0
    version, rank = space[0], space[1]
    if version == 2 and space[3] == 2:
        return 0  # a null dataspace holds nothing
    at = 8 if version == 1 else 4
    count = 1
    for i in range(rank):
        count *= _uint(space, at + lengths * i, lengths)
    return count


def _walk_collection(read_at: _ReadAt, addr: int, lengths: int, path: str | os.PathLike[str]) -> None:
    """Walk a heap collection as HDF5 loads it; a free-space object of size 0 stalls that walk."""
    head = read_at(addr, 8 + lengths)
    if len(head) < 8 + lengths or head[:4] != b"GCOL":
        return  # not a collection: HDF5 reports that itself
    size = _uint(head, 8, lengths)
    body = read_at(addr, min(size, 1 << 26))
    at, end = 8 + lengths, len(body)
    while at + 8 + lengths <= end:
        index = _uint(body, at, 2)
        obj_size = _uint(body, at + 8, lengths)
        need = 8 + lengths + ((obj_size + 7) & ~7) if index else obj_size
        if need == 0:
            raise CorruptCheckpointError(
                f"the HDF5 global heap at byte {addr} holds a free-space entry of size 0: HDF5 would "
                "loop forever reading a text attribute (model_config, ...)", path=path,
                hint="the file is damaged or crafted; re-save the checkpoint with Keras")
        at += need
    log.debug("%s: heap collection at %d checked", path, addr)


def open_checked(source: Any, path: str | os.PathLike[str]) -> Any:
    """``h5py.File(source, "r")`` (a path or a seekable binary file) once :func:`check_file`
    passed; the file is closed again when the check refuses it. Errors opening it are the
    caller's to type, as with ``h5py.File``."""
    import h5py

    f = h5py.File(source, "r")
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                check_file(f, _reader(fh), path)
        else:
            where = source.tell()
            try:
                check_file(f, _reader(source), path)
            finally:
                source.seek(where)
    except BaseException:
        f.close()
        raise
    return f


def _reader(fh: Any) -> _ReadAt:
    def read_at(offset: int, size: int) -> bytes:
        fh.seek(offset)
        return bytes(fh.read(size))

    return read_at
