"""Nadam's momentum schedule per generation and Keras 2's learning-rate ``decay``, held against
the files the real releases wrote (no framework needed).

Every committed Nadam fixture that stores its momentum-cache product (standalone Keras 2.3.1,
tf.keras 2.0 - 2.10 and ``optimizers.legacy`` up to tf-keras 2.21, Keras 3 on TensorFlow and
JAX) holds exactly ``nadam_u_product`` of its step count under the schedule
:func:`nadam_schedule` reads from its config: the product means another thing in each
generation, which is why ``resume`` and the ``.keras`` writer recompute it across them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from ckptcompat.names.lr_decay import (decay_schedule_config, is_decay_schedule, rate_and_schedule, saved_decay,
                                       schedule_as_rate)
from ckptcompat.names.slot_meaning import KERAS3_NADAM_SCHEDULE, nadam_schedule, nadam_u_product
from _paths import FIXTURES

#: Keras 3 on torch rounds 0.96 ** t its own way (last bit); its product is kept as written
_OWN_POWER = ("keras3-torch",)


def _nadam_files() -> list[Path]:
    # (a .weights.h5 keeps no class: its product is placed by tests/resuming/test_resume_positional_optimizer.py)
    return sorted(p for p in FIXTURES.glob("*/opt*nadam/model.*") if p.parent.parent.name not in _OWN_POWER
                  and not p.name.endswith(".weights.h5"))


def test_every_generation_of_nadam_is_among_the_fixtures() -> None:
    schedules = set()
    for path in _nadam_files():
        opt = ckptcompat.read(path).optimizer
        scale, first = nadam_schedule(opt.config, opt.hyperparameters)
        schedules.add((float(np.float32(scale)), first))
    # Keras 3 / tf.keras 2.11+, OptimizerV2 (decay 0.004), standalone Keras (schedule_decay 0.004)
    assert schedules == {(1.0, 1), (float(np.float32(0.004)), 1), (float(np.float32(0.004)), 2)}, schedules


@pytest.mark.parametrize("path", _nadam_files(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_stored_momentum_cache_is_the_product_of_its_schedule(path: Path) -> None:
    state = ckptcompat.read(path)
    opt = state.optimizer
    assert opt is not None and opt.class_name == "Nadam" and opt.iterations == 4
    stored = opt.extra.get("u_product")
    if stored is None:
        pytest.skip("this file does not store the product (tf.keras 2.11+ .h5, Keras 2.2's m_schedule)")
    schedule = nadam_schedule(opt.config, opt.hyperparameters)
    beta_1 = float(opt.hyperparameters.get("beta_1") or 0.9)
    keras3 = str(state.producer.versions.get("keras", "")).startswith("3")  # its order of operations
    want = nadam_u_product(opt.iterations, beta_1, schedule=schedule, keras3=keras3)
    assert np.asarray(stored).tobytes() == want.tobytes(), (schedule, float(stored), float(want))
    if schedule != KERAS3_NADAM_SCHEDULE:  # another generation's product is another number
        assert float(stored) != float(nadam_u_product(opt.iterations, beta_1, keras3=True))


def test_optimizer_v2_nadam_after_eight_steps_as_tf215_computed_it() -> None:
    # tf.keras 2.15 optimizers.legacy.Nadam(learning_rate=0.01), 8 steps: momentum_cache read back
    assert float(nadam_u_product(8, np.float32(0.9), schedule=(0.004, 1))) == float(np.float32(0.0016914166044443846))
    assert float(nadam_u_product(8, np.float32(0.9), keras3=True)) == float(np.float32(0.005571079906076193))


def test_learning_rate_decay_is_read_for_every_class_but_nadam() -> None:
    config = {"class_name": "Adam", "config": {"learning_rate": 0.01, "decay": 0.05}}
    assert saved_decay("Adam", config, {}) == 0.05
    assert saved_decay("Adam", None, {"decay": 0.5}) == 0.5
    assert saved_decay("Nadam", {"config": {"decay": 0.004}}, {}) == 0.0  # its momentum schedule
    assert saved_decay("SGD", {"config": {"decay": True}}, {}) == 0.0
    schedule = decay_schedule_config(0.01, 0.05)
    assert is_decay_schedule(schedule, np.float32(0.01), 0.05)
    assert not is_decay_schedule(schedule, 0.02, 0.05)
    assert not is_decay_schedule({**schedule, "config": {**schedule["config"], "staircase": True}}, 0.01, 0.05)
    assert not is_decay_schedule({"class_name": "ExponentialDecay", "config": {}}, 0.01, 0.05)


def test_a_tf_keras_schedule_loses_its_none_name() -> None:
    # tf.keras's built-in schedules serialize "name": None; Keras 3's fail on it at the first step
    tf_keras = {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.01, "decay_steps": 2,
                                                             "decay_rate": 0.5, "staircase": False, "name": None}}
    hyper = rate_and_schedule({"learning_rate": tf_keras})
    assert hyper["learning_rate"] is None and "name" not in hyper["learning_rate_schedule"]["config"]
    assert "name" not in schedule_as_rate({"learning_rate": None, "learning_rate_schedule": tf_keras})[
        "learning_rate"]["config"]
    named = {**tf_keras, "config": {**tf_keras["config"], "name": "ExponentialDecay"}}
    assert rate_and_schedule({"learning_rate": named})["learning_rate_schedule"] == named
