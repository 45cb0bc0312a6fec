"""Adapted preprocessing state survives resume: what Keras's own loading finalizes is finalized.

* An adapted ``Normalization`` keeps its statistics in variables but computes with mean and
  variance tensors it derives from them in ``finalize_state``; Keras's weight loading calls it
  in both generations. Without it a resumed model had bitwise-equal weights and other outputs
  (on Keras 3's JAX and torch backends too: test_resume_adapted_state_backends.py).
* An adapted Keras 2 ``Discretization`` keeps what it saw in a ``summary`` variable; its bins
  are derived from it (``resuming/adapted_bins.py``) exactly as Keras computes them.

The cross-generation files (tf-keras 2.21, TF 2.15 and Keras 3.15 writing, every generation
reading, with outputs compared) are ``adapted_preprocessing`` in fixtures/layer_configs, read by
tests/names/test_names_config_layers.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_module
from ckptcompat.resuming.adapted_bins import bins_from_summary, config_with_bins
from ckptcompat.state import TrainingState

pytestmark = pytest.mark.framework


def _keras_bin_boundaries() -> Any:
    """The running Keras's own ``get_bin_boundaries`` (summary, num_bins) -> boundaries."""
    keras = keras_module()
    try:
        module = __import__(f"{keras.__name__}.src.layers.preprocessing.discretization",
                            fromlist=["get_bin_boundaries"])
    except ImportError:  # tf.keras <= 2.15 keeps it elsewhere
        pytest.skip(f"{keras.__name__} has no importable discretization module")
    return lambda summary, bins: np.asarray(module.get_bin_boundaries(summary, bins))


@pytest.mark.parametrize(("points", "num_bins"), [(3, 4), (4, 4), (37, 4), (64, 7), (500, 10), (5, 2), (64, 49),
                                                  (1, 1)])
def test_bins_from_a_summary_are_keras_own(points: int, num_bins: int) -> None:
    rng = np.random.default_rng(points)
    summary = np.stack([np.sort(rng.random(points) * 9 - 3), rng.integers(1, 5, points)]).astype("float32")
    mine = np.float32(bins_from_summary(summary, num_bins))
    assert np.array_equal(mine, np.float32(_keras_bin_boundaries()(summary, num_bins)))


def _model(keras: Any, data: np.ndarray) -> Any:
    norm = keras.layers.Normalization()
    norm.adapt(data)
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(norm(inp)))
    model.compile("adam", "mse")
    model.fit(data, np.ones((len(data), 2), "float32"), verbose=0, epochs=2)
    return model


def test_a_resumed_adapted_normalization_computes_what_it_did(tmp_path: Path) -> None:
    keras = keras_module()
    data = (np.random.default_rng(0).random((32, 3)) * 10 + 5).astype("float32")
    model = _model(keras, data)
    model.save(tmp_path / "norm.h5")
    result = ckptcompat.resume(tmp_path / "norm.h5")
    assert result.state.optimizer is not None and result.state.optimizer.iterations == 2  # the file's state
    assert all(np.array_equal(a, b) for a, b in zip(result.model.get_weights(), model.get_weights()))
    assert np.array_equal(result.model.predict(data[:4], verbose=0), model.predict(data[:4], verbose=0))
    # model= built in code, its train/test/predict functions traced on other statistics first
    fresh = _model(keras, np.zeros((4, 3), "float32"))
    fresh.evaluate(data, np.ones((32, 2)), verbose=0)
    fresh.predict(data[:4], verbose=0)
    ckptcompat.resume(tmp_path / "norm.h5", model=fresh)
    assert np.array_equal(fresh.predict(data[:4], verbose=0), model.predict(data[:4], verbose=0))
    target = np.ones((32, 2), "float32")
    assert fresh.evaluate(data, target, verbose=0) == model.evaluate(data, target, verbose=0)


def _adapted_bins_model(keras: Any, num_bins: int, data: np.ndarray) -> Any:
    bins = keras.layers.Discretization(num_bins=num_bins, output_mode="int", name="bins")
    bins.adapt(data)
    inp = keras.Input((1,))
    return keras.Model(inp, [keras.layers.Dense(1, name="d")(inp), bins(inp)])


