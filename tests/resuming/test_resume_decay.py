"""resume() continues Keras 2's learning-rate ``decay`` and each generation's Nadam momentum schedule.

``decay`` (OptimizerV2, standalone Keras) decays the rate as ``lr / (1 + decay * iterations)``:
resumed into an optimizer class that takes it, it is passed on (the run continues bitwise);
into tf.keras 2.11+ / Keras 3, which have no ``decay``, as the equal ``InverseTimeDecay``
(warned), never dropped. Nadam's momentum-cache product follows the resumed optimizer's own
schedule (an OptimizerV2 Nadam gets the saved schedule's scale: 1.0 for a Keras 3 file).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_flavour, keras_module
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
    assert type(opt) is type(model.optimizer)  # the OptimizerV2 class, as native load_model gives
    assert int(np.asarray(opt.iterations)) == 8
    assert _effective_lr(opt).tobytes() == want.tobytes()
    run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert _digest(run.model) == _digest(model)  # the decayed rate, step by step


@pytest.mark.parametrize("name,kwargs", [("Adam", {"decay": 0.05}), ("Nadam", {})])
def test_the_same_optimizer_given_as_model_resumes_without_warnings(name: str, kwargs: dict[str, Any],
                                                                     tmp_path: Path, caplog: Any) -> None:
    """The script run again (``resume(path, model=build())``, the same OptimizerV2 class and
    ``decay``): the file's float32 ``decay`` is the optimizer's, no warning, the product kept."""
    cls = _optimizer_v2(name)
    keras = keras_module()

    def build() -> Any:
        model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1)])
        model.compile(cls(learning_rate=0.01, **kwargs), "mse")
        return model

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    model = build()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(str(tmp_path / "same.h5"))
    with caplog.at_level(logging.WARNING):
        run = ckptcompat.resume(tmp_path / "same.h5", model=build())
    assert "decays its learning rate" not in caplog.text and "momentum schedule" not in caplog.text
    assert _digest(run.model) == _digest(model)
    saved = [np.asarray(w).tobytes() for w in model.optimizer.get_weights()]
    assert [np.asarray(w).tobytes() for w in run.model.optimizer.get_weights()] == saved


def test_decay_becomes_the_equal_schedule_where_the_optimizer_has_none(caplog: Any) -> None:
    """TF 2.4's Adam file with ``decay`` (set on the state read from it) rebuilt for this Keras:
    an OptimizerV2 class takes ``decay``; tf.keras 2.11+ / Keras 3 get ``InverseTimeDecay``,
    warned; either way the rate at the restored step is TF 2.4's ``lr / (1 + decay * t)``."""
    from ckptcompat import runtime
    from ckptcompat.resuming.build import build_model, compile_model

    source = FIXTURES / "tf24-py38" / "opt_adam" / "model.h5"
    state = ckptcompat.read(source)
    opt = state.optimizer
    assert opt is not None and opt.iterations == 4
    config = {**opt.config, "config": {**opt.config["config"], "decay": 0.05}}
    state = state.replace(optimizer=dataclasses.replace(
        opt, config=config, hyperparameters={**opt.hyperparameters, "decay": 0.05}))
    flavour, keras = runtime.detect(), keras_module()
    model = build_model(state, flavour, keras, None, str(source))
    with caplog.at_level(logging.WARNING):
        compile_model(model, state, keras, flavour, str(source))
    runtime.apply(state, model)
    live = model.optimizer
    lr = np.float32(opt.learning_rate)
    assert _effective_lr(live) == lr / (np.float32(1) + np.float32(0.05) * np.float32(4))
    if takes_decay(type(live)):
        assert live._initial_decay == 0.05  # noqa: SLF001
    else:
        assert "decay=0.05 is continued as learning_rate=InverseTimeDecay" in caplog.text


@pytest.mark.parametrize("written_by", ["Checkpoint", "native save"])
def test_learning_rate_schedule_is_resumed_and_continues_bitwise(written_by: str, tmp_path: Path) -> None:
    """A schedule-valued learning rate through a Checkpoint store (Keras 3 wrote its rate as
    NaN, Keras 2 dropped it) and through the framework's own file (its config holds the
    schedule in place of the rate: passed to the constructor as a dict): resumed with
    ``model=None``, the run goes on bitwise like the uninterrupted one."""
    from ckptcompat.callbacks import Checkpoint

    keras = keras_module()
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    model.compile(keras.optimizers.Adam(learning_rate=schedule), "mse")
    callbacks = [Checkpoint(str(tmp_path / "store"), save_freq="epoch")] if written_by == "Checkpoint" else []
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    native = tmp_path / ("model.keras" if keras_flavour() == "keras3" else "model.h5")
    if written_by == "native save":
        model.save(str(native))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    run = ckptcompat.resume(tmp_path / "store" if written_by == "Checkpoint" else native)
    opt = run.model.optimizer
    rate = opt._hyper["learning_rate"] if hasattr(opt, "_hyper") else opt._learning_rate  # OptimizerV2, new
    assert type(rate).__name__ == "ExponentialDecay"
    assert int(np.asarray(opt.iterations)) == 8
    run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert _digest(run.model) == _digest(model)


