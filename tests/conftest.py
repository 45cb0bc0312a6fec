"""Shared test configuration: framework detection (without importing TF), skips, paths."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_CHECKPOINTS = ROOT.parent / "shared" / "real-checkpoints"


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    flavour = keras_flavour()
    reasons = {
        "framework": None if flavour else "needs TensorFlow; this environment has no framework",
        "keras2": None if flavour == "keras2" else f"needs Keras 2; this environment has {flavour or 'no framework'}",
        "keras3": None if flavour == "keras3" else f"needs Keras 3; this environment has {flavour or 'no framework'}",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(autouse=True)
def _default_tf_determinism() -> Iterator[None]:
    """Tests that switch on TF op determinism do it for themselves; switch it off afterwards so
    that it never leaks into later tests (it is process-wide)."""
    yield
    if "tensorflow" in sys.modules:
        try:
            from tensorflow.python.framework import config as tf_config

            tf_config.disable_op_determinism()
        except (ImportError, AttributeError):
            pass


@pytest.fixture
def keras() -> ModuleType:
    """The running Keras module; use with the ``framework`` marker."""
    return keras_module()


@pytest.fixture
def real_checkpoints() -> Path:
    """The shared real-checkpoint corpus; skips when it is absent (a user's clone)."""
    if not (REAL_CHECKPOINTS / "MANIFEST.tsv").exists():
        pytest.skip(f"{REAL_CHECKPOINTS} is absent")
    return REAL_CHECKPOINTS
