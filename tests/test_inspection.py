"""ckptcompat.inspect: summaries of state.json, faked registry formats, directories, sidecars."""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from ckptcompat.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat import formats
from ckptcompat.formats import sidecar
from ckptcompat.inspection import LEGACY_SIDECAR, CheckpointInfo, VariableInfo, inspect
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState
from _paths import FIXTURES

STATE_JSON_ONLY = tuple(i for i in formats.FORMATS if i.name == "state_json")


def _fake_state(path: Path) -> TrainingState:
    return TrainingState(
        weights={"dense/kernel": np.zeros((3, 4), np.float32), "dense/bias": np.zeros(4, np.float32),
                 "batch_normalization/moving_mean": np.zeros(4, np.float64)},
        optimizer=OptimizerState(
            "Adam", {"learning_rate": 0.01}, iterations=30,
            slots={"dense/kernel": {"m": np.zeros((3, 4), np.float32), "v": np.zeros((3, 4), np.float32)},
                   "dense/bias": {"m": np.zeros(4, np.float32), "v": np.zeros(4, np.float32)}},
            extra={"beta1_power": np.float32(0.9)}),
        progress=Progress(epoch=3, step=0, global_step=30),
        history={"loss": [1.0, 0.5, 0.25], "acc": [0.1, 0.2, 0.3], "val_auc_1": [0.5, 0.6, 0.7]},
        producer=Producer("tf.keras", {"keras": "2.12.0", "tensorflow": "2.12.1"}, "fake_fmt", str(path)),
        model_config={"class_name": "Sequential", "config": {}},
        metric_names=("loss", "acc", "val_auc_1"))


