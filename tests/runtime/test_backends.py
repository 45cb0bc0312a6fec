"""Keras 3 on any backend: detection without TensorFlow, install hints per backend,
backend-agnostic reads (torch parameters that require grad), SeedGenerator states."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat import _lazy, runtime
from ckptcompat.errors import MissingDependencyError


def test_keras_backend_follows_keras_rule(tmp_path: Path) -> None:
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert runtime.keras_backend({"KERAS_HOME": str(tmp_path)}) == "torch"
    assert runtime.keras_backend({"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": "jax"}) == "jax"
    assert runtime.keras_backend({"KERAS_HOME": str(tmp_path / "none")}) == "tensorflow"


def test_keras3_without_tensorflow_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_tf_version", lambda: None)
    monkeypatch.setattr(runtime, "_keras3_installed", lambda: True)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    assert runtime.keras_source() == "keras" and runtime.detect() == "keras3"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(MissingDependencyError, match="configured for the tensorflow backend"):
        runtime.detect()


def test_hints_name_what_the_backend_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert "ckptcompat[jax]" in _lazy._hint("keras") and "[tf]" not in _lazy._hint("keras")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert "ckptcompat[torch]" in runtime.install_hint()
    assert "Keras runs on torch" in _lazy._hint("tensorflow")
    monkeypatch.setattr(runtime, "_tf_version", lambda: None)
    monkeypatch.setattr(runtime, "_keras3_installed", lambda: False)
    with pytest.raises(MissingDependencyError) as info:
        runtime.detect()
    assert "ckptcompat[torch]" in str(info.value.hint)


def _model(keras: Any) -> Any:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.5, seed=1),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


@pytest.mark.backend
def test_capture_reads_any_backend_and_owns_its_arrays(keras: Any) -> None:
    """On torch a trainable variable is a Parameter that requires grad: its own .numpy()
    raises; capture reads through keras.ops, bitwise, and keeps its own copy."""
    model = _model(keras)
    x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
    model.fit(x, y, batch_size=4, verbose=0)
    state = runtime.capture(model)
    first, last = model.layers[0], model.layers[2]  # names depend on what the process built before
    live = {f"{first.name}/kernel": first.kernel, f"{last.name}/bias": last.bias}
    for name, var in live.items():
        assert np.array_equal(state.weights[name], keras.ops.convert_to_numpy(var))
    before = {k: v.copy() for k, v in state.weights.items()}
    model.fit(x, y, batch_size=4, verbose=0)
    assert all(np.array_equal(before[k], v) for k, v in state.weights.items())
    assert state.optimizer.iterations == 2
    assert state.producer.versions["backend"] == keras.backend.backend()


@pytest.mark.backend
def test_seed_generator_state_round_trips(keras: Any) -> None:
    from ckptcompat.data.rng import capture_rng, restore_rng

    keras.backend.clear_session()
    model = _model(keras)
    model.fit(np.ones((8, 3), np.float32), np.ones((8, 1), np.float32), batch_size=2, verbose=0)
    rng = capture_rng(model)
    assert list(rng["keras_seed_generators"]) == ["dropout/0"]
    assert rng["keras_seed_generators"]["dropout/0"]["state"] == [1, 4]  # seed 1, 4 steps
    keras.backend.clear_session()
    fresh = _model(keras)
    assert "keras_seed_generators" in restore_rng(rng, fresh)
    state = keras.ops.convert_to_numpy(fresh.layers[1].seed_generator.state)
    assert state.tolist() == [1, 4]
