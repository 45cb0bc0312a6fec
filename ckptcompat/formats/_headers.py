"""Headers-only reads: tensors described by their stored shape and dtype, their data left unread.

Inside :func:`headers_only` the tensor readers (:func:`ckptcompat.formats._h5safe.read_numeric`,
the TF bundle reader) still run every safety check on a tensor's header (links, storage,
dtype, declared size against the file), then return a :class:`TensorHeader` instead of
reading its data. Tensors of at most :data:`SMALL` elements are still read: iterations,
learning rates and beta powers are tiny and give the metadata ``inspect`` reports.

A :class:`TensorHeader` refuses to become an array, so code that needs the data fails loudly
instead of using a placeholder.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["SMALL", "TensorHeader", "headers_only", "headers_active", "skip_data"]

#: tensors of at most this many elements are read even in a headers-only read
SMALL = 64

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("ckptcompat_headers_only", default=False)


class TensorHeader:
    """A stored tensor's shape and dtype; its data was not read."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("tensor data was not read (headers-only read); read the checkpoint fully")

    def __repr__(self) -> str:
        return f"TensorHeader(shape={self.shape}, dtype={self.dtype})"


@contextmanager
def headers_only() -> Iterator[None]:
    """Within this block, tensor readers return :class:`TensorHeader` for tensors above :data:`SMALL`."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def headers_active() -> bool:
    """True inside :func:`headers_only`."""
    return _ACTIVE.get()


def skip_data(shape: tuple[int, ...] | None) -> bool:
    """True when a tensor of ``shape`` is to be described, not read (headers-only and not small)."""
    return _ACTIVE.get() and shape is not None and math.prod(shape) > SMALL
