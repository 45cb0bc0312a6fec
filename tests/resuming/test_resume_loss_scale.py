"""Mixed-precision files as the frameworks write them.

A mixed-precision Keras 2 ``.h5`` (OptimizerV2 inside ``mixed_precision.LossScaleOptimizer``,
TF 2.4 - 2.15, tf-keras): its config is the wrapper's and its slots live under the ``cond_1/``
scope of the wrapper's ``tf.cond``; ckptcompat named neither and refused the file. Now it resumes
like ``load_model`` does (the wrapper around the saved class, its scale afresh: the file keeps
none), with every slot and the step count of the file. The same for tf.keras 2.11+'s default
optimizers, whose ``LossScaleOptimizerV3`` saves the slots as ``m/<variable>`` (no optimizer
name in front). And a Keras 3 ``.keras`` saved under a ``mixed_float16`` policy: ``compile``
wraps the optimizer itself and records the user's config, not the wrapper's, while the weights
file holds the wrapper's variables (``optimizer/inner_optimizer``); ckptcompat read them by the
inner optimizer's layout and refused the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_flavour, keras_module

pytestmark = pytest.mark.framework


def _variables(optimizer: object) -> list[bytes]:
    found = optimizer.variables() if callable(optimizer.variables) else optimizer.variables  # type: ignore[attr-defined]
    return [np.asarray(v).tobytes() for v in found]


@pytest.mark.parametrize("generation", ["OptimizerV2", "tf.keras 2.11+"])
def test_mixed_precision_h5_resumes_with_its_slots(generation: str, tmp_path: Path) -> None:
    if keras_flavour() != "keras2":
        pytest.skip("the Keras 2 loss-scale wrappers")
    keras = keras_module()
    if not hasattr(keras.mixed_precision, "set_global_policy"):
        pytest.skip("this tf.keras has only the experimental mixed-precision API")
    legacy = getattr(keras.optimizers, "legacy", None)
    if generation == "OptimizerV2":
        adam = getattr(legacy, "Adam", None) or keras.optimizers.Adam
    elif legacy is None:
        pytest.skip("this tf.keras has OptimizerV2 optimizers only")
    else:
        adam = keras.optimizers.Adam
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1, dtype="float32")])
        model.compile(adam(learning_rate=0.01), "mse")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    try:
        model.save(str(tmp_path / "mixed.h5"))
    except AttributeError as exc:  # TF 2.11: LossScaleOptimizerV3 has no _variables when saved to .h5
        pytest.skip(f"this tf.keras cannot write the file itself: {exc}")
    import h5py

    with h5py.File(tmp_path / "mixed.h5", "r") as f:
        names = f["optimizer_weights"].attrs["weight_names"].astype(str)
        assert any(n.startswith("cond_1/" if generation == "OptimizerV2" else "m/") for n in names)

    run = ckptcompat.resume(tmp_path / "mixed.h5")
    outer = run.model.optimizer
    assert type(outer) is type(model.optimizer)
    inner, saved = outer.inner_optimizer, model.optimizer.inner_optimizer
    assert type(inner) is type(saved) and int(np.asarray(inner.iterations)) == 8
    assert _variables(inner) == _variables(saved) and len(_variables(inner)) == 9


def test_keras3_mixed_precision_keras_file_resumes_with_its_scale(tmp_path: Path) -> None:
    if keras_flavour() != "keras3":
        pytest.skip("Keras 3's implicit loss-scale wrapper")
    keras = keras_module()
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1, dtype="float32")])
        model.compile(keras.optimizers.Adam(0.01), "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        model.save(str(tmp_path / "mixed.keras"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    saved = model.optimizer
    assert type(saved).__name__ == "LossScaleOptimizer"

    run = ckptcompat.resume(tmp_path / "mixed.keras", initial_epoch=2)
    outer = run.model.optimizer
    assert type(outer) is type(saved) and type(outer.inner_optimizer) is type(saved.inner_optimizer)
    for name in ("iterations", "step_counter", "dynamic_scale"):
        assert np.asarray(getattr(outer, name)).tobytes() == np.asarray(getattr(saved, name)).tobytes(), name
    assert _variables(outer.inner_optimizer) == _variables(saved.inner_optimizer)
    run.model.fit(x, y, batch_size=8, epochs=3, initial_epoch=2, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert [np.asarray(w).tobytes() for w in run.model.get_weights()] == \
        [np.asarray(w).tobytes() for w in model.get_weights()]


def test_keras2_fixed_loss_scale_store_resumes_wrapped(tmp_path: Path) -> None:
    """A Keras 2 ``LossScaleOptimizer(dynamic=False)`` has no scale variables; the capture kept
    nothing of it, so the store resumed the bare inner optimizer, silently. Now its settings are
    captured and the wrapper comes back with the same fixed scale."""
    if keras_flavour() != "keras2":
        pytest.skip("the Keras 2 fixed-scale wrapper")
    keras = keras_module()
    if not hasattr(keras.mixed_precision, "set_global_policy"):
        pytest.skip("this tf.keras has only the experimental mixed-precision API")
    from ckptcompat.callbacks import Checkpoint

    adam = getattr(getattr(keras.optimizers, "legacy", None), "Adam", None) or keras.optimizers.Adam
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1, dtype="float32")])
        model.compile(keras.mixed_precision.LossScaleOptimizer(adam(0.01), dynamic=False, initial_scale=128), "mse")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[Checkpoint(str(tmp_path / "store"), save_freq="epoch")])
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    run = ckptcompat.resume(tmp_path / "store")
    outer = run.model.optimizer
    assert type(outer) is type(model.optimizer) and outer.dynamic is False
    assert float(np.asarray(outer.loss_scale)) == 128.0
    assert int(np.asarray(outer.inner_optimizer.iterations)) == 8
    run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert [np.asarray(w).tobytes() for w in run.model.get_weights()] == \
        [np.asarray(w).tobytes() for w in model.get_weights()]