def test_store_of_an_earlier_ckptcompat_with_a_nan_rate_resumes_its_schedule(tmp_path: Path) -> None:
    """A Keras 3 store written by ckptcompat ``74f20f9`` (``fixtures/older_ckptcompat``) holds a
    scheduled rate as NaN in its ``.keras`` and the schedule in state.json: the plausibility check
    judges the merged state, so the store resumes with the schedule (it refused both checkpoints
    as "implausible"), and on the release that wrote it the run continues bitwise."""
    import shutil

    keras = keras_module()
    if keras_flavour() != "keras3":
        pytest.skip("a Keras 3 store")
    store = tmp_path / "store"
    shutil.copytree(FIXTURES / "older_ckptcompat" / "schedule_store", store)
    run = ckptcompat.resume(store)
    opt = run.model.optimizer
    assert type(opt._learning_rate).__name__ == "ExponentialDecay"
    assert int(np.asarray(opt.iterations)) == 8 and run.initial_epoch == 2
    if keras.__version__ != "3.15.1" or keras.backend.backend() != "tensorflow":
        return  # the reference is Keras 3.15.1 on TensorFlow's arithmetic
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    run.model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, initial_epoch=run.initial_epoch)
    reference = np.load(FIXTURES / "older_ckptcompat" / "schedule_reference.npy")
    weights = np.concatenate([np.asarray(w).ravel() for w in run.model.get_weights()])
    assert weights.tobytes() == reference.tobytes()


@pytest.mark.parametrize("name,kwargs,scheduled", [("Adam", {"decay": 0.05}, False), ("Nadam", {}, False),
                                                    ("Adam", {"decay": 0.05}, True)],
                         ids=["Adam-decay", "Nadam", "Adam-schedule-and-decay"])
def test_checkpoint_of_an_optimizer_v2_with_decay_resumes_bitwise(name: str, kwargs: dict[str, Any], scheduled: bool,
                                                                   tmp_path: Path) -> None:
    """The Checkpoint callback under an OptimizerV2 ``Adam(decay=...)`` or ``Nadam`` (whose
    ``decay`` is 0.004 by default) raised out of ``fit`` (no tf.keras 2.11+ equivalent in the
    store's ``.h5``); now the file holds the rate as ``InverseTimeDecay`` and state.json the
    captured hyper-parameters: the run resumes bitwise in this Keras. The store's ``.h5`` holds the
    OptimizerV2 config as its release writes it, a schedule with ``decay`` on top (no tf.keras
    2.11+ equivalent) included."""
    import json

    import h5py

    from ckptcompat.callbacks import Checkpoint

    cls = _optimizer_v2(name)
    keras = keras_module()
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)), keras.layers.Dense(1)])
    rate = keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5) if scheduled else 0.01
    model.compile(cls(learning_rate=rate, **kwargs), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[Checkpoint(str(tmp_path / "store"), save_freq="epoch")])
    (latest,) = sorted((tmp_path / "store").glob("ckpt-*-e0002-*/model.h5"))
    with h5py.File(latest, "r") as f:
        saved = json.loads(f.attrs["training_config"])["optimizer_config"]["config"]
    assert isinstance(saved["learning_rate"], dict) == scheduled and "decay" in saved
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    run = ckptcompat.resume(tmp_path / "store")
    assert type(run.model.optimizer) is type(model.optimizer)
    assert int(np.asarray(run.model.optimizer.iterations)) == 8
    run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert _digest(run.model) == _digest(model)


def _nadam_fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/opt*nadam/model.*")  # a full model: resumed without one
                  if p.parent.parent.name not in ("keras224-tf115-py37", "tf115-keras224-py37")
                  and not p.name.endswith(".weights.h5"))


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
        want = nadam_u_product(4, beta_1, schedule=live, keras3=hasattr(type(opt), "_backend_update_step"))
        assert got.tobytes() == want.tobytes(), (live, file_schedule)


def _cosine_class(keras: Any) -> type:
    """This Keras's CosineDecay (tf.keras <= 2.4: ``keras.experimental``)."""
    return getattr(keras.optimizers.schedules, "CosineDecay", None) or keras.experimental.CosineDecay


