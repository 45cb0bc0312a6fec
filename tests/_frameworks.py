"""Which framework this environment has, found without importing TensorFlow (for skips and tests)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from types import ModuleType

__all__ = ["tf_version", "keras_flavour", "keras_module"]


def _version(dist: str) -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def tf_version() -> tuple[int, ...] | None:
    """(major, minor) of the installed TensorFlow, or None."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    return _version("tensorflow-cpu") or _version("tensorflow") or _version("tensorflow-intel")


def keras_flavour() -> str | None:
    """'keras2' (tf.keras <= 2.15 or tf-keras), 'keras3', or None when no framework is installed."""
    tfv = tf_version()
    if tfv is None:
        return None
    if tfv < (2, 16):
        return "keras2"
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1" and importlib.util.find_spec("tf_keras"):
        return "keras2"
    return "keras3"


def keras_module() -> ModuleType:
    """The Keras that user code gets on this environment (tf.keras, tf_keras or keras 3)."""
    tfv = tf_version()
    if keras_flavour() == "keras2" and tfv is not None and tfv >= (2, 16):
        return importlib.import_module("tf_keras")
    if keras_flavour() == "keras2":
        return importlib.import_module("tensorflow").keras
    return importlib.import_module("keras")
