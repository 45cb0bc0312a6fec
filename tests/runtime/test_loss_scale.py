"""Loss-scale wrappers (mixed precision): the dynamic scale and its good-step count are captured,
stored and restored, on Keras 3 and Keras 2; a checkpoint scale a model cannot take is reported."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _frameworks import keras_flavour

pytestmark = pytest.mark.framework


def _wrapped(keras: Any, seed: int = 0) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    inner = keras.optimizers.Adam(1e-2)
    if keras_flavour() == "keras3":
        opt = keras.optimizers.LossScaleOptimizer(inner, initial_scale=256.0, dynamic_growth_steps=2)
    else:
        opt = keras.mixed_precision.LossScaleOptimizer(inner, initial_scale=256.0, dynamic_growth_steps=2)
    model.compile(optimizer=opt, loss="mse")
    return model


def _scale(model: Any) -> tuple[float, int]:
    from ckptcompat.runtime import _loss_scale

    live = _loss_scale.live_variables(model.optimizer)
    return float(np.asarray(live[_loss_scale.CURRENT])), int(np.asarray(live[_loss_scale.GOOD_STEPS]))


def test_scale_survives_a_store_round_trip(tmp_path: Path, keras: Any) -> None:
    import ckptcompat
    from ckptcompat.callbacks import Checkpoint

    x = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(24, 3)).astype("float32")
    model = _wrapped(keras)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[Checkpoint(tmp_path / "ckpt", restore=False)])
    want = _scale(model)
    assert want[0] > 256.0  # the scale grew (3 finite steps, growth every 2): state worth keeping
    fresh = _wrapped(keras, seed=1)
    run = ckptcompat.resume(tmp_path / "ckpt", model=fresh)
    assert _scale(run.model) == want
    rebuilt = ckptcompat.resume(tmp_path / "ckpt")  # the wrapper is rebuilt from the checkpoint
    assert _scale(rebuilt.model) == want
    stored = sorted((tmp_path / "ckpt").rglob("model.keras"))
    if stored and keras_flavour() == "keras3":  # laid out as Keras saves it: native load_model agrees
        native = keras.saving.load_model(stored[-1])
        assert _scale(native) == want


def test_scale_without_a_wrapper_is_reported(tmp_path: Path, keras: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    import ckptcompat
    from ckptcompat import runtime

    x = np.ones((8, 4), "float32")
    model = _wrapped(keras)
    model.fit(x, np.ones((8, 3), "float32"), batch_size=8, epochs=1, verbose=0)
    state = runtime.capture(model)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    plain.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        runtime.apply(state, plain)
    assert any("loss scale" in r.getMessage() and "not restored" in r.getMessage() for r in caplog.records)
    assert ckptcompat is not None
