"""A STORED zip member opened in place: a bounded, seekable window over the archive's bytes.

Keras writes ``model.weights.h5`` uncompressed (``ZIP_STORED``), so its bytes lie as they are
at a fixed offset of the archive. :class:`MemberWindow` reads exactly that range (h5py opens
it as a file-like object), so a reader touches only the HDF5 blocks it asks for: headers for a
headers-only ``inspect``, one tensor at a time for a streaming ``migrate``. A compressed
member has no such range; :func:`open_stored` answers ``None`` for it and callers read it whole.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

from ckptcompat.errors import CorruptCheckpointError

__all__ = ["MemberWindow", "open_stored", "data_offset"]

_LOCAL_HEADER = struct.Struct("<4s22xHH")   # signature, ..., name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_HINT = "the archive is damaged; restore it from a backup or re-save it"


class MemberWindow(io.RawIOBase):
    """Read-only bytes ``[start, start + size)`` of an open file, seekable; counts bytes read."""

    def __init__(self, fh: io.BufferedReader, start: int, size: int) -> None:
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self._size - self._pos))
        if want == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:want]) or 0
        self._pos += got
        self.bytes_read += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def data_offset(fh: io.BufferedReader, info: zipfile.ZipInfo, path: Path) -> int:
    """Where ``info``'s data starts in the archive open as ``fh`` (its local header checked)."""
    fh.seek(info.header_offset)
    head = fh.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size:
        raise CorruptCheckpointError(f"zip member {info.filename!r}: local header cut short", path=path,
                                     hint=_HINT)
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(head)
    if signature != _LOCAL_SIGNATURE:
        raise CorruptCheckpointError(f"zip member {info.filename!r}: no local header at offset "
                                     f"{info.header_offset}", path=path, hint=_HINT)
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def open_stored(path: Path, info: zipfile.ZipInfo) -> MemberWindow | None:
    """A :class:`MemberWindow` over the STORED member ``info`` of the archive at ``path``;
    ``None`` when it is compressed or encrypted. Its range must lie inside the archive."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 \
            or info.compress_size != info.file_size:
        return None
    fh = open(path, "rb")  # noqa: SIM115 - owned by the window, closed with it
    try:
        start = data_offset(fh, info, path)
        total = os.fstat(fh.fileno()).st_size
        if start + info.file_size > total:
            raise CorruptCheckpointError(
                f"zip member {info.filename!r} claims bytes {start}..{start + info.file_size}, the "
                f"archive has {total}", path=path, hint=_HINT)
    except BaseException:
        fh.close()
        raise
    return MemberWindow(fh, start, info.file_size)


def check_crc(window: MemberWindow, info: zipfile.ZipInfo, path: Path, chunk: int = 8 << 20) -> None:
    """Stream the whole member once and compare its CRC-32 with the directory's (what a full
    ``zipfile`` read checks), holding ``chunk`` bytes at a time."""
    import zlib

    crc, buf = 0, bytearray(chunk)
    window.seek(0)
    while True:
        n = window.readinto(buf)
        if not n:
            break
        crc = zlib.crc32(memoryview(buf)[:n], crc)
    window.seek(0)
    if crc != info.CRC:
        raise CorruptCheckpointError(f"zip member {info.filename!r}: CRC-32 mismatch", path=path,
                                     hint=_HINT)
