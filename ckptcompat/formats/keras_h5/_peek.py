"""``keras_h5.peek``: attributes, optimizer class and the dataset table of a legacy ``.h5``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ckptcompat._lazy import require
from ckptcompat.errors import CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats import Peek
from ckptcompat.formats._h5_peek import dataset_table, scalar_int
from ckptcompat.formats._h5heap import open_checked
from ckptcompat.names.variables import canonical_optimizer_class

__all__ = ["peek_h5"]

_ITER = ("iter:0", "iteration:0", "iterations:0")


def _optimizer_class(f: Any) -> str | None:
    raw = f.attrs.get("training_config")
    if raw is None:
        return None
    try:
        cfg = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
        name = cfg["optimizer_config"]["class_name"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    return canonical_optimizer_class(str(name)) if name else None


def _iterations(f: Any) -> int | None:
    group = f.get("optimizer_weights")
    if group is None:
        return None
    found: list[str] = []
    group.visit(lambda n: found.append(n) if n.rsplit("/", 1)[-1] in _ITER else None)
    return scalar_int(group, found[0]) if found else None


def peek_h5(path: Path, name: str) -> Peek:
    """Cheap metadata of the legacy Keras ``.h5`` at ``path`` (no weight data is read)."""
    from ckptcompat.formats.keras_h5 import (ATTR_EPOCH, ATTR_GLOBAL_STEP, ATTR_STEP, _producer)

    require("h5py")
    try:
        f = open_checked(path, path)  # global heaps checked before any text attribute is read
    except (OSError, RuntimeError, ValueError) as exc:
        raise CorruptCheckpointError(f"cannot open the HDF5 file: {exc}", path=path,
                                     hint="the file may be truncated or damaged") from exc
    with f:
        if "model_weights" not in f and "layer_names" not in f.attrs and "layer_names0" not in f.attrs:
            raise UnsupportedFormatError("HDF5 file without Keras markers", path=path)

        def attr(key: str) -> int | None:
            try:
                return int(f.attrs[key]) if key in f.attrs else None
            except (TypeError, ValueError):
                return None

        weights = f["model_weights"] if "model_weights" in f else f
        return Peek(format=name, path=path, kind="model" if "model_weights" in f else "weights",
                    producer=_producer(f, path), epoch=attr(ATTR_EPOCH), step=attr(ATTR_STEP),
                    global_step=attr(ATTR_GLOBAL_STEP), optimizer=_optimizer_class(f),
                    iterations=_iterations(f), variables=dataset_table(weights))
