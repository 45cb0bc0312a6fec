"""Safe access to HDF5 groups and datasets of an untrusted file (h5py + numpy only).

Every path is resolved one component at a time through *hard* links only: a soft link (which
may loop or point anywhere in the file) or an external link (another file) is refused, never
followed. A dataset must keep its data inside the file (no external storage, no virtual
dataset), have a numeric dtype (no compound, variable-length, string or object-reference
dtype where weights are expected), and declare no more bytes than the file can hold: its
``shape`` × ``itemsize`` is checked before a single element is read.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ckptcompat._compat import prod
from ckptcompat.errors import CorruptCheckpointError, UnsafeCheckpointError

__all__ = ["NUMERIC_KINDS", "hard_child", "checked_dataset", "read_numeric"]

#: numpy dtype kinds allowed for weights and optimizer slots: bool, ints, unsigned, floats
NUMERIC_KINDS = "biuf"
#: a compressed dataset may expand this many times over what it stores ...
MAX_COMPRESSION_RATIO = 1000
#: ... and to this many bytes at most
MAX_EXPANDED_BYTES = 16 << 30
_SLACK = 1 << 20


def hard_child(group: Any, key: str, path: str | os.PathLike[str], where: str, hint: str) -> Any:
    """``group[key]`` reached through hard links only (``key`` may hold ``/``-separated parts;
    a leading ``/`` starts at the file's root, as h5py does -- old Keras wrote ``/iterations``)."""
    import h5py

    node = group.file if key.startswith("/") else group
    for part in [p for p in key.split("/") if p]:
        try:
            link = node.get(part, getlink=True)
        except (KeyError, ValueError, RuntimeError, OSError, TypeError) as exc:
            raise CorruptCheckpointError(f"cannot look up {where}: {exc}", path=path, hint=hint) from exc
        if link is None:
            raise CorruptCheckpointError(f"{where} is listed but missing", path=path, hint=hint)
        if not isinstance(link, h5py.HardLink):
            kind = type(link).__name__
            raise UnsafeCheckpointError(
                f"{where} is reached through an HDF5 {kind} ({part!r}); links may loop or point "
                "outside the file, so they are never followed", path=path,
                hint="a crafted or damaged file; re-save the checkpoint with Keras")
        try:
            node = node[part]
        except (KeyError, ValueError, RuntimeError, OSError, TypeError) as exc:
            raise CorruptCheckpointError(f"cannot open {where}: {exc}", path=path, hint=hint) from exc
    return node


def checked_dataset(group: Any, key: str, path: str | os.PathLike[str], where: str, *,
                    hint: str, max_bytes: int | None = None, kinds: str = NUMERIC_KINDS) -> Any:
    """The ``h5py.Dataset`` at ``group[key]`` once links, storage, dtype and size are checked.

    ``max_bytes`` is what the file can hold (default: the HDF5 file's size plus 1 MiB): an
    uncompressed dataset declaring more is damage; a chunked/compressed one may declare up to
    :data:`MAX_COMPRESSION_RATIO` times what it stores, and :data:`MAX_EXPANDED_BYTES` at most.
    """
    import h5py

    ds = hard_child(group, key, path, where, hint)
    if not isinstance(ds, h5py.Dataset):
        raise CorruptCheckpointError(f"{where} is not a dataset", path=path, hint=hint)
    try:
        external = bool(ds.external)
        virtual = bool(ds.is_virtual)
        dtype, shape = ds.dtype, ds.shape
        stored = ds.id.get_storage_size()
        compressed = bool(ds.compression) or ds.chunks is not None
        if max_bytes is None:
            max_bytes = int(ds.file.id.get_filesize()) + _SLACK
    except (ValueError, RuntimeError, OSError, TypeError) as exc:
        raise CorruptCheckpointError(f"cannot read the header of {where}: {exc}", path=path,
                                     hint=hint) from exc
    if external or virtual:
        raise UnsafeCheckpointError(
            f"{where} is {'a virtual dataset' if virtual else 'stored in external files'}: its data "
            "lies outside this file, so it is not read", path=path,
            hint="a crafted file; real Keras checkpoints keep every weight inside the file")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None \
            or h5py.check_vlen_dtype(dtype) is not None or h5py.check_ref_dtype(dtype) is not None:
        raise CorruptCheckpointError(
            f"{where} has dtype {dtype}, not a numeric dtype (compound, variable-length, string "
            "and reference dtypes are no weights)", path=path, hint=hint)
    declared = prod(shape or ()) * dtype.itemsize
    if declared > max_bytes and (not compressed or declared > MAX_EXPANDED_BYTES
                                 or declared > MAX_COMPRESSION_RATIO * max(stored, 1)):
        raise CorruptCheckpointError(
            f"{where} claims shape {shape} ({declared} bytes), more than the file can hold "
            f"({max_bytes} bytes; {stored} stored)", path=path,
            hint="an absurd dataset shape: a damaged file or a decompression bomb")
    return ds


def read_numeric(group: Any, key: str, path: str | os.PathLike[str], where: str, *,
                 hint: str, max_bytes: int | None = None) -> np.ndarray:
    """Read a checked numeric dataset (see :func:`checked_dataset`) into a numpy array
    (a :class:`~ckptcompat.formats._headers.TensorHeader` inside ``headers_only()``)."""
    from ckptcompat.formats._headers import TensorHeader, defer, skip_data

    def fail(exc: BaseException) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"cannot read {where}: {type(exc).__name__}: {exc}", path=path,
                                      hint=hint)

    ds = checked_dataset(group, key, path, where, max_bytes=max_bytes, hint=hint)
    if skip_data(ds.shape):  # headers-only read (inspect): checked, described, not read
        return TensorHeader(ds.shape, ds.dtype)  # type: ignore[return-value]
    lazy = defer(ds, fail)  # streaming migrate: checked now, read when written
    if lazy is not None:
        return lazy  # type: ignore[return-value]
    try:
        return np.asarray(ds[()])
    except (ValueError, RuntimeError, OSError, TypeError, MemoryError) as exc:
        raise fail(exc) from exc
