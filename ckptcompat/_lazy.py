"""Import optional heavy dependencies only when needed, with an install hint when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from ckptcompat.errors import MissingDependencyError
from ckptcompat.runtime import BACKEND_EXTRAS, LEGACY_KERAS_HINT, install_hint, keras_backend

__all__ = ["require"]

_HINTS = {
    "h5py": "pip install h5py",
    "tensorflow": f"pip install '{BACKEND_EXTRAS['tensorflow']}'",
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
                                     hint=_hint(top)) from exc


def _hint(top: str) -> str:
    """The install hint for the missing module ``top``, naming what the running Keras
    backend needs (``ckptcompat[jax]`` for a JAX user, not ``ckptcompat[tf]``)."""
    if top in ("keras", "jax", "torch"):
        return install_hint()
    if top == "tensorflow" and keras_backend() != "tensorflow":
        return (f"pip install '{BACKEND_EXTRAS['tensorflow']}' (this needs TensorFlow even though "
                f"Keras runs on {keras_backend()})")
    return _HINTS.get(top, f"pip install {top}")
