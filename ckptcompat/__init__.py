"""ckptcompat: resume TensorFlow/Keras training exactly, whichever generation wrote the checkpoint.

Importing this package is light: it never imports TensorFlow, Keras, tf_keras or h5py;
the modules that need them import them when called. Everything in ``__all__`` is public
API; the modules' names starting with ``_`` are not.
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
    InvalidArgumentError,
    MissingDependencyError,
    StoreLockedError,
    StoreWriteError,
    TemplateKeyError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    # every error ckptcompat raises on purpose
    "CkptCompatError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "UnsupportedFormatError",
    "IncompatibleStateError",
    "UnsafeCheckpointError",
    "MissingDependencyError",
    "InvalidArgumentError",
    "TemplateKeyError",
    "StoreLockedError",
    "StoreWriteError",
    # the neutral state
    "TrainingState",
    "OptimizerState",
    "Progress",
    "Producer",
    # files
    "read",
    "write",
    "detect_format",
    "inspect",
    "CheckpointInfo",
    "migrate",
    "MigrationReport",
    # directories of checkpoints
    "CheckpointStore",
    "CheckpointEntry",
    "find_checkpoints",
    # live models
    "resume",
    "ResumeResult",
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
    "CheckpointInfo": ("ckptcompat.inspection", "CheckpointInfo"),
    "migrate": ("ckptcompat.migration", "migrate"),
    "MigrationReport": ("ckptcompat.migration", "MigrationReport"),
    "CheckpointStore": ("ckptcompat.store", "CheckpointStore"),
    "CheckpointEntry": ("ckptcompat.store", "CheckpointEntry"),
    "find_checkpoints": ("ckptcompat.discovery", "find_checkpoints"),
    "resume": ("ckptcompat.resuming.orchestrate", "resume"),
    "ResumeResult": ("ckptcompat.resuming.orchestrate", "ResumeResult"),
}

if TYPE_CHECKING:  # pragma: no cover
    from ckptcompat.discovery import find_checkpoints
    from ckptcompat.formats import detect as detect_format
    from ckptcompat.formats import read, write
    from ckptcompat.inspection import CheckpointInfo, inspect
    from ckptcompat.migration import MigrationReport, migrate
    from ckptcompat.resuming.orchestrate import ResumeResult, resume
    from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState
    from ckptcompat.store import CheckpointEntry, CheckpointStore


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
