"""Headers-only and lazy reads: tensors described by their header, their data read later or never.

Inside :func:`headers_only` the tensor readers (:func:`ckptcompat.formats._h5safe.read_numeric`,
the TF bundle reader) still run every safety check on a tensor's header (links, storage,
dtype, declared size against the file), then return a :class:`TensorHeader` instead of
reading its data. Tensors of at most :data:`SMALL` elements are still read: iterations,
learning rates and beta powers are tiny and give the metadata ``inspect`` reports.

A :class:`TensorHeader` refuses to become an array, so code that needs the data fails loudly
instead of using a placeholder.

Inside :func:`lazy_tensors` (streaming ``migrate``) the HDF5 readers return a
:class:`LazyTensor` instead: a checked header whose data is read when asked
(:meth:`LazyTensor.load`, or ``np.asarray``), from the file the reader leaves open until the
block ends (:func:`keep_open`). A writer then holds one tensor at a time.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ckptcompat._compat import prod

__all__ = ["SMALL", "TensorHeader", "LazyTensor", "headers_only", "headers_active", "skip_data",
           "lazy_tensors", "keep_open", "defer", "materialize"]

#: tensors of at most this many elements are read even in a headers-only read
SMALL = 64

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("ckptcompat_headers_only", default=False)
_LAZY: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("ckptcompat_lazy", default=None)


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
        return prod(self.shape)

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
    return _ACTIVE.get() and shape is not None and prod(shape) > SMALL


class LazyTensor(TensorHeader):
    """A checked HDF5 dataset whose data is read on :meth:`load` (the file stays open until the
    :func:`lazy_tensors` block ends)."""

    __slots__ = ("_dataset", "_fail")

    def __init__(self, dataset: Any, fail: Any) -> None:
        super().__init__(dataset.shape, dataset.dtype)
        self._dataset, self._fail = dataset, fail

    def load(self) -> np.ndarray:
        """The tensor's data (read now, not kept)."""
        try:
            return np.asarray(self._dataset[()])
        except (ValueError, RuntimeError, OSError, TypeError, MemoryError) as exc:
            raise self._fail(exc) from exc

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.load()
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        return f"LazyTensor(shape={self.shape}, dtype={self.dtype})"


@contextmanager
def lazy_tensors() -> Iterator[None]:
    """Within this block the HDF5 readers return :class:`LazyTensor` for tensors above
    :data:`SMALL`; the files they read stay open until the block ends."""
    held: list[Any] = []
    token = _LAZY.set(held)
    try:
        yield
    finally:
        _LAZY.reset(token)
        for obj in reversed(held):
            obj.close()


def keep_open(*objects: Any) -> bool:
    """Inside :func:`lazy_tensors`: keep ``objects`` (files) open until the block ends, True.
    Outside: False (the caller closes them)."""
    held = _LAZY.get()
    if held is None:
        return False
    held.extend(o for o in objects if o is not None)
    return True


def defer(dataset: Any, fail: Any) -> LazyTensor | None:
    """A :class:`LazyTensor` for ``dataset`` inside :func:`lazy_tensors` (not small), else None.
    ``fail(exc)`` builds the typed error raised when the later read fails."""
    if _LAZY.get() is None or prod(dataset.shape) <= SMALL:
        return None
    return LazyTensor(dataset, fail)


def materialize(value: Any) -> np.ndarray:
    """``value`` as a numpy array (a :class:`LazyTensor` is read now)."""
    return value.load() if isinstance(value, LazyTensor) else np.asarray(value)