@pytest.mark.parametrize("num_bins", [4, 49, 80])  # 49: arange(0, 1, 1/49) has 50 points; 80 > 64 points
def test_a_resumed_adapted_discretization_keeps_its_bins(tmp_path: Path, num_bins: int) -> None:
    keras = keras_module()
    data = np.random.default_rng(num_bins).random((64, 1)).astype("float32")
    model = _adapted_bins_model(keras, num_bins, data)
    model.save(tmp_path / "bins.h5")
    written = np.float32(model.get_layer("bins").bin_boundaries)
    result = ckptcompat.resume(tmp_path / "bins.h5")
    assert np.array_equal(np.float32(result.model.get_layer("bins").bin_boundaries), written)
    assert np.array_equal(result.model.predict(data, verbose=0)[1], model.predict(data, verbose=0)[1])


class Discretization:  # the attributes plan/set read, as a Keras 3 layer has them (no variables)
    def __init__(self, name: str, bins: list[float] | None = None) -> None:
        self.name, self.bin_boundaries, self.num_bins, self.weights, self.summary = name, bins, None, [], None


def test_bins_are_planned_from_the_checkpoints_own_config_and_set_only_after_assignment() -> None:
    """Nothing changes on the live layer until ``set_adapted_bins`` (resume calls it once every other
    value is assigned: a misfit leaves a given model as it was); num_bins is the checkpoint's own;
    a ``summary`` whose owner is no Discretization in the checkpoint's config is not taken."""
    from types import SimpleNamespace

    from ckptcompat.resuming.adapted_bins import plan_adapted_bins, set_adapted_bins

    summary = np.stack([np.linspace(0, 1, 64), np.ones(64)]).astype("float32")
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "Discretization", "config": {"name": "bins", "num_bins": 49}},
        {"class_name": "MyLayer", "config": {"name": "mine"}}]}}
    layer, mine = Discretization("bins", [0.5]), Discretization("mine", [0.25])
    model = SimpleNamespace(layers=[layer, mine], predict_function="traced")
    state = TrainingState(weights={"bins/summary": summary, "mine/summary": summary}, model_config=config)
    left, plan = plan_adapted_bins(model, state)
    assert list(left.weights) == ["mine/summary"]  # its owner is no Discretization: left to the matching
    assert layer.bin_boundaries == [0.5] and mine.bin_boundaries == [0.25]  # planned, not set
    set_adapted_bins(model, plan, "f.h5")
    assert layer.bin_boundaries == bins_from_summary(summary, 49)  # 49 boundaries: Keras's own arange quirk
    assert mine.bin_boundaries == [0.25] and model.predict_function is None  # retraced with the bins


def test_an_adapted_keras2_summary_becomes_the_bins_of_the_config() -> None:
    summary = np.stack([np.linspace(0, 1, 40), np.ones(40)]).astype("float32")
    layers = [{"class_name": "Discretization", "config": {"name": "bins", "num_bins": 4, "bin_boundaries": None}},
              {"class_name": "Discretization", "config": {"name": "given", "num_bins": None,
                                                           "bin_boundaries": [0.5]}}]
    nested = {"class_name": "Functional", "config": {"name": "inner", "layers": [copy.deepcopy(layers[0])]}}
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [*layers, nested]}}
    state = TrainingState(weights={"bins/summary": summary, "given/summary": summary})
    out = config_with_bins(config, state)["config"]["layers"]
    assert out[0]["config"]["bin_boundaries"] == bins_from_summary(summary, 4) and out[0]["config"]["num_bins"] is None
    assert out[1]["config"] == layers[1]["config"]  # bins given: unchanged
    assert out[2]["config"]["layers"][0]["config"]["num_bins"] == 4  # inner/bins/summary is not in the state
    assert config["config"]["layers"][0]["config"]["num_bins"] == 4  # the caller's config is not changed
