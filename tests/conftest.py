"""Shared test configuration: marker skips by framework, fixtures (helpers live in ``_*.py``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from _frameworks import keras_backend, keras_flavour, keras_module
from _paths import REAL_CHECKPOINTS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    flavour = keras_flavour()
    backend = keras_backend()
    reasons = {
        "backend": None if backend else f"needs Keras 3 (any backend); this environment has {flavour or 'no Keras 3'}",
        "framework": None if flavour else "needs TensorFlow; this environment has no framework",
        "keras2": None if flavour == "keras2" else f"needs Keras 2; this environment has {flavour or 'no framework'}",
        "keras3": None if flavour == "keras3" else f"needs Keras 3; this environment has {flavour or 'no framework'}",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break


_START_DIR = os.getcwd()


@pytest.fixture(autouse=True)
def _working_directory_kept() -> Iterator[None]:
    """Every test leaves the working directory where it was (and existing): one that changed
    or removed it fails here, named, instead of breaking later tests that resolve paths."""
    yield
    try:
        now = os.getcwd()
    except FileNotFoundError:
        now = None
    if now != _START_DIR:
        os.chdir(_START_DIR)
        pytest.fail(f"the test left the working directory {now or '(removed)'}; it was {_START_DIR}")


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


#: a real Keras 2.3.1 file (10 weights, RMSprop) of the shared corpus
MISFIT_SOURCE = "ikukang__DeepLearningWithPythonKeras/mnist_cnn.h5"


@pytest.fixture
def optimizer_misfit_h5(real_checkpoints: Path, tmp_path: Path) -> Path:
    """A copy of :data:`MISFIT_SOURCE` with one optimizer weight renamed to a naming nobody
    writes: its weights read, its optimizer variables fit no layout."""
    import shutil

    import h5py
    import numpy as np

    path = tmp_path / "mnist_cnn.h5"
    shutil.copyfile(real_checkpoints / MISFIT_SOURCE, path)
    with h5py.File(path, "r+") as h5:
        group = h5["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        old = names[1]
        names[1] = "training/RMSprop/mystery_slot:0"
        group.move(old, names[1])
        group.attrs["weight_names"] = np.array([n.encode() for n in names])
    return path
