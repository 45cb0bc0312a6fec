"""A checkpoint of a diverged run (NaN, -0.0 in its tensors) is written, read back and migrated
bit for bit: the writers' read-back checks compare bits, not values (NaN != NaN by value)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from ckptcompat._arrays import same_values
from ckptcompat.formats import keras_h5, keras_zip, tf_bundle

from _paths import FIXTURES

SOURCE = FIXTURES / "tf221-keras3" / "mlp_adam" / "model.keras"


def test_same_values_compares_bits() -> None:
    nan = np.array([np.nan, 1.0], np.float32)
    assert same_values(nan, nan.copy())
    assert not same_values(np.float32([0.0]), np.float32([-0.0]))  # equal by value, not by bits
    assert not same_values(nan, np.float32([np.nan, 2.0]))
    assert same_values(nan, nan.astype(np.float64))  # other dtype: by value, NaN equal to NaN
    assert not same_values(nan, nan[:1])
    assert same_values(np.arange(6).reshape(2, 3).T, np.arange(6).reshape(2, 3).T.copy())
    assert same_values(np.array(["a"], object), np.array(["a"], object))


def _diverged(tmp_path: Path) -> tuple[ckptcompat.TrainingState, str]:
    state = keras_zip.read(SOURCE)
    weights = dict(state.weights)
    name = next(iter(weights))
    value = weights[name].copy()
    value.flat[0], value.flat[1], value.flat[2] = np.nan, -0.0, np.inf
    weights[name] = value
    return state.replace(weights=weights), name


@pytest.mark.parametrize("module, file", [(keras_h5, "m.h5"), (keras_zip, "m.keras"),
                                          (tf_bundle, "tf/model.ckpt")])
def test_writers_keep_nan_weights(tmp_path: Path, module, file: str) -> None:
    state, name = _diverged(tmp_path)
    module.write(tmp_path / file, state)
    back = module.read(tmp_path / file).weights[name]
    assert back.tobytes() == np.asarray(state.weights[name]).tobytes()


@pytest.mark.parametrize("to, file", [("h5", "m.h5"), ("keras3", "m.keras"), ("tf1", "tf")])
def test_migrate_keeps_nan_weights(tmp_path: Path, to: str, file: str) -> None:
    state, name = _diverged(tmp_path)
    keras_zip.write(tmp_path / "src.keras", state)
    ckptcompat.migrate(tmp_path / "src.keras", tmp_path / file, to=to)
    back = ckptcompat.read(tmp_path / file).weights[name]
    assert back.tobytes() == np.asarray(state.weights[name]).tobytes()
