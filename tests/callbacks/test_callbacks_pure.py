"""Callback pieces that need no framework: suffix rules, history trimming, monitor semantics."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ckptcompat.callbacks._cb_monitor import Monitor
from ckptcompat.callbacks.model_checkpoint import keras_path
from ckptcompat.callbacks.monitor import trim_history
from ckptcompat.errors import InvalidArgumentError, MissingDependencyError


def test_importing_the_callbacks_does_not_import_a_framework() -> None:
    code = ("import sys, ckptcompat.callbacks.early_stopping, ckptcompat.callbacks.model_checkpoint, "
            "ckptcompat.callbacks.reduce_lr, ckptcompat.callbacks.monitor; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("path", "weights", "major", "expected"), [
    ("m.h5", False, 3, "m.h5"), ("m.keras", False, 3, "m.keras"), ("m", False, 3, "m.keras"),
    ("m.hdf5", False, 3, "m.hdf5"), ("w.h5", True, 3, "w.weights.h5"),
    ("w.weights.h5", True, 3, "w.weights.h5"), ("w.ckpt", True, 3, "w.ckpt.weights.h5"),
    ("m", False, 2, "m"), ("w.h5", True, 2, "w.h5"), ("w.ckpt", True, 2, "w.ckpt"),
])
def test_keras_path_suffix_rules(path: str, weights: bool, major: int, expected: str) -> None:
    assert keras_path(path, weights_only=weights, major=major) == expected


def test_trim_history_keeps_epochs_up_to_the_resume_point() -> None:
    history = {"epoch": [1, 2, 3, 4], "loss": [4.0, 3.0, 2.0, 1.0], "val_acc": [None, 0.5, 0.6, 0.7]}
    assert trim_history(history, 2) == {"epoch": [1, 2], "loss": [4.0, 3.0], "val_acc": [None, 0.5]}
    assert trim_history(history, 0) == {"epoch": [], "loss": [], "val_acc": []}


def test_monitor_finds_any_spelling_and_auto_mode_has_one_meaning() -> None:
    acc = Monitor("val_acc")
    assert acc.direction == "max"
    assert acc.value({"val_accuracy": 0.75, "val_loss": 0.1}) == 0.75
    auc = Monitor("val_auc")
    assert auc.direction == "max"
    assert auc.value({"val_auc_1": 0.5, "val_loss": 1.0}) == 0.5
    assert Monitor("val_loss").direction == "min"
    assert Monitor("val_loss").value({"loss": 1.0}) is None


def test_monitor_improvement_rules() -> None:
    low = Monitor("val_loss", min_delta=0.1)
    assert low.better(1.0, None)
    assert low.better(0.85, 1.0)
    assert not low.better(0.95, 1.0)
    assert not low.better(float("nan"), None)
    high = Monitor("acc", mode="auto", min_delta=-0.1)  # the sign of min_delta never matters
    assert high.better(0.95, 0.8) and not high.better(0.85, 0.8)


def test_unknown_metric_with_auto_mode_asks_for_a_mode() -> None:
    with pytest.raises(InvalidArgumentError, match="mode='min' or mode='max'"):
        Monitor("my_score")
    assert Monitor("my_score", required=False).direction is None
    assert Monitor("my_score", mode="max").direction == "max"
    with pytest.raises(InvalidArgumentError):
        Monitor("val_loss", mode="lowest")


def test_instantiating_without_a_framework_says_what_to_install() -> None:
    import importlib.util

    from _frameworks import keras_backend

    if importlib.util.find_spec("tensorflow") is not None or keras_backend() is not None:
        pytest.skip("a framework is installed")
    from ckptcompat.callbacks.early_stopping import EarlyStopping

    with pytest.raises(MissingDependencyError):
        EarlyStopping()
