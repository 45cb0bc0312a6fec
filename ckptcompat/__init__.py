"""ckptcompat: resume TensorFlow/Keras training exactly, whichever generation wrote the checkpoint.

Importing this package is light: it never imports TensorFlow, Keras, tf_keras or h5py;
the modules that need them import them when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ckptcompat import errors
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    CorruptCheckpointError,
    IncompatibleStateError,
    MissingDependencyError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "CkptCompatError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "UnsupportedFormatError",
    "IncompatibleStateError",
    "UnsafeCheckpointError",
    "MissingDependencyError",
    "TrainingState",
    "OptimizerState",
    "Progress",
    "Producer",
    "read",
    "write",
    "detect_format",
    "inspect",
    "resume",
]

# name -> (module, attribute): resolved on first access so that `import ckptcompat` stays light.
_LAZY: dict[str, tuple[str, str]] = {
    "TrainingState": ("ckptcompat.state", "TrainingState"),
    "OptimizerState": ("ckptcompat.state", "OptimizerState"),
    "Progress": ("ckptcompat.state", "Progress"),
    "Producer": ("ckptcompat.state", "Producer"),
    "read": ("ckptcompat.formats", "read"),
    "write": ("ckptcompat.formats", "write"),
    "detect_format": ("ckptcompat.formats", "detect"),
    "inspect": ("ckptcompat.inspection", "inspect"),
    "resume": ("ckptcompat.resuming.orchestrate", "resume"),
}

if TYPE_CHECKING:  # pragma: no cover
    from ckptcompat.formats import detect as detect_format
    from ckptcompat.formats import read, write
    from ckptcompat.inspection import inspect
    from ckptcompat.resuming.orchestrate import resume
    from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ckptcompat' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
