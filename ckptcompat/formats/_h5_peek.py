"""Shared by the HDF5-based formats' ``peek``: the datasets of a group, from headers only."""

from __future__ import annotations

from typing import Any

from ckptcompat.formats import VariableMeta

__all__ = ["dataset_table", "scalar_int"]


def dataset_table(group: Any, *, limit: int = 100_000) -> tuple[VariableMeta, ...]:
    """Every dataset under ``group`` (path relative to it, shape, dtype); no data is read."""
    out: list[VariableMeta] = []

    def visit(name: str, obj: Any) -> None:
        if len(out) < limit and hasattr(obj, "shape") and hasattr(obj, "dtype"):
            out.append(VariableMeta(name, tuple(int(d) for d in obj.shape), str(obj.dtype)))

    group.visititems(visit)
    return tuple(out)


def scalar_int(group: Any, name: str) -> int | None:
    """The integer value of a scalar dataset ``name`` of ``group`` (``None`` when absent or not one)."""
    ds = group.get(name) if group is not None else None
    if ds is None or not hasattr(ds, "shape") or ds.shape not in ((), (1,)) or ds.dtype.kind not in "iuf":
        return None
    value = ds[()]
    try:
        return int(value.reshape(-1)[0]) if hasattr(value, "reshape") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
