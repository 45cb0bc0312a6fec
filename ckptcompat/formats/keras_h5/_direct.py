"""Write an HDF5 file's large datasets straight from numpy while hashing the whole file.

h5py first lays the file out: every large numeric dataset is created contiguous, allocated
at creation and never filled, so closing the file writes only metadata. The tensors are then
written at their file offsets with ``os.pwrite`` (one copy, as a plain ``write`` of the
bytes would do) while another thread computes the file's sha256 in file order: metadata
bytes read back from the file, dataset bytes taken from the numpy arrays themselves. A
durable save then costs about what writing the bytes costs, instead of writing and then
reading everything again to hash it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DirectDatasets", "disk_errors_as_oserror", "ensure_room", "state_bytes"]

_MIN_DIRECT = 64 << 10   # smaller datasets are written by h5py as usual
_WRITE_CHUNK = 64 << 20


_H5_ERRNO = re.compile(r"\berrno = (\d+)")
#: HDF5's own bytes besides the tensors (superblock, heaps, object headers, attributes): generous
_HDF5_BASE, _HDF5_PER_DATASET = 256 << 10, 8 << 10


def state_bytes(tensors: Any) -> tuple[int, int]:
    """``(bytes, count)`` of a state's tensors, from shapes and dtypes (lazy ones stay unread)."""
    total = 0
    for value in tensors.values():
        if isinstance(value, np.ndarray) or not hasattr(value, "dtype"):
            total += int(np.asarray(value).nbytes)
        else:
            total += int(np.prod(value.shape, dtype=np.int64)) * np.dtype(value.dtype).itemsize
    return total, len(tensors)


def ensure_room(h5py: Any, path: Path, data_bytes: int, datasets: int) -> None:
    """Raise ``OSError(ENOSPC)`` before HDF5 opens ``path`` when its file system cannot hold the
    file, with HDF5 older than 1.14 only: there (h5py 3.8's wheels, the last for Python 3.7) a
    write that fills the disk crashes the whole process when the file is closed. Newer HDF5
    reports it as an error (:func:`disk_errors_as_oserror`), so it is left to try."""
    if tuple(h5py.version.hdf5_version_tuple[:2]) >= (1, 14) or not hasattr(os, "statvfs"):
        return
    stat = os.statvfs(path.parent)
    free = stat.f_bavail * stat.f_frsize
    need = data_bytes + _HDF5_BASE + _HDF5_PER_DATASET * datasets
    if free < need:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: about {need} bytes needed, "
                                    f"{free} free (HDF5 {h5py.version.hdf5_version} is not asked "
                                    "to write a file that cannot fit)", str(path))


@contextmanager
def disk_errors_as_oserror() -> Iterator[None]:
    """HDF5's disk errors raised as :class:`OSError`: on a full disk h5py raises
    ``RuntimeError`` (or an ``OSError`` without ``errno``) whose message holds ``errno = 28``;
    it becomes ``OSError(28)``, which the atomic write path reports as
    :class:`~ckptcompat.errors.StoreWriteError`."""
    from ckptcompat.errors import CkptCompatError

    try:
        yield
    except (RuntimeError, OSError) as exc:
        found = _H5_ERRNO.search(str(exc))
        if isinstance(exc, CkptCompatError) or found is None or getattr(exc, "errno", None):
            raise
        code = int(found.group(1))
        raise OSError(code, f"{os.strerror(code)} (HDF5: {str(exc).splitlines()[0]})") from exc


