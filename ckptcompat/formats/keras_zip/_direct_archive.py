"""Write a ``.keras`` archive in one pass: the weights HDF5 straight into its stored zip member.

A ``.keras`` file is a zip whose ``model.weights.h5`` member is STORED (uncompressed), so the
member's bytes are an HDF5 file lying at a fixed offset of the archive. HDF5 allows a *user
block* before its superblock (a power of two of at least 512 bytes, ignored by HDF5), and an
HDF5 file with a user block cut off is a valid HDF5 file again. So the archive is written as
an HDF5 file whose user block holds the zip's beginning:

    [config.json member][metadata.json member, padded][weights local header] | HDF5 ... | tail

The weights member's local header uses the data-descriptor flag (CRC and sizes follow the
data), so the whole user block is known before the tensors are written. The large tensors are
written with ``os.pwrite`` while another thread computes the file's sha256 and the member's
CRC-32 (:class:`~ckptcompat.formats.keras_h5._direct.DirectDatasets`); the data descriptor,
central directory and end record are appended and hashed last. No copy of the weights is
built in memory and nothing is read back to hash it. ``metadata.json`` is padded with
trailing spaces (still valid JSON) so that the weights member starts exactly at the user
block's end.

Archives of 4 GiB or more need zip64 records: :func:`fits` says when to use the ordinary writer.
"""

from __future__ import annotations

import datetime
import os
import struct
import zlib
from pathlib import Path
from typing import Any

__all__ = ["write_archive", "fits"]

WEIGHTS_NAME = "model.weights.h5"
_LIMIT = 0xFFFFFFFF - (64 << 20)  # zip32 sizes and offsets, with room for HDF5 metadata
_FLAG_DESCRIPTOR = 0x08


def fits(tensor_bytes: int, config_bytes: int) -> bool:
    """True when the archive stays below zip32's 4 GiB limits."""
    return tensor_bytes + 2 * config_bytes < _LIMIT


def _dos_time(now: datetime.datetime) -> tuple[int, int]:
    return ((now.hour << 11) | (now.minute << 5) | (now.second // 2),
            ((now.year - 1980) << 9) | (now.month << 5) | now.day)


def _local_header(name: bytes, crc: int, size: int, flags: int, when: tuple[int, int]) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, when[0], when[1], crc, size, size,
                       len(name), 0) + name


def _central_header(name: bytes, crc: int, size: int, flags: int, when: tuple[int, int],
                    offset: int) -> bytes:
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, 0, when[0],
                       when[1], crc, size, size, len(name), 0, 0, 0, 0, 0o100644 << 16,
                       offset) + name


def _user_block(config: bytes, metadata: bytes, when: tuple[int, int]) -> tuple[bytes, list[Any]]:
    """The zip's beginning, exactly a power of two (>= 512) long; and the members written."""
    head = len(WEIGHTS_NAME) + 30
    fixed = 2 * 30 + len(b"config.json") + len(b"metadata.json") + len(config) + len(metadata) + head
    size = 512
    while size < fixed:
        size *= 2
    metadata = metadata + b" " * (size - fixed)  # trailing whitespace: the same JSON
    members, out, offset = [], [], 0
    for name, data in ((b"config.json", config), (b"metadata.json", metadata)):
        crc = zlib.crc32(data)
        record = _local_header(name, crc, len(data), 0, when) + data
        members.append((name, crc, len(data), 0, offset))
        out.append(record)
        offset += len(record)
    out.append(_local_header(WEIGHTS_NAME.encode(), 0, 0, _FLAG_DESCRIPTOR, when))
    block = b"".join(out)
    assert len(block) == size, (len(block), size)
    return block, members


def write_archive(path: Path, config: bytes, metadata: bytes, fill: Any, *, durable: bool
                  ) -> tuple[int, str]:
    """Write the archive at ``path`` (a new file); ``fill(h5_file, put)`` creates the weights
    datasets through ``put(group, name, array)``. Returns the file's ``(size, sha256)``."""
    from ckptcompat._lazy import require
    from ckptcompat.formats.keras_h5._direct import DirectDatasets, disk_errors_as_oserror

    h5py = require("h5py", "write Keras 3 .keras files")
    when = _dos_time(datetime.datetime.now())
    block, members = _user_block(config, metadata, when)
    direct = DirectDatasets(h5py)
    with disk_errors_as_oserror():  # a full disk: OSError(28), a StoreWriteError for the caller
        with h5py.File(path, "w", userblock_size=len(block)) as h5:
            fill(h5, direct.put)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, block, 0)  # the user block, left zero by HDF5
    finally:
        os.close(fd)
    size, _ = direct.finish(path, durable=False, crc_from=len(block))
    data_size = size - len(block)
    tail = [struct.pack("<IIII", 0x08074B50, direct.crc32, data_size, data_size)]
    members.append((WEIGHTS_NAME.encode(), direct.crc32, data_size, _FLAG_DESCRIPTOR,
                    members[-1][4] + 30 + len(members[-1][0]) + members[-1][2]))
    directory = b"".join(_central_header(name, crc, n, flags, when, offset)
                         for name, crc, n, flags, offset in members)
    start = size + len(tail[0])
    tail.append(directory)
    tail.append(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                            len(directory), start, 0))
    appended = b"".join(tail)
    with open(path, "ab") as fh:
        fh.write(appended)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())
    digest = direct.digest
    digest.update(appended)
    return size + len(appended), digest.hexdigest()
