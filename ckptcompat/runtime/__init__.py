"""Live framework flavours, one module each: ``capture``, ``apply``, ``set_learning_rate``.

* ``keras2``: ``tf.keras`` of TensorFlow <= 2.15, or ``tf_keras`` on TensorFlow >= 2.16
  when ``TF_USE_LEGACY_KERAS=1``;
* ``keras3``: ``keras`` >= 3 (TensorFlow >= 2.16 default).

:func:`detect` tells which one user code gets, without importing TensorFlow; the flavour
modules import the framework themselves and are imported only on demand.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from types import ModuleType
from typing import Any

from ckptcompat.errors import MissingDependencyError

__all__ = ["FLAVOURS", "detect", "flavour", "keras_module", "capture", "apply", "set_learning_rate"]

#: Flavour names, each a module of this package.
FLAVOURS = ("keras2", "keras3")

_TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                     "tensorflow-macos", "tf-nightly", "tf-nightly-cpu")
_LEGACY_ON = ("1", "true", "True")  # the values TensorFlow itself accepts


def _tf_version() -> tuple[int, int] | None:
    """(major, minor) of the installed TensorFlow, or None; does not import TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    for dist in _TF_DISTRIBUTIONS:
        try:
            text = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
        if len(parts) == 2:
            return parts[0], parts[1]
    tf = importlib.import_module("tensorflow")  # installed without metadata: ask it
    major, minor = str(tf.__version__).split(".")[:2]
    return int(major), int(minor)


def detect() -> str:
    """``"keras2"`` or ``"keras3"``: the Keras flavour that ``import tensorflow`` user code gets.

    Raises :class:`MissingDependencyError` when TensorFlow is not installed.
    """
    version = _tf_version()
    if version is None:
        raise MissingDependencyError(
            "TensorFlow is needed to capture or restore a live model but is not installed",
            hint="pip install 'ckptcompat[tf]'")
    if version < (2, 16):
        return "keras2"
    if (os.environ.get("TF_USE_LEGACY_KERAS") in _LEGACY_ON
            and importlib.util.find_spec("tf_keras") is not None):
        return "keras2"
    return "keras3"


def flavour(name: str | None = None) -> ModuleType:
    """The flavour module ``name`` (default: the running one, see :func:`detect`)."""
    name = name or detect()
    if name not in FLAVOURS:
        raise ValueError(f"unknown runtime flavour {name!r}; expected one of {FLAVOURS}")
    return importlib.import_module(f"{__name__}.{name}")


def keras_module() -> ModuleType:
    """The Keras module user code gets (``tf.keras``, ``tf_keras`` or ``keras`` 3); imports it."""
    module: ModuleType = flavour().keras_module()
    return module


def capture(model: Any, *, include_optimizer: bool = True, into: Any = None) -> Any:
    """:func:`capture` of the running flavour (``into``: an earlier capture to reuse the
    arrays of)."""
    return flavour().capture(model, include_optimizer=include_optimizer, into=into)


def apply(state: Any, model: Any, *, partial: bool = False) -> Any:
    """:func:`apply` of the running flavour."""
    return flavour().apply(state, model, partial=partial)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """:func:`set_learning_rate` of the running flavour."""
    result: float = flavour().set_learning_rate(model_or_optimizer, value)
    return result