class DirectDatasets:
    """Creates datasets in an open ``h5py.File``; large ones are filled by :meth:`finish`."""

    def __init__(self, h5py: Any) -> None:
        self._h5py = h5py
        self._pending: list[tuple[int, np.ndarray]] = []
        self.digest: Any = None   # the file's sha256 object after finish()
        self.crc32 = 0            # CRC-32 from finish(crc_from=...) on

    def put(self, group: Any, name: str, value: Any) -> None:
        """``group.create_dataset(name, data=value)``, deferred for large numeric arrays. A
        :class:`~ckptcompat.formats._headers.LazyTensor` (streaming ``migrate``) is read only
        when :meth:`finish` writes it, so one tensor at a time is in memory."""
        from ckptcompat.formats._headers import LazyTensor

        lazy = isinstance(value, LazyTensor)
        array = value if lazy else np.asarray(value)
        if array.nbytes < _MIN_DIRECT or array.dtype.kind not in "fiu" or not array.dtype.isnative:
            group.create_dataset(name, data=np.asarray(array))
            return
        h5 = self._h5py
        dcpl = h5.h5p.create(h5.h5p.DATASET_CREATE)
        dcpl.set_layout(h5.h5d.CONTIGUOUS)
        dcpl.set_alloc_time(h5.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5.h5d.FILL_TIME_NEVER)
        dset = group.create_dataset(name, shape=array.shape, dtype=array.dtype, dcpl=dcpl)
        offset = dset.id.get_offset()
        if offset is None:  # not allocated after all: let h5py write it
            dset[...] = np.asarray(array)
            return
        self._pending.append((int(offset), array if lazy else np.ascontiguousarray(array)))

    def finish(self, path: str | os.PathLike[str], *, durable: bool,
               crc_from: int | None = None) -> tuple[int, str]:
        """After the file is closed: write the deferred tensors, fsync when ``durable``;
        returns ``(size, sha256)`` of the complete file. The sha256 object stays in
        :attr:`digest` (to hash bytes appended later); with ``crc_from`` the CRC-32 of the bytes
        from that offset on (a zip member's) is computed in the same pass, into :attr:`crc32`."""
        regions = sorted(self._pending, key=lambda r: r[0])
        size = os.path.getsize(path)
        end = 0
        for offset, array in regions:
            if offset < end or offset + array.nbytes > size:
                raise ValueError(f"unexpected HDF5 layout at offset {offset} (file size {size})")
            end = offset + array.nbytes
        fd = os.open(Path(path), os.O_RDWR)
        try:
            digest = hashlib.sha256()
            crc = _Crc(crc_from)
            if any(not isinstance(array, np.ndarray) for _, array in regions):
                _write_streaming(fd, size, regions, [digest, crc])
                if durable:
                    os.fsync(fd)
                self.digest, self.crc32 = digest, crc.value
                return size, digest.hexdigest()
            errors: list[BaseException] = []
            hasher = threading.Thread(target=_hash_in_order, args=(fd, size, regions, [digest, crc], errors),
                                      name="ckptcompat-sha256", daemon=True)
            hasher.start()
            try:
                for offset, array in regions:
                    _pwrite_all(fd, memoryview(array).cast("B"), offset)
                if durable:
                    os.fsync(fd)
            finally:
                hasher.join()
            if errors:
                raise errors[0]
        finally:
            os.close(fd)
        self.digest, self.crc32 = digest, crc.value
        return size, digest.hexdigest()


class _Crc:
    """CRC-32 of the bytes from ``start`` on, fed like a hashlib object in file order."""

    def __init__(self, start: int | None) -> None:
        self.start, self.pos, self.value = start, 0, 0

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        if self.start is not None and self.pos + len(view) > self.start:
            self.value = zlib.crc32(view[max(0, self.start - self.pos):], self.value)
        self.pos += len(view)


def _hash_in_order(fd: int, size: int, regions: list[tuple[int, np.ndarray]], digests: list[Any],
                   errors: list[BaseException]) -> None:
    """sha256 of the file as it will be: the bytes between datasets from the file (written
    by h5py, final), each dataset's bytes from its array (being written meanwhile)."""
    try:
        pos = 0
        for offset, array in [*regions, (size, None)]:
            _hash_file_range(fd, pos, offset, digests)
            if array is not None:
                for digest in digests:
                    digest.update(memoryview(array).cast("B"))  # releases the GIL
                pos = offset + array.nbytes
    except BaseException as exc:  # noqa: BLE001 -- re-raised on the writing thread
        errors.append(exc)


def _write_streaming(fd: int, size: int, regions: list[tuple[int, Any]], digests: list[Any]) -> None:
    """Lazy tensors (streaming ``migrate``): read each just before it is written, write it,
    hash it, let it go; the bytes between datasets are hashed from the file. One thread, one
    tensor in memory at a time."""
    pos = 0
    for offset, value in [*regions, (size, None)]:
        _hash_file_range(fd, pos, offset, digests)
        if value is None:
            break
        array = np.ascontiguousarray(value.load() if hasattr(value, "load") else value)
        if array.nbytes != value.nbytes:
            raise ValueError(f"tensor of {array.nbytes} bytes for a dataset of {value.nbytes}")
        view = memoryview(array).cast("B")
        _pwrite_all(fd, view, offset)
        for digest in digests:
            digest.update(view)
        pos = offset + array.nbytes


def _hash_file_range(fd: int, start: int, end: int, digests: list[Any]) -> None:
    """Feed the file's bytes ``[start, end)`` (already final) to every digest, in order."""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(end - pos, _WRITE_CHUNK), pos)
        if not chunk:
            raise OSError(f"short read at offset {pos} while hashing")
        for digest in digests:
            digest.update(chunk)
        pos += len(chunk)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """Write all of ``view`` at ``offset`` (``pwrite`` may write less than asked)."""
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:done + _WRITE_CHUNK], offset + done)
