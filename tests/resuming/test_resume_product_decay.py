"""The multi-backend Keras API's learning-rate ``decay`` (``lr * (1 / (1 + decay * t))``), resumed at
its own rate in every later Keras; OptimizerV2 slots created in the optimizer's name scope.

Keras 1 to 2.3 and the tf.keras of TF 1.4 to 1.12 multiply by the reciprocal; OptimizerV2's
``decay`` and ``InverseTimeDecay`` divide, which is 1 float32 ulp away at some steps (TF 1.4's
``rate_decay`` fixture at step 4). Resume continues the product with an ``InverseTimeDecay``
subclass that Keras saves as its own (``ckptcompat.runtime.product_decay``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_flavour, keras_module
from _paths import FIXTURES, load_script
from ckptcompat.names.lr_decay import PRODUCT_DECAY_NAME
from ckptcompat.runtime.product_decay import is_product_decay

pytestmark = pytest.mark.framework

_TF14 = FIXTURES / "tf14-keras208-py36"


def _rate(opt: Any) -> np.float32:
    """The rate the optimizer's next step applies, as the generator recorded the truth
    (``fixtures/_truth.rate_at_step``, which the resume table uses too)."""
    import sys

    from ckptcompat import runtime

    truth = sys.modules.get("_truth") or load_script(FIXTURES / "_truth.py", "_truth")
    return np.float32(truth.rate_at_step(runtime.keras_module(), getattr(opt, "inner_optimizer", None) or opt))


def _truth() -> dict[str, Any]:
    manifest = json.loads((_TF14 / "manifest.json").read_text())
    return next(e for e in manifest["fixtures"] if e["path"] == "rate_decay/model.h5")["optimizer"]


def _schedule(opt: Any) -> Any:
    opt = getattr(opt, "inner_optimizer", None) or opt
    held = getattr(opt, "_learning_rate", None)
    if held is None and hasattr(opt, "_get_hyper"):
        held = opt._get_hyper("learning_rate")  # noqa: SLF001 -- OptimizerV2
    return held


@pytest.fixture(scope="module")
def resumed() -> Any:
    if not (_TF14 / "rate_decay" / "model.h5").is_file():
        pytest.skip("the tf14-keras208-py36 fixtures are not in this checkout")
    return ckptcompat.resume(_TF14 / "rate_decay" / "model.h5", initial_epoch=2)


def test_the_rate_continues_as_the_multi_backend_api_computed_it(resumed: Any) -> None:
    truth = _truth()
    lr, decay, step = (np.float32(v) for v in (truth["config"]["learning_rate"], truth["config"]["decay"], 4))
    quotient = np.float32(lr / (np.float32(1) + decay * step))
    assert np.float32(truth["rate_at_step"]) != quotient  # the step where the two formulas part
    assert int(np.asarray(resumed.model.optimizer.iterations)) == truth["iterations"] == 4
    assert _rate(resumed.model.optimizer).tobytes() == np.float32(truth["rate_at_step"]).tobytes()


def test_the_schedule_saves_as_keras_own_inverse_time_decay(resumed: Any) -> None:
    """Serialized exactly as this Keras's ``InverseTimeDecay`` with the same arguments (nothing to
    register for a native load), its name telling ckptcompat to continue the product."""
    keras = keras_module()
    live = _schedule(resumed.model.optimizer)
    base = keras.optimizers.schedules.InverseTimeDecay
    plain = base(**{**live.get_config(), "name": PRODUCT_DECAY_NAME})
    assert type(live) is not base and live.__class__ is base
    assert keras.optimizers.schedules.serialize(live) == keras.optimizers.schedules.serialize(plain)
    assert live.get_config()["name"] == PRODUCT_DECAY_NAME


def test_a_native_save_loads_natively_and_resumes_at_the_product(resumed: Any, tmp_path: Path) -> None:
    keras = keras_module()
    path = tmp_path / ("model.keras" if keras_flavour() == "keras3" else "model.h5")
    resumed.model.save(str(path))
    native = keras.models.load_model(str(path))  # no custom object: Keras's own InverseTimeDecay
    assert type(_schedule(native.optimizer)) is keras.optimizers.schedules.InverseTimeDecay
    again = ckptcompat.resume(path, initial_epoch=2)
    assert _rate(again.model.optimizer).tobytes() == np.float32(_truth()["rate_at_step"]).tobytes()


def test_a_ckptcompat_store_keeps_the_product(resumed: Any, tmp_path: Path) -> None:
    """A run resumed from the file, trained on with ``Checkpoint``, resumed again: the rate of the run
    it continues (the product at step 6), not the quotient."""
    from ckptcompat.callbacks import Checkpoint

    x = np.random.RandomState(0).rand(8, *resumed.model.input_shape[1:]).astype("float32")
    y = np.zeros((8,), dtype="int64")
    resumed.model.fit(x, y, batch_size=4, epochs=3, initial_epoch=2, shuffle=False, verbose=0,
                      callbacks=[Checkpoint(tmp_path / "store")])
    again = ckptcompat.resume(tmp_path / "store")
    assert is_product_decay(_schedule(again.model.optimizer))
    assert int(np.asarray(again.model.optimizer.iterations)) == 6
    assert _rate(again.model.optimizer).tobytes() == _rate(resumed.model.optimizer).tobytes()
    lr, decay = np.float32(_truth()["config"]["learning_rate"]), np.float32(_truth()["config"]["decay"])
    want = np.float32(lr * np.float32(np.float32(1) / np.float32(np.float32(1) + decay * np.float32(6))))
    assert _rate(again.model.optimizer).tobytes() == want.tobytes()


@pytest.mark.parametrize("to", ["keras3", "h5"])
def test_a_migrated_file_continues_the_product(to: str, tmp_path: Path) -> None:
    """``migrate`` writes the decay as the named ``InverseTimeDecay``: resumed, the product again."""
    if not (_TF14 / "rate_decay" / "model.h5").is_file():
        pytest.skip("the tf14-keras208-py36 fixtures are not in this checkout")
    if (to == "keras3") != (keras_flavour() == "keras3"):
        pytest.skip(f"a {to} file is resumed by its own generation here")
    dst = tmp_path / ("model.keras" if to == "keras3" else "model.h5")
    ckptcompat.migrate(_TF14 / "rate_decay" / "model.h5", dst, to=to)
    run = ckptcompat.resume(dst, initial_epoch=2)
    assert is_product_decay(_schedule(run.model.optimizer))
    assert _rate(run.model.optimizer).tobytes() == np.float32(_truth()["rate_at_step"]).tobytes()


def test_the_product_is_the_rate_fit_applies_and_survives_a_copy() -> None:
    """One SGD step at step 4 from w = 0 with gradient 1 leaves w = -rate: the product, inside the
    traced train step too; a deep copy and a pickle round trip keep the product."""
    import copy
    import pickle

    from ckptcompat.runtime.product_decay import product_decay

    keras = keras_module()
    lr, decay = np.float32(0.0125), np.float32(0.05)
    schedule = product_decay(keras, float(lr), float(decay))
    for other in (copy.deepcopy(schedule), pickle.loads(pickle.dumps(schedule))):  # noqa: S301 -- our own bytes
        assert is_product_decay(other) and other.get_config() == schedule.get_config()
    model = keras.Sequential([keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", input_shape=(1,))])
    model.compile(keras.optimizers.SGD(learning_rate=schedule), loss=lambda y, p: p[:, 0])
    model.optimizer.iterations.assign(4)
    model.fit(np.ones((1, 1), "float32"), np.zeros((1, 1), "float32"), batch_size=1, epochs=1, verbose=0)
    applied = np.float32(-np.asarray(model.get_weights()[0]).reshape(()))
    product = np.float32(lr * np.float32(np.float32(1) / np.float32(np.float32(1) + decay * np.float32(4))))
    quotient = np.float32(lr / np.float32(np.float32(1) + decay * np.float32(4)))
    assert applied.tobytes() == product.tobytes() and product != quotient


def _optimizer_v2_adam() -> type:
    keras = keras_module()
    for space in (getattr(keras.optimizers, "legacy", None), keras.optimizers):
        cls = getattr(space, "Adam", None)
        if isinstance(cls, type) and hasattr(cls, "_decayed_lr"):
            return cls
    pytest.skip("this Keras has no OptimizerV2 optimizers")


def _v2_model(keras: Any) -> Any:
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(2)])
    model.compile(_optimizer_v2_adam()(learning_rate=0.01, decay=0.05), "mse")
    return model


def test_optimizer_v2_slots_are_created_in_the_optimizer_scope(tmp_path: Path) -> None:
    """As ``apply_gradients`` creates them (``Adam/iter``, ``Adam/dense/kernel/m``): a native ``.h5``
    of the resumed run names them as Keras does (they were unscoped, ``dense/kernel/m``)."""
    keras = keras_module()
    model = _v2_model(keras)
    x = np.random.RandomState(1).rand(8, 4).astype("float32")
    model.fit(x, x[:, :2], batch_size=4, epochs=1, verbose=0)
    model.save(str(tmp_path / "a.h5"))
    run = ckptcompat.resume(tmp_path / "a.h5", initial_epoch=1)
    assert sorted(v.name for v in run.model.optimizer.weights) == sorted(v.name for v in model.optimizer.weights)


def test_unscoped_optimizer_v2_slots_of_an_earlier_resume_are_read(tmp_path: Path) -> None:
    """A model resumed by ckptcompat 0.1.0 (slots created outside the optimizer's name scope), trained
    on and saved natively: ``iter``, ``dense/kernel/m``... are placed by their variable."""
    keras = keras_module()
    model = _v2_model(keras)
    opt = model.optimizer
    opt._create_all_weights(model.trainable_variables)  # noqa: SLF001 -- as 0.1.0 did, no scope
    assert not any(v.name.startswith(opt._name + "/") for v in opt.weights)  # noqa: SLF001
    x = np.random.RandomState(2).rand(8, 4).astype("float32")
    model.fit(x, x[:, :2], batch_size=4, epochs=1, verbose=0)
    model.save(str(tmp_path / "unscoped.h5"))
    run = ckptcompat.resume(tmp_path / "unscoped.h5", initial_epoch=1)
    assert int(np.asarray(run.model.optimizer.iterations)) == 2
    got = sorted(np.asarray(w).tobytes() for w in run.model.optimizer.get_weights())
    assert got == sorted(np.asarray(w).tobytes() for w in opt.get_weights())
