"""ckptcompat.runtime: flavour detection (everywhere) and capture/apply round trips (framework)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from ckptcompat import runtime
from ckptcompat.errors import IncompatibleStateError, MissingDependencyError
from ckptcompat.names.variables import CANONICAL_SLOTS

from _frameworks import keras_backend


# --------------------------------------------------------------------------- detection

def _tf_keras_generation() -> str | None:
    """What TensorFlow itself routes ``tf.keras`` to: 'keras2' / 'keras3', None without TF."""
    from ckptcompat._compat import distribution_version
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None
    import tensorflow as tf

    top = tf.keras.Model.__module__.split(".")[0]
    if top == "tf_keras":
        return "keras2"
    return "keras3" if distribution_version(top).startswith("3.") else "keras2"


@pytest.mark.framework
def test_detect_matches_tensorflow() -> None:
    assert runtime.detect() == _tf_keras_generation()


@pytest.mark.backend
def test_detect_on_keras3_without_tensorflow() -> None:
    if _tf_keras_generation() is not None:
        pytest.skip("TensorFlow is installed: test_detect_matches_tensorflow")
    assert runtime.detect() == "keras3"  # Keras 3 on JAX / torch


def test_detect_without_a_framework() -> None:
    if _tf_keras_generation() is not None or keras_backend() is not None:
        pytest.skip("a framework is installed: the tests above")
    with pytest.raises(MissingDependencyError, match="TensorFlow"):
        runtime.detect()


@pytest.mark.parametrize(("version", "env", "has_tf_keras", "expected"), [
    ((2, 12), None, False, "keras2"),
    ((2, 15), "1", True, "keras2"),
    ((2, 16), None, True, "keras3"),
    ((2, 16), "1", False, "keras3"),
    ((2, 21), "1", True, "keras2"),
    ((2, 21), "true", True, "keras2"),
    ((2, 21), "0", True, "keras3"),
])
def test_detect_rules(monkeypatch: pytest.MonkeyPatch, version: tuple[int, int], env: str | None,
                      has_tf_keras: bool, expected: str) -> None:
    monkeypatch.setattr(runtime, "_tf_version", lambda: version)
    real_find_spec = runtime.importlib.util.find_spec
    monkeypatch.setattr(runtime.importlib.util, "find_spec",
                        lambda name, *a: (object() if has_tf_keras else None) if name == "tf_keras"
                        else real_find_spec(name, *a))
    if env is None:
        monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    else:
        monkeypatch.setenv("TF_USE_LEGACY_KERAS", env)
    assert runtime.detect() == expected


def test_detect_without_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_tf_version", lambda: None)
    monkeypatch.setattr(runtime, "_keras3_installed", lambda: False)
    with pytest.raises(MissingDependencyError, match="not installed"):
        runtime.detect()


def test_unknown_flavour_rejected() -> None:
    with pytest.raises(ValueError, match="keras9"):
        runtime.flavour("keras9")


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def rt(keras: ModuleType) -> ModuleType:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return runtime.flavour()


def _mlp(keras: ModuleType, widths: tuple[int, ...] = (16, 8), extra: bool = False) -> Any:
    inputs = keras.Input(shape=(8,), name="x")
    h = inputs
    for i, width in enumerate(widths, start=1):
        h = keras.layers.Dense(width, activation="tanh", name=f"d{i}")(h)
    out = keras.layers.Dense(4, name="out")(h)
    if extra:
        out = keras.layers.Dense(4, name="extra")(out)
    return keras.Model(inputs, out, name="mlp")


def _conv_bn(keras: ModuleType) -> Any:
    inputs = keras.Input(shape=(6, 6, 2), name="x")
    h = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Flatten(name="flat")(h)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(h), name="convnet")


def _rnn(keras: ModuleType) -> Any:
    inputs = keras.Input(shape=(5, 8), name="x")
    h = keras.layers.LSTM(6, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.GRU(5, name="gru")(h)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(h), name="rnn")


def _nested(keras: ModuleType) -> Any:
    inner_in = keras.Input(shape=(6,), name="inner_x")
    inner = keras.Model(inner_in, keras.layers.Dense(5, activation="tanh", name="inner_d")(inner_in),
                        name="inner")
    inputs = keras.Input(shape=(8,), name="x")
    h = keras.layers.Dense(6, activation="tanh", name="pre")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(inner(h)), name="outer")


ARCHS: dict[str, tuple[Callable[[ModuleType], Any], tuple[int, ...]]] = {
    "mlp": (_mlp, (8,)), "conv_bn": (_conv_bn, (6, 6, 2)), "rnn": (_rnn, (5, 8)),
    "nested": (_nested, (8,)),
}

#: name -> (factory(optimizers module, lr), canonical class, slots per trainable variable)
OPTIMIZERS: dict[str, tuple[Callable[[Any, float], Any], str, tuple[str, ...]]] = {
    "adam": (lambda o, lr: o.Adam(learning_rate=lr), "Adam", ("m", "v")),
    "adam_amsgrad": (lambda o, lr: o.Adam(learning_rate=lr, amsgrad=True), "Adam", ("m", "v", "vhat")),
    "sgd_momentum": (lambda o, lr: o.SGD(learning_rate=lr, momentum=0.9), "SGD", ("momentum",)),
    "rmsprop": (lambda o, lr: o.RMSprop(learning_rate=lr, momentum=0.5, centered=True), "RMSprop",
                ("rms", "momentum", "mg")),
}


def _optimizers_module(keras: ModuleType, legacy: bool) -> Any:
    if not legacy:
        return keras.optimizers
    module = getattr(keras.optimizers, "legacy", None)
    if module is None:
        pytest.skip("this Keras has no optimizers.legacy (OptimizerV2)")
    return module


def _data(input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    return (rng.normal(size=(16, *input_shape)).astype("float32"),
            rng.normal(size=(16, 4)).astype("float32"))


def _make(keras: ModuleType, arch: str, opt_name: str, legacy: bool, lr: float, seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = ARCHS[arch][0](keras)
    factory = OPTIMIZERS[opt_name][0]
    model.compile(optimizer=factory(_optimizers_module(keras, legacy), lr), loss="mse")
    return model


def _opt_variables(opt: Any) -> list[Any]:
    variables = opt.variables
    return list(variables() if callable(variables) else variables)


def _assert_states_equal(a: Any, b: Any) -> None:
    assert list(a.weights) == list(b.weights)
    for name, value in a.weights.items():
        assert b.weights[name].dtype == value.dtype, name
        assert np.array_equal(b.weights[name], value), name
    assert a.optimizer.class_name == b.optimizer.class_name
    assert a.optimizer.iterations == b.optimizer.iterations
    assert a.optimizer.learning_rate == b.optimizer.learning_rate
    assert {v: set(s) for v, s in a.optimizer.slots.items()} == \
        {v: set(s) for v, s in b.optimizer.slots.items()}
    for var, per in a.optimizer.slots.items():
        for slot, value in per.items():
            other = b.optimizer.slots[var][slot]
            assert other.dtype == value.dtype and np.array_equal(other, value), f"{var}/{slot}"


# --------------------------------------------------------------------------- round trip

@pytest.mark.framework
@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_roundtrip_resumes_bitwise(rt: ModuleType, keras: ModuleType, arch: str, opt_name: str,
                                   legacy: bool) -> None:
    if legacy and rt.__name__.endswith("keras3"):
        pytest.skip("Keras 3 has no legacy optimizers")
    if opt_name == "adam_amsgrad" and arch != "mlp":
        pytest.skip("amsgrad is covered on the MLP")
    x, y = _data(ARCHS[arch][1])
    model = _make(keras, arch, opt_name, legacy, lr=0.01, seed=1)
    for _ in range(3):
        model.train_on_batch(x, y)
    state = rt.capture(model)

    opt = state.optimizer
    assert opt.class_name == OPTIMIZERS[opt_name][1]
    assert opt.iterations == 3
    assert opt.learning_rate == float(np.float32(0.01))
    trainable = [n for n in state.weights if n.rsplit("/", 1)[-1] not in
                 ("moving_mean", "moving_variance")]
    assert set(opt.slots) == set(trainable)
    for per in opt.slots.values():
        assert tuple(per) == OPTIMIZERS[opt_name][2]
        assert set(per) <= set(CANONICAL_SLOTS[opt.class_name])
    json.dumps(state.model_config)
    json.dumps(dict(opt.config))

    fresh = _make(keras, arch, opt_name, legacy, lr=0.5, seed=2)
    report = rt.apply(state, fresh)
    assert report.skipped == ()
    assert report.restored_weights == tuple(state.weights)
    assert len(report.restored_slots) == opt.slot_count
    assert report.iterations == 3
    _assert_states_equal(state, rt.capture(fresh))

    model.train_on_batch(x, y)
    fresh.train_on_batch(x, y)
    _assert_states_equal(rt.capture(model), rt.capture(fresh))


@pytest.mark.framework
def test_canonical_names(rt: ModuleType, keras: ModuleType) -> None:
    x, y = _data((5, 8))
    model = _make(keras, "rnn", "adam", False, lr=0.01, seed=1)
    model.train_on_batch(x, y)
    assert list(rt.capture(model).weights) == [
        "lstm/kernel", "lstm/recurrent_kernel", "lstm/bias",
        "gru/kernel", "gru/recurrent_kernel", "gru/bias", "out/kernel", "out/bias"]
    nested = _make(keras, "nested", "sgd_momentum", False, lr=0.01, seed=1)
    state = rt.capture(nested)
    assert list(state.weights) == ["pre/kernel", "pre/bias", "inner/inner_d/kernel",
                                   "inner/inner_d/bias", "head/kernel", "head/bias"]
    assert state.model_config["class_name"] == "Functional"
    assert state.producer.framework in ("tf.keras", "tf-keras", "keras")
    assert state.producer.format is None and "tensorflow" in state.producer.versions


@pytest.mark.framework
@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
def test_capture_changes_nothing(rt: ModuleType, keras: ModuleType, legacy: bool) -> None:
    if legacy and rt.__name__.endswith("keras3"):
        pytest.skip("Keras 3 has no legacy optimizers")
    x, y = _data((8,))
    # compiled but never trained: capture must not create slots or the step counter
    untouched = _make(keras, "mlp", "adam", legacy, lr=0.01, seed=1)
    before = len(_opt_variables(untouched.optimizer))
    state = rt.capture(untouched)
    assert state.optimizer.slots == {} and state.optimizer.iterations == 0
    assert len(_opt_variables(untouched.optimizer)) == before

    a = _make(keras, "mlp", "adam", legacy, lr=0.01, seed=1)
    b = _make(keras, "mlp", "adam", legacy, lr=0.01, seed=1)
    for _ in range(2):
        a.train_on_batch(x, y)
        b.train_on_batch(x, y)
    weights, n_vars = a.get_weights(), len(_opt_variables(a.optimizer))
    first = rt.capture(a)
    second = rt.capture(a, include_optimizer=True)
    _assert_states_equal(first, second)
    assert all(np.array_equal(p, q) for p, q in zip(weights, a.get_weights()))
    assert len(_opt_variables(a.optimizer)) == n_vars
    assert rt.capture(a).optimizer.iterations == 2
    assert rt.capture(a, include_optimizer=False).optimizer is None
    a.train_on_batch(x, y)
    b.train_on_batch(x, y)
    _assert_states_equal(rt.capture(a), rt.capture(b))


@pytest.mark.framework
@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
def test_capture_into_reuses_the_arrays_and_owns_them(rt: ModuleType, keras: ModuleType,
                                                      legacy: bool) -> None:
    if legacy and rt.__name__.endswith("keras3"):
        pytest.skip("Keras 3 has no legacy optimizers")
    x, y = _data((8,))
    model = _make(keras, "mlp", "adam", legacy, lr=0.01, seed=1)
    model.train_on_batch(x, y)
    first = rt.capture(model)
    kept = {k: v.copy() for k, v in first.weights.items()}
    ids = {k: id(v) for k, v in first.weights.items()}
    slot_ids = {(v, s): id(a) for v, per in first.optimizer.slots.items() for s, a in per.items()}
    model.train_on_batch(x, y)
    for name, value in first.weights.items():  # training does not reach a captured array
        assert np.array_equal(value, kept[name]), name
    again = rt.capture(model, into=first)
    assert {k: id(v) for k, v in again.weights.items()} == ids  # same memory, new values
    assert {(v, s): id(a) for v, per in again.optimizer.slots.items() for s, a in per.items()} == slot_ids
    _assert_states_equal(again, rt.capture(model))
    assert any(not np.array_equal(again.weights[k], kept[k]) for k in kept)
    model.train_on_batch(x, y)
    fresh = rt.capture(model)
    assert any(not np.array_equal(again.weights[k], fresh.weights[k]) for k in kept)  # owned copies
    mismatched = rt.capture(model, into=rt.capture(_make(keras, "mlp", "adam", legacy, lr=0.01, seed=1)))
    _assert_states_equal(mismatched, fresh)  # buffers of a slot-less capture: values are this model's


# --------------------------------------------------------------------------- mismatches

@pytest.mark.framework
def test_mismatch_raises_once_listing_everything(rt: ModuleType, keras: ModuleType,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    x, y = _data((8,))
    model = _make(keras, "mlp", "adam", False, lr=0.01, seed=1)
    for _ in range(2):
        model.train_on_batch(x, y)
    state = rt.capture(model)

    keras.utils.set_random_seed(3)
    other = _mlp(keras, widths=(16, 12), extra=True)
    other.compile(optimizer=keras.optimizers.Adam(learning_rate=0.5), loss="mse")
    before = other.get_weights()
    with pytest.raises(IncompatibleStateError) as info:
        rt.apply(state, other)
    problems = "\n".join(info.value.mismatches)
    for name in ("d2/kernel", "d2/bias", "out/kernel", "extra/kernel", "extra/bias",
                 "d2/kernel/m", "extra/bias/v"):
        assert f"{name}:" in problems, name
    for fitting in ("d1/kernel:", "d1/bias:", "out/bias:"):
        assert fitting not in problems
    assert all(np.array_equal(p, q) for p, q in zip(before, other.get_weights()))
    assert rt.capture(other).optimizer.iterations == 0

    with caplog.at_level(logging.WARNING):
        report = rt.apply(state, other, partial=True)
    assert report.restored_weights == ("d1/kernel", "d1/bias", "out/bias")
    assert set(report.restored_slots) == {f"{v}/{s}" for v in report.restored_weights
                                          for s in ("m", "v")}
    assert {n for n, _ in report.skipped} >= {"d2/kernel", "extra/kernel", "extra/bias/m"}
    assert "partial restore" in caplog.text
    after = rt.capture(other)
    for name in report.restored_weights:
        assert np.array_equal(after.weights[name], state.weights[name])
        assert np.array_equal(after.optimizer.slots[name]["m"], state.optimizer.slots[name]["m"])
    assert after.optimizer.iterations == 2
    assert after.optimizer.learning_rate == float(np.float32(0.01))


@pytest.mark.framework
def test_optimizer_class_mismatch(rt: ModuleType, keras: ModuleType) -> None:
    x, y = _data((8,))
    model = _make(keras, "mlp", "adam", False, lr=0.01, seed=1)
    model.train_on_batch(x, y)
    state = rt.capture(model)
    target = _make(keras, "mlp", "sgd_momentum", False, lr=0.5, seed=2)
    with pytest.raises(IncompatibleStateError, match="checkpoint Adam, model SGD"):
        rt.apply(state, target)
    report = rt.apply(state, target, partial=True)
    assert report.restored_weights == tuple(state.weights)
    assert report.restored_slots == () and report.iterations is None
    assert [n for n, _ in report.skipped] == ["optimizer"]
    after = rt.capture(target)
    assert all(np.array_equal(after.weights[n], v) for n, v in state.weights.items())
    assert after.optimizer.iterations == 0 and after.optimizer.learning_rate == float(np.float32(0.5))


# --------------------------------------------------------------------------- learning rate

@pytest.mark.framework
@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
def test_set_learning_rate_takes_effect(rt: ModuleType, keras: ModuleType, legacy: bool,
                                        caplog: pytest.LogCaptureFixture) -> None:
    if legacy and rt.__name__.endswith("keras3"):
        pytest.skip("Keras 3 has no legacy optimizers")
    x, y = _data((8,))
    opts = _optimizers_module(keras, legacy)
    keras.utils.set_random_seed(1)
    model = _mlp(keras)
    model.compile(optimizer=opts.SGD(learning_rate=1.0), loss="mse")
    model.train_on_batch(x, y)  # the train function is traced with the old value
    frozen = model.get_weights()
    with caplog.at_level(logging.INFO, logger="ckptcompat.runtime._engine"):
        assert rt.set_learning_rate(model, 0.0) == 1.0
    assert "1.0 -> 0.0" in caplog.text
    model.train_on_batch(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(frozen, model.get_weights()))
    assert rt.set_learning_rate(model.optimizer, 0.25) == 0.0
    assert rt.capture(model).optimizer.learning_rate == 0.25

    # before the first step (optimizer not built yet)
    keras.utils.set_random_seed(1)
    fresh = _mlp(keras)
    fresh.compile(optimizer=opts.Adam(learning_rate=0.01), loss="mse")
    assert rt.set_learning_rate(fresh, 0.0) in (0.01, float(np.float32(0.01)))  # float until built
    start = fresh.get_weights()
    fresh.train_on_batch(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(start, fresh.get_weights()))


@pytest.mark.framework
def test_schedule_captured_and_not_overridden(rt: ModuleType, keras: ModuleType) -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model = _mlp(keras)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    model.train_on_batch(*_data((8,)))
    state = rt.capture(model)
    assert state.optimizer.learning_rate is None
    assert state.optimizer.hyperparameters["learning_rate_schedule"]["class_name"] == "ExponentialDecay"
    with pytest.raises(IncompatibleStateError, match="schedule"):
        rt.set_learning_rate(model, 0.01)
    fixed = _mlp(keras)
    fixed.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    with pytest.raises(IncompatibleStateError, match="learning_rate"):
        rt.apply(state, fixed)


@pytest.mark.framework
def test_keras_module_is_the_running_one(rt: ModuleType, keras: ModuleType) -> None:
    assert rt.keras_module().Model is keras.Model


def _bidirectional(keras: ModuleType) -> Any:
    inputs = keras.Input(shape=(5, 8), name="x")
    h = keras.layers.Bidirectional(keras.layers.LSTM(3, name="lstm"), name="bi")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="out")(h))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    return model


@pytest.mark.framework
def test_wrapper_layers_keep_distinct_names(rt: ModuleType, keras: ModuleType) -> None:
    keras.utils.set_random_seed(1)
    model = _bidirectional(keras)
    x, y = _data((5, 8))
    model.train_on_batch(x, y)
    state = rt.capture(model)
    assert list(state.weights)[:6] == [
        f"bi/{d}_lstm/{w}" for d in ("forward", "backward")
        for w in ("kernel", "recurrent_kernel", "bias")]
    assert set(state.optimizer.slots) == set(state.weights)
    keras.utils.set_random_seed(2)
    fresh = _bidirectional(keras)
    rt.apply(state, fresh)
    _assert_states_equal(state, rt.capture(fresh))


@pytest.mark.keras2
def test_slots_built_by_apply_are_named_like_native_ones(keras, tmp_path) -> None:
    """Slots that apply() creates carry the optimizer's name scope, so a later native .h5 save
    names them ``Adam/m/<var>`` as Keras would, and our reader matches them by name."""
    import ckptcompat
    from ckptcompat import runtime

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="frozen"),
                                  keras.layers.Dense(2, name="head")])
        model.get_layer("frozen").trainable = False
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model

    x, y = np.ones((8, 4), np.float32), np.ones((8, 2), np.float32)
    trained = build()
    trained.fit(x, y, epochs=1, verbose=0)
    fresh = build()
    runtime.apply(runtime.capture(trained), fresh)
    fresh.fit(x, y, epochs=1, verbose=0)
    fresh.save(tmp_path / "after.h5")
    state = ckptcompat.read(tmp_path / "after.h5")
    assert sorted(state.optimizer.slots) == ["head/bias", "head/kernel"]
    assert state.optimizer.iterations == 2
