"""Comparing tensors the way a checkpoint writer must: every bit, NaN included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["same_values", "shape_fits"]


def same_values(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` hold the same tensor: bit for bit when their dtypes agree (a NaN
    equals the same NaN, ``-0.0`` differs from ``0.0``), else value by value with NaN equal to
    NaN (numpy < 1.19 has no ``array_equal(equal_nan=)``). No copy of contiguous arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.dtype != object:  # bfloat16 and the like (kind "V") too
        return bool(np.array_equal(_bits(a), _bits(b)))
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return bool(np.array_equal(a, b))


def _bits(array: np.ndarray) -> np.ndarray:
    """A flat view of the bits, one unsigned integer per element where the item size allows
    (the comparison's temporary is then one bool per element, not per byte)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    size = flat.dtype.itemsize
    return flat.view(f"u{size}") if size in (1, 2, 4, 8) else flat.view(np.uint8)


def shape_fits(value: Any, live: Any) -> bool:
    """Whether an array of shape ``value`` fits a live variable of shape ``live``, where ``-1`` is a
    dimension the variable leaves open (tf-keras's ``Discretization`` summary is ``(2, None)``)."""
    value, live = tuple(value), tuple(live)
    return len(value) == len(live) and all(d == v or d == -1 for v, d in zip(value, live))


def holds_nothing(shape: Any, value: Callable[[], Any]) -> bool:
    """Whether a variable of static ``shape`` (``-1``: open) holds no element; ``value`` reads it,
    only where an open dimension leaves the static shape undecided (tf-keras's unadapted
    ``Discretization`` summary is ``(2, None)`` holding ``(2, 0)``: nothing to restore)."""
    shape = tuple(shape)
    return 0 in shape or (-1 in shape and int(np.size(value())) == 0)
