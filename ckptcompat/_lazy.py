"""Import optional heavy dependencies only when needed, with an install hint when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from ckptcompat.errors import MissingDependencyError
from ckptcompat.runtime import LEGACY_KERAS_HINT

__all__ = ["require"]

_HINTS = {
    "h5py": "pip install h5py",
    "tensorflow": "pip install 'ckptcompat[tf]'",
    "keras": "pip install 'ckptcompat[tf]'",
    "tf_keras": LEGACY_KERAS_HINT,
    "matplotlib": "pip install 'ckptcompat[plot]'",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        what = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(f"{top} is needed{what} but is not installed",
                                     hint=_HINTS.get(top, f"pip install {top}")) from exc
