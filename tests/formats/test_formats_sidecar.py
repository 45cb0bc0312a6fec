"""ckptcompat's state.json and the safe readers for legacy sidecars."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ckptcompat.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    IncompatibleStateError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)
from ckptcompat.formats import registry, sidecar
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState


def _state(**changes: object) -> TrainingState:
    state = TrainingState(
        weights={"dense/kernel": np.ones((2, 2), np.float32)},   # not written: tensors live elsewhere
        optimizer=OptimizerState(
            class_name="Adam",
            hyperparameters={"learning_rate": np.float32(0.01), "beta_1": 0.9, "amsgrad": np.bool_(False),
                             "decay_steps": np.int64(10)},
            iterations=np.int64(30),
            slots={"dense/kernel": {"m": np.zeros((2, 2), np.float32)}},
            config={"name": "Adam", "learning_rate": 0.01}),
        progress=Progress(epoch=3, step=5, global_step=35),
        history={"loss": [1.0, float("nan"), 0.5], "val_acc": [0.1, float("inf"), float("-inf")]},
        callbacks={"early_stopping": {"wait": 1, "best": float("inf"), "monitor": "val_loss"}},
        rng={"numpy": {"bit_generator": "MT19937",
                       "state": {"key": np.arange(624, dtype=np.uint32), "pos": 624}},
             "python_seed": 2**70},
        producer=Producer("tf.keras", {"keras": "2.12.0", "tensorflow": "2.12.1"}, "keras_h5", "/x.h5"),
        metric_names=("loss", "val_acc"))
    return state.replace(**changes) if changes else state


def test_round_trip_is_exact_for_everything_but_tensors(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sidecar.write(path, _state())
    back = sidecar.read(path)
    assert back.weights == {} and back.optimizer is not None and back.optimizer.slots == {}
    assert back.progress == Progress(epoch=3, step=5, global_step=35)
    assert back.optimizer.class_name == "Adam"
    assert back.optimizer.iterations == 30 and type(back.optimizer.iterations) is int
    hp = back.optimizer.hyperparameters
    assert hp == {"learning_rate": float(np.float32(0.01)), "beta_1": 0.9, "amsgrad": False, "decay_steps": 10}
    assert type(hp["amsgrad"]) is bool and type(hp["decay_steps"]) is int
    assert back.optimizer.config == {"name": "Adam", "learning_rate": 0.01}
    assert back.history["loss"][0] == 1.0 and math.isnan(back.history["loss"][1])
    assert back.history["val_acc"][1:] == [float("inf"), float("-inf")]
    assert back.callbacks == {"early_stopping": {"wait": 1, "best": float("inf"), "monitor": "val_loss"}}
    key = back.rng["numpy"]["state"]["key"]
    assert key.dtype == np.uint32 and np.array_equal(key, np.arange(624, dtype=np.uint32))
    assert back.rng["python_seed"] == 2**70
    assert back.producer == Producer("tf.keras", {"keras": "2.12.0", "tensorflow": "2.12.1"},
                                     "state_json", str(path))
    assert back.metric_names == ("loss", "val_acc")


def test_file_is_strict_json_with_schema_first(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sidecar.write(path, _state())
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert next(iter(doc)) == sidecar.SCHEMA_KEY and doc[sidecar.SCHEMA_KEY] == sidecar.SCHEMA_VERSION
    assert "dense/kernel" not in text  # no tensors
    assert doc["history"]["loss"][1] == {"__float__": "nan"}


def test_registry_detects_and_reads_state_json(tmp_path: Path) -> None:
    path = tmp_path / "anything.state"
    registry.write(path, _state(), format="state_json")
    assert registry.detect(path) == "state_json"
    assert registry.read(path).progress.epoch == 3


def test_sniff(tmp_path: Path) -> None:
    (tmp_path / "hist.json").write_text(json.dumps({"loss": [1.0]}))
    (tmp_path / "bin.json").write_bytes(os.urandom(64))
    assert not sidecar.sniff(tmp_path / "hist.json")
    assert not sidecar.sniff(tmp_path / "bin.json")
    assert not sidecar.sniff(tmp_path / "absent.json")
    assert not sidecar.sniff(tmp_path)
    sidecar.write(tmp_path / "s.json", _state())
    assert sidecar.sniff(tmp_path / "s.json")


def test_write_failure_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    sidecar.write(path, _state())
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        sidecar.write(path, _state(progress=Progress(epoch=4)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_unstorable_values_are_listed_and_nothing_written(tmp_path: Path) -> None:
    state = _state(callbacks={"a": {"fn": print, 1: 2}, "b": {"arr": np.array(["x"])}})
    with pytest.raises(IncompatibleStateError) as info:
        sidecar.write(tmp_path / "state.json", state)
    assert len(info.value.mismatches) == 3
    assert "builtins.builtin_function_or_method" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_nadam_momentum_cache_product_is_kept_bitwise(tmp_path: Path) -> None:
    """The Keras 2 .h5 layout has no place for Nadam's u_product (standalone Keras's
    m_schedule): state.json keeps it, as the float32 it was."""
    value = np.float32(0.0016936241)
    sidecar.write(tmp_path / "state.json", _state(optimizer=OptimizerState(
        class_name="Nadam", hyperparameters={}, iterations=8, extra={"u_product": np.asarray(value)})))
    back = sidecar.read(tmp_path / "state.json").optimizer
    assert back is not None and back.extra["u_product"].dtype == np.float32
    assert back.extra["u_product"].tobytes() == np.asarray(value).tobytes()
    assert "non_slot" not in json.loads(sidecar_text(tmp_path, _state()))["optimizer"]


def sidecar_text(tmp_path: Path, state: TrainingState) -> str:
    sidecar.write(tmp_path / "plain.json", state)
    return (tmp_path / "plain.json").read_text()


@pytest.mark.parametrize("content, error", [
    (b'{"ckptcompat_state": 1, "optimizer": {"class_name": "Nadam", "non_slot": {"u_product": "x"}}}',
     CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "optimizer": {"class_name": "Nadam", "non_slot": {"u_product": 1' + b"0" * 400
     + b'}}}', CorruptCheckpointError),
    (b"", CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "progress": {"epo', CorruptCheckpointError),
    (b'\xff\xfe{"ckptcompat_state": 1}', CorruptCheckpointError),
    (b'{"ckptcompat_state": 99}', UnsupportedFormatError),
    (b'{"ckptcompat_state": "one"}', CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "progress": {"epoch": -1}}', CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "progress": {"epoch": 1.5}}', CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "history": {"loss": ["x"]}}', CorruptCheckpointError),
    (b'{"ckptcompat_state": 1, "optimizer": {}}', CorruptCheckpointError),
    (b'{"loss": [1.0]}', UnsupportedFormatError),
    (b'[1, 2]', UnsupportedFormatError),
])
def test_bad_state_json_raises_typed_errors(tmp_path: Path, content: bytes, error: type) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(error) as info:
        sidecar.read(path)
    assert info.value.path == str(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        sidecar.read(tmp_path / "absent.json")
    with pytest.raises(UnsupportedFormatError):
        sidecar.read(tmp_path)


# ------------------------------------------------------------------ legacy sidecars
def _pickle(tmp_path: Path, name: str, obj: object, protocol: int = 4) -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_workflow3_pickle_optimizer_config_and_epoch(tmp_path: Path) -> None:
    # what a tf.keras 2.x ModelCheckpoint subclass pickles: get_config() holds numpy floats
    config = {"name": "Adam", "learning_rate": np.float32(0.001), "decay": 0.0, "beta_1": np.float32(0.9),
              "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}
    state = sidecar.read_legacy_sidecar(_pickle(tmp_path, "epoch_12.pkl", {"optimizer": config, "epoch": 12}))
    assert state.progress.epoch == 12
    assert state.optimizer is not None and state.optimizer.class_name == "Adam"
    assert state.optimizer.learning_rate == float(np.float32(0.001))
    assert state.optimizer.hyperparameters["beta_1"] == float(np.float32(0.9))
    assert "name" not in state.optimizer.hyperparameters
    assert state.weights == {} and state.optimizer.slots == {}


def test_old_keras_config_without_name_uses_canonical_keys(tmp_path: Path) -> None:
    cfg = {"lr": 0.01, "momentum": 0.9, "decay": 0.0, "nesterov": True}
    state = sidecar.read_legacy_sidecar(_pickle(tmp_path, "s.pkl", {"optimizer": cfg, "epoch": 0}, protocol=2))
    assert state.optimizer is not None and state.optimizer.class_name == "unknown"
    assert state.optimizer.hyperparameters == {"learning_rate": 0.01, "momentum": 0.9, "decay": 0.0,
                                               "nesterov": True}
    assert state.progress.epoch == 0


def test_serialized_optimizer_class_name_and_config(tmp_path: Path) -> None:
    raw = {"class_name": "Custom>Adam", "config": {"learning_rate": 0.5, "iterations": 40}}
    state = sidecar.read_legacy_sidecar(_pickle(tmp_path, "s.pkl", {"optimizer": raw, "epoch": 2}))
    assert state.optimizer is not None
    assert (state.optimizer.class_name, state.optimizer.learning_rate, state.optimizer.iterations) == ("Adam", 0.5, 40)


def test_history_pickle_with_numpy_scalars(tmp_path: Path) -> None:
    hist = {"loss": [np.float64(0.9), np.float64(0.7)], "acc": [np.float32(0.5), np.float32(0.75)]}
    state = sidecar.read_legacy_sidecar(_pickle(tmp_path, "trainHistoryDict", hist, protocol=3))
    assert state.history == {"loss": [0.9, 0.7], "acc": [0.5, 0.75]}
    assert state.metric_names == ("loss", "acc") and state.progress.epoch is None


def test_history_json(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}))
    state = sidecar.read_legacy_sidecar(path)
    assert state.history == {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}


def test_model_json_double_encoded(tmp_path: Path) -> None:
    doc = {"class_name": "Sequential", "config": [{"class_name": "Dense", "config": {"units": 1}}],
           "keras_version": "1.2.1"}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(json.dumps(doc)))
    state = sidecar.read_legacy_sidecar(path)
    assert state.model_config == {"class_name": "Sequential", "config": doc["config"]}
    assert state.producer.versions == {"keras": "1.2.1"}


def test_own_state_json_through_legacy_reader(tmp_path: Path) -> None:
    sidecar.write(tmp_path / "state.json", _state())
    assert sidecar.read_legacy_sidecar(tmp_path / "state.json").progress.global_step == 35


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


@pytest.mark.parametrize("make, error", [
    (lambda p: p.write_bytes(pickle.dumps({"optimizer": _Evil(), "epoch": 1})), UnsafeCheckpointError),
    (lambda p: p.write_bytes(pickle.dumps({"epoch": 1})[:-3]), CorruptCheckpointError),
    (lambda p: p.write_bytes(pickle.dumps({"epoch": -2})), CorruptCheckpointError),
    (lambda p: p.write_bytes(pickle.dumps({"epoch": "3"})), CorruptCheckpointError),
    (lambda p: p.write_bytes(pickle.dumps({"optimizer": "adam"})), UnsupportedFormatError),
    (lambda p: p.write_bytes(pickle.dumps({"accuracy": 0.9, "report": "..."})), UnsupportedFormatError),
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), UnsupportedFormatError),
    (lambda p: p.write_bytes(b""), CorruptCheckpointError),
    (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64)), UnsupportedFormatError),
    (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(64)), UnsupportedFormatError),
    (lambda p: p.write_text('{"intents": [{"tag": "hi"}]}'), UnsupportedFormatError),
    (lambda p: p.write_text('{"loss": [1.0, '), CorruptCheckpointError),
    (lambda p: p.write_bytes(b"\x01\x02binary"), UnsupportedFormatError),
])
def test_legacy_bad_input(tmp_path: Path, make: object, error: type) -> None:
    path = tmp_path / "sidecar.bin"
    make(path)  # type: ignore[operator]
    with pytest.raises(error) as info:
        sidecar.read_legacy_sidecar(path)
    assert info.value.path == str(path)


def test_legacy_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        sidecar.read_legacy_sidecar(tmp_path / "nope.pkl")


@pytest.mark.framework
def test_real_optimizer_get_config_pickle(tmp_path: Path, keras: object) -> None:
    opt = keras.optimizers.Adam(learning_rate=0.002)  # type: ignore[attr-defined]
    config = opt.get_config()
    path = _pickle(tmp_path, "ckpt-05.pkl", {"optimizer": config, "epoch": 5})
    state = sidecar.read_legacy_sidecar(path)
    assert state.optimizer is not None
    assert state.optimizer.class_name == "Adam"
    assert state.optimizer.learning_rate == float(config["learning_rate"])
    assert state.optimizer.hyperparameters["beta_1"] == float(config["beta_1"])
    assert state.progress.epoch == 5


@pytest.mark.framework
def test_real_history_pickle(tmp_path: Path, keras: object) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])  # type: ignore[attr-defined]
    model.compile(optimizer="sgd", loss="mse", metrics=["acc"])
    hist = model.fit(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32), epochs=2, verbose=0)
    path = _pickle(tmp_path, "history.pkl", hist.history)
    state = sidecar.read_legacy_sidecar(path)
    assert set(state.history) == set(hist.history) and "acc" in state.history
    assert all(state.history[k] == [float(x) for x in v] for k, v in hist.history.items())
