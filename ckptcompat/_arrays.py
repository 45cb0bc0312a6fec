"""Comparing tensors the way a checkpoint writer must: every bit, NaN included."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["same_values"]


def same_values(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` hold the same tensor: bit for bit when their dtypes agree (a NaN
    equals the same NaN, ``-0.0`` differs from ``0.0``), else value by value with NaN equal to
    NaN (numpy < 1.19 has no ``array_equal(equal_nan=)``). No copy of contiguous arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == b.dtype and a.dtype.kind in "biufc":
        bits_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        return bool(np.array_equal(bits_a, np.ascontiguousarray(b).reshape(-1).view(np.uint8)))
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return bool(np.array_equal(a, b))
