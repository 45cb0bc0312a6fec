"""Adapted preprocessing state survives resume: what Keras's own loading finalizes is finalized.

* An adapted ``Normalization`` keeps its statistics in variables but computes with mean and
  variance tensors it derives from them in ``finalize_state``; Keras's weight loading calls it
  in both generations. Without it a resumed model had bitwise-equal weights and other outputs.
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
    module = __import__(f"{keras.__name__}.src.layers.preprocessing.discretization",
                        fromlist=["get_bin_boundaries"])
    return lambda summary, bins: np.asarray(module.get_bin_boundaries(summary, bins))


@pytest.mark.parametrize(("points", "num_bins"), [(3, 4), (4, 4), (37, 4), (64, 7), (500, 10), (5, 2)])
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
    fresh = _model(keras, np.zeros((4, 3), "float32"))  # model= built in code: other statistics first
    ckptcompat.resume(tmp_path / "norm.h5", model=fresh)
    assert np.array_equal(fresh.predict(data[:4], verbose=0), model.predict(data[:4], verbose=0))


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