@pytest.fixture
def fake_format(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A registry format 'fake_fmt' claiming files that start with FAKE and directories holding 'checkpoint'."""
    module = types.ModuleType("ckptcompat_test_fake_fmt")
    module.NAME = "fake_fmt"  # type: ignore[attr-defined]

    def sniff(path: Path) -> bool:
        p = Path(path)
        if p.is_dir():
            return (p / "checkpoint").is_file()
        return p.is_file() and p.read_bytes()[:4] == b"FAKE"

    def read(path: Path) -> TrainingState:
        if Path(path).is_file() and Path(path).read_bytes()[4:5] == b"!":
            raise CorruptCheckpointError("damaged fake", path=path)
        return _fake_state(Path(path))
    module.sniff, module.read = sniff, read  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    row = formats.FormatInfo("fake_fmt", module.__name__, "fake format for tests", (".fake",))
    monkeypatch.setattr(formats, "FORMATS", STATE_JSON_ONLY + (row,))
    return module


def test_state_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = _fake_state(path).replace(callbacks={"early_stopping": {"wait": 2}})
    sidecar.write(path, state)
    info = ckptcompat.inspect(path)
    assert isinstance(info, CheckpointInfo)
    assert (info.path, info.format, info.framework) == (str(path), "state_json", "tf.keras")
    assert info.versions == {"keras": "2.12.0", "tensorflow": "2.12.1"}
    assert (info.epoch, info.step, info.global_step) == (3, 0, 30)
    assert info.optimizer is not None
    assert (info.optimizer.class_name, info.optimizer.learning_rate, info.optimizer.iterations,
            info.optimizer.slot_count) == ("Adam", 0.01, 30, 0)
    assert info.variables == ()
    assert info.metric_names == ("loss", "acc", "val_auc_1")
    assert info.canonical_metric_names == ("loss", "accuracy", "val_auc")
    assert info.callbacks == ("early_stopping",) and info.history_epochs == 3


def test_fake_format_variables_slots_and_text(tmp_path: Path, fake_format: types.ModuleType) -> None:
    path = tmp_path / "model.fake"
    path.write_bytes(b"FAKE")
    info = inspect(path)
    assert info.format == "fake_fmt" and info.model_class == "Sequential"
    assert info.variables[:3] == (VariableInfo("dense/kernel", (3, 4), "float32", "weight"),
                                  VariableInfo("dense/bias", (4,), "float32", "weight"),
                                  VariableInfo("batch_normalization/moving_mean", (4,), "float64", "weight"))
    assert [v.name for v in info.variables[3:]] == [
        "optimizer/dense/kernel/m", "optimizer/dense/kernel/v", "optimizer/dense/bias/m",
        "optimizer/dense/bias/v", "optimizer/beta1_power"]
    assert [v.kind for v in info.variables[3:]] == ["slot"] * 4 + ["extra"]
    assert info.optimizer is not None and info.optimizer.slot_count == 4
    assert (info.weight_count, info.parameter_count) == (3, 20)

    text = info.to_text()
    lines = text.splitlines()
    assert lines[0] == f"path         {path}"
    assert "format       fake_fmt" in lines
    assert "producer     tf.keras (keras 2.12.0, tensorflow 2.12.1)" in lines
    assert "optimizer    Adam  learning_rate=0.01  iterations=30  slots=4" in lines
    assert "metrics      loss, acc -> accuracy, val_auc_1 -> val_auc" in lines
    var_lines = [line for line in lines if line.startswith("  ")]
    assert len(var_lines) == 8
    # columns aligned: the shape column starts at the same offset on every variable line
    offsets = {line.index("(") for line in var_lines}
    assert len(offsets) == 1


def test_to_dict_is_strict_json(tmp_path: Path, fake_format: types.ModuleType) -> None:
    path = tmp_path / "model.fake"
    path.write_bytes(b"FAKE")
    doc = json.loads(json.dumps(inspect(path).to_dict(), allow_nan=False))
    assert doc["format"] == "fake_fmt"
    assert doc["progress"] == {"epoch": 3, "step": 0, "global_step": 30, "global_step_source": "recorded"}
    assert doc["optimizer"]["slot_count"] == 4 and doc["optimizer"]["learning_rate"] == 0.01
    assert doc["variables"][0] == {"name": "dense/kernel", "shape": [3, 4], "dtype": "float32", "kind": "weight"}
    assert doc["metrics"] == {"raw": ["loss", "acc", "val_auc_1"], "canonical": ["loss", "accuracy", "val_auc"]}
    assert doc["parameter_count"] == 20


def test_reader_errors_pass_through_typed(tmp_path: Path, fake_format: types.ModuleType) -> None:
    path = tmp_path / "model.fake"
    path.write_bytes(b"FAKE!")
    with pytest.raises(CorruptCheckpointError, match="damaged fake"):
        inspect(path)


def test_bundle_directory_is_read(tmp_path: Path, fake_format: types.ModuleType) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    assert inspect(tmp_path).format == "fake_fmt"


def test_other_directory_is_unsupported_with_hint(tmp_path: Path, fake_format: types.ModuleType) -> None:
    (tmp_path / "weights.h5").write_bytes(b"not really")
    with pytest.raises(UnsupportedFormatError) as info:
        inspect(tmp_path)
    assert "weights.h5" in str(info.value) and "resume" in str(info.value)
    assert info.value.path == str(tmp_path)


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="empty directory"):
        inspect(tmp_path)
    with pytest.raises(CheckpointNotFoundError) as info:
        inspect(tmp_path / "nope.h5")
    assert info.value.path == str(tmp_path / "nope.h5")


def test_unknown_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01\x02 unknown")
    with pytest.raises(UnsupportedFormatError):
        inspect(path)


def test_legacy_pickle_sidecar_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "model-07.h5.pkl"
    path.write_bytes(pickle.dumps({"optimizer": {"name": "SGD", "learning_rate": 0.1, "momentum": 0.9},
                                   "epoch": 7}))
    info = inspect(path)
    assert info.format == LEGACY_SIDECAR and info.epoch == 7
    assert info.optimizer is not None and (info.optimizer.class_name, info.optimizer.learning_rate) == ("SGD", 0.1)


def test_legacy_history_json_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"acc": [0.5], "val_acc": [0.4]}))
    info = inspect(path)
    assert info.canonical_metric_names == ("accuracy", "val_accuracy") and info.history_epochs == 1


def test_global_step_from_optimizer_iterations_when_none_recorded() -> None:
    """A tf.keras .h5 records no global step; Keras' global step is the optimizer's iterations."""
    info = inspect(FIXTURES / "tf212" / "mlp_adam" / "model.h5")
    assert info.optimizer is not None and info.optimizer.iterations == 4
    assert (info.global_step, info.global_step_source) == (4, "optimizer iterations")
    assert "global step  4  (the optimizer's iterations; none recorded)" in info.to_text().splitlines()
    assert info.to_dict()["progress"]["global_step"] == 4


def test_text_shows_a_schedule_in_place_of_the_rate(tmp_path: Path) -> None:
    """A scheduled rate was printed as ``learning_rate=-``; now the schedule and its arguments
    (and Keras 2's ``decay`` where one applies)."""
    path = tmp_path / "state.json"
    schedule = {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5, "staircase": False, "name": None}}
    state = _fake_state(path)
    opt = state.optimizer.__class__("Adam", {"learning_rate": None, "learning_rate_schedule": schedule,
                                             "decay": 0.05}, iterations=30)
    sidecar.write(path, state.replace(optimizer=opt))
    line = next(x for x in ckptcompat.inspect(path).to_text().splitlines() if x.startswith("optimizer"))
    assert ("learning_rate=ExponentialDecay(initial_learning_rate=0.01, decay_steps=2, decay_rate=0.5, "
            "staircase=False)  decay=0.05  iterations=30") in line
    huge = {**schedule, "config": {**schedule["config"], "decay_steps": 10 ** 400}}  # damaged: still shown
    sidecar.write(path, state.replace(optimizer=opt.__class__("Adam", {"learning_rate": None,
                                                                      "learning_rate_schedule": huge})))
    assert "decay_steps=1000" in ckptcompat.inspect(path).to_text()