def test_schedule_arguments_this_keras_lacks_are_left_out_only_at_their_defaults() -> None:
    """Keras 3 and tf.keras 2.13+ serialize ``CosineDecay(warmup_target=None, warmup_steps=0)``;
    TF 2.4's CosineDecay has no warmup and refused the arguments (the rebuilt model could not be
    compiled: found by the generated learning-rate corpus). At their defaults they change nothing
    and are left out; a real warmup is refused by name, never dropped."""
    import inspect

    from ckptcompat import runtime
    from ckptcompat.errors import IncompatibleStateError
    from ckptcompat.resuming.build import make_optimizer
    from ckptcompat.state import OptimizerState

    keras = keras_module()
    cosine = _cosine_class(keras)
    saved = {"initial_learning_rate": 0.0125, "decay_steps": 10, "alpha": 0.1, "name": "CosineDecay",
             "warmup_target": None, "warmup_steps": 0}
    schedule = {"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": saved,
                "registered_name": None}
    built = make_optimizer(keras, OptimizerState("Adam", {"learning_rate": None, "learning_rate_schedule": schedule}),
                           runtime.detect())
    rate = built._hyper["learning_rate"] if hasattr(built, "_hyper") else built._learning_rate  # OptimizerV2, new
    assert type(rate).__name__ == "CosineDecay"
    assert np.float32(np.asarray(rate(4))) == np.float32(np.asarray(cosine(0.0125, 10, alpha=0.1)(4)))
    if "warmup_steps" in inspect.signature(cosine.__init__).parameters:
        return  # this Keras has the warmup: nothing to refuse
    warm = {**schedule, "config": {**saved, "warmup_target": 0.02, "warmup_steps": 5}}
    with pytest.raises(IncompatibleStateError, match="warmup_steps, warmup_target"):
        make_optimizer(keras, OptimizerState("Adam", {"learning_rate": None, "learning_rate_schedule": warm}),
                       runtime.detect())


def test_keras3_file_without_optimizer_config_and_a_schedule_is_not_guessed(tmp_path: Path) -> None:
    """A Keras 3.15 ``.keras`` saved after a ``.h5`` of the same model keeps no optimizer config
    (``model.save("m.h5")`` takes it out of the compile config); a schedule leaves no
    ``learning_rate`` variable. The reader names what fits (the class, a schedule it does not record); ``resume``
    without a model refuses (TF 2.15's Adam, which also has no rate variable, took the slots with a
    default rate of 0.001: found by the generated corpus), and with the run's model it resumes
    exactly, the schedule continuing at the saved step."""
    import io
    import json
    import zipfile

    import h5py

    from ckptcompat.errors import IncompatibleStateError
    from ckptcompat.formats import keras_zip

    keras = keras_module()
    if keras_flavour() != "keras3":
        pytest.skip("Keras 3's .keras")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32)

    def model() -> Any:
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
        net.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5)), "mse")
        return net

    saved = model()
    saved.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    saved.save(str(tmp_path / "m.h5"))
    saved.save(str(tmp_path / "m.keras"))
    if "optimizer" in json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))["compile_config"]:
        pytest.skip("this Keras records the optimizer config")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive, \
            h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        named = "name" in weights["optimizer/vars"].attrs  # Keras 3.0 records no class name there
    opt = keras_zip.read(tmp_path / "m.keras").optimizer
    assert opt.fits == (("Adam(learning_rate=<the run's schedule; the file does not record it>)",) if named else ())
    if named:
        with pytest.raises(IncompatibleStateError, match="the run's schedule"):
            ckptcompat.resume(tmp_path / "m.keras", initial_epoch=2)
    else:  # no class either: the model comes back uncompiled, as native load_model skips them (warned)
        assert getattr(ckptcompat.resume(tmp_path / "m.keras", initial_epoch=2).model, "optimizer", None) is None
    for way in ({"optimizer": "reset"}, {"partial": True}):  # the ways on the refusal names
        other = ckptcompat.resume(tmp_path / "m.keras", initial_epoch=2, **way)
        assert _digest(other.model) == _digest(saved), way
    run = ckptcompat.resume(tmp_path / "m.keras", model=model(), initial_epoch=2)
    assert int(np.asarray(run.model.optimizer.iterations)) == 4
    assert [np.asarray(v).tobytes() for v in run.model.optimizer.variables] == \
        [np.asarray(v).tobytes() for v in saved.optimizer.variables]
    run.model.fit(x, y, batch_size=8, epochs=3, initial_epoch=2, shuffle=False, verbose=0)
    saved.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert _digest(run.model) == _digest(saved)
