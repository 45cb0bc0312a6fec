"""resume() continues Keras 2's learning-rate ``decay`` and each generation's Nadam momentum schedule.

``decay`` (OptimizerV2, standalone Keras) decays the rate as ``lr / (1 + decay * iterations)``:
resumed into an optimizer class that takes it, it is passed on (the run continues bitwise);
into tf.keras 2.11+ / Keras 3, which have no ``decay``, as the equal ``InverseTimeDecay``
(warned), never dropped. Nadam's momentum-cache product follows the resumed optimizer's own
schedule (an OptimizerV2 Nadam gets the saved schedule's scale: 1.0 for a Keras 3 file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_module
from _paths import FIXTURES
from ckptcompat.names.lr_decay import takes_decay
from ckptcompat.names.slot_meaning import nadam_schedule, nadam_u_product
from ckptcompat.runtime._engine import live_nadam_schedule

pytestmark = pytest.mark.framework


def _optimizer_v2(name: str) -> type:
    """This Keras's OptimizerV2 class ``name`` (tf.keras <= 2.10: the default; 2.11+ and tf-keras:
    ``optimizers.legacy``); skips on Keras 3, which has none."""
    keras = keras_module()
    for space in (getattr(keras.optimizers, "legacy", None), keras.optimizers):
        cls = getattr(space, name, None)
        if isinstance(cls, type) and hasattr(cls, "_decayed_lr"):
            return cls
    pytest.skip("this Keras has no OptimizerV2 optimizers")


def _effective_lr(opt: Any) -> np.float32:
    """The rate the optimizer applies at its current step."""
    if hasattr(opt, "_decayed_lr"):
        import tensorflow as tf

        return np.float32(opt._decayed_lr(tf.float32).numpy())
    schedule = getattr(opt, "_learning_rate", None)
    assert callable(schedule) and not hasattr(schedule, "numpy"), "the resumed rate is not a schedule"
    return np.float32(np.asarray(schedule(opt.iterations)))


def _digest(model: Any) -> list[bytes]:
    return [np.asarray(w).tobytes() for w in model.get_weights()]


def test_learning_rate_decay_is_continued_not_dropped(tmp_path: Path, caplog: Any) -> None:
    cls = _optimizer_v2("Adam")
    keras = keras_module()
    keras.utils.set_random_seed(0) if hasattr(keras.utils, "set_random_seed") else None
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1)])
    model.compile(cls(learning_rate=0.01, decay=0.05), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    want = _effective_lr(model.optimizer)  # 0.01 / (1 + 0.05 * 8)
    assert want != np.float32(0.01)
    model.save(str(tmp_path / "decay.h5"))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    with caplog.at_level(logging.WARNING):
        run = ckptcompat.resume(tmp_path / "decay.h5")
    opt = run.model.optimizer
    assert int(np.asarray(opt.iterations)) == 8
    assert _effective_lr(opt).tobytes() == want.tobytes()
    if takes_decay(type(opt)):  # this Keras resumes it as the same OptimizerV2 class
        run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        assert _digest(run.model) == _digest(model)  # the decayed rate, step by step
    else:
        assert "decay=0.05 is continued as learning_rate=InverseTimeDecay" in caplog.text


def _nadam_fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/opt*nadam/model.*")
                  if p.parent.parent.name not in ("keras224-tf115-py37", "tf115-keras224-py37"))


@pytest.mark.parametrize("path", _nadam_fixtures(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_nadam_momentum_cache_follows_the_resumed_optimizers_schedule(path: Path) -> None:
    """The product restored is the file's where the resumed optimizer has the file's schedule,
    else recomputed for the resumed one's (an OptimizerV2 Nadam takes the file's scale)."""
    saved = ckptcompat.read(path).optimizer
    run = ckptcompat.resume(path)
    opt = run.model.optimizer
    live = live_nadam_schedule(opt)
    product = next(getattr(opt, a) for a in ("_u_product", "_m_cache", "m_schedule") if getattr(opt, a, None) is not None)
    got = np.asarray(product.numpy() if hasattr(product, "numpy") else product).astype(np.float32)
    file_schedule = nadam_schedule(saved.config, saved.hyperparameters)
    if hasattr(type(opt), "_decayed_lr"):  # OptimizerV2: the saved schedule continues
        assert np.float32(live[0]) == np.float32(file_schedule[0]), (live, file_schedule)
    if live == file_schedule and "u_product" in saved.extra:
        assert got.tobytes() == np.asarray(saved.extra["u_product"], dtype=np.float32).tobytes()
    else:
        beta_1 = float(saved.hyperparameters.get("beta_1") or 0.9)
        assert got.tobytes() == nadam_u_product(4, beta_1, schedule=live).tobytes(), (live, file_schedule)
