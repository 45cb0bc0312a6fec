"""Keras callbacks that work unchanged on Keras 2 and 3 and whose state survives resume.

Importing this package never imports TensorFlow or Keras: callback classes are resolved
on first access (``from ckptcompat.callbacks import Checkpoint``) and bound to the
running Keras ``Callback`` base when instantiated (see :func:`ckptcompat.runtime.bind`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Checkpoint", "ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau", "TrainingMonitor"]

# name -> (module, attribute); modules other helpers write may not exist yet.
_LAZY: dict[str, tuple[str, str]] = {
    "Checkpoint": ("ckptcompat.callbacks.checkpoint", "Checkpoint"),
    "ModelCheckpoint": ("ckptcompat.callbacks.model_checkpoint", "ModelCheckpoint"),
    "EarlyStopping": ("ckptcompat.callbacks.early_stopping", "EarlyStopping"),
    "ReduceLROnPlateau": ("ckptcompat.callbacks.reduce_lr", "ReduceLROnPlateau"),
    "TrainingMonitor": ("ckptcompat.callbacks.monitor", "TrainingMonitor"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ckptcompat.callbacks' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
