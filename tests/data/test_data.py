"""Tests of ckptcompat.data: replayable data order and exact mid-epoch resume."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from ckptcompat.data import ArrayData, GeneratorData, batch_indices, epoch_permutation
from ckptcompat.errors import IncompatibleStateError, InvalidArgumentError

N, BS, SEED = 10, 3, 5  # 4 batches per epoch, the last one partial


def _xy(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    x = np.concatenate([np.arange(n)[:, None], rng.random((n, 2))], 1).astype("float32")
    return x, rng.random((n, 1)).astype("float32")


def _pure(cls: type, keras2: bool = True) -> type:
    """``cls`` without a Keras base: the bookkeeping alone (runs without TensorFlow)."""
    return type(cls.__name__, (cls,), {"_keras_base": object, "_arm_on_load": keras2})


def _expected(data: Any, epochs: range) -> list[list[int]]:
    return [[int(i) for i in data.indices(e, b)] for e in epochs for b in range(data.batches_per_epoch)]


# --------------------------------------------------------------------- pure (no framework)
def test_permutation_is_pure_function_of_seed_and_epoch() -> None:
    p = epoch_permutation(N, SEED, 2)
    assert np.array_equal(p, np.random.default_rng([SEED, 2]).permutation(N))
    assert np.array_equal(p, epoch_permutation(N, SEED, 2))
    assert not np.array_equal(p, epoch_permutation(N, SEED, 3))
    assert np.array_equal(epoch_permutation(N, SEED, 2, shuffle=False), np.arange(N))
    assert np.array_equal(batch_indices(N, BS, SEED, 2, 3), p[9:10])


def test_batches_cover_every_sample_once_per_epoch() -> None:
    x, y = _xy()
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    assert len(d) == 4
    for e in range(3):
        d.begin_epoch(e)
        seen = np.concatenate([d[i][0][:, 0] for i in range(len(d))]).astype(int)
        assert np.array_equal(seen, epoch_permutation(N, SEED, e))
        assert np.array_equal(d[1][1], y[d.indices(e, 1)])
        d.end_epoch(e)
    assert d[-1][0].shape == (1, 3)
    with pytest.raises(IndexError):
        d[4]


def test_unshuffled_and_multi_input_and_sample_weight() -> None:
    x, y = _xy()
    sw = np.arange(N, dtype="float32")
    d = _pure(ArrayData)({"a": x, "b": [x[:, :1], x[:, 1:]]}, y, batch_size=4, shuffle=False,
                         sample_weight=sw)
    bx, by, bw = d[2]
    assert np.array_equal(bx["a"], x[8:]) and np.array_equal(bx["b"][1], x[8:, 1:])
    assert np.array_equal(by, y[8:]) and np.array_equal(bw, sw[8:])
    assert isinstance(d[0], tuple) and len(_pure(ArrayData)(x, batch_size=4)[0]) == 1


def test_state_dict_is_json_safe_and_round_trips() -> None:
    x, y = _xy()
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    d.begin_epoch(1)
    d.end_batch(0)
    d.end_batch(1)
    state = json.loads(json.dumps(d.state_dict()))
    assert (state["epoch"], state["position"], state["seed"], state["n"]) == (1, 2, SEED, N)
    assert state["batch_size"] == BS and state["shuffle"] is True and state["batches_per_epoch"] == 4
    assert set(state["fingerprint"]) == {"shapes", "dtypes", "sha256"}


@pytest.mark.parametrize("keras2", [True, False])
def test_load_mid_epoch_serves_the_rest_then_full_epochs(keras2: bool) -> None:
    x, y = _xy()
    d = _pure(ArrayData, keras2)(x, y, batch_size=BS, seed=SEED)
    d.load_state_dict({**d.state_dict(), "epoch": 1, "position": 3})
    # Keras 2 reads len() before on_epoch_begin; Keras 3 reads it once at fit start
    assert len(d) == (1 if keras2 else 4)
    d.begin_epoch(1)
    assert len(d) == 1
    assert np.array_equal(d[0][0][:, 0].astype(int), d.indices(1, 3))
    d.end_batch(0)
    assert d.state_dict()["position"] == 4
    d.end_epoch(1)
    assert (len(d), d.epoch, d.position) == (4, 2, 0)
    d.begin_epoch(2)
    assert np.array_equal(d[0][0][:, 0].astype(int), d.indices(2, 0))


def test_absolute_batches_for_a_fit_that_reads_the_length_once() -> None:
    """Keras 2 under a tf.distribute strategy: full length, fit starts the resumed epoch at the
    saved batch itself (its batch indices count from the epoch start); the i-th batch asked for
    is the i-th one not yet trained, what a prefetch reads past the epoch is the last batch."""
    x, y = _xy()
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    d.load_state_dict({**d.state_dict(), "epoch": 1, "position": 2})
    d.count_batches_from_epoch_start()
    assert len(d) == 4
    d.begin_epoch(1)
    assert np.array_equal(d[0][0][:, 0].astype(int), d.indices(1, 2))
    assert np.array_equal(d[1][0][:, 0].astype(int), d.indices(1, 3))
    assert np.array_equal(d[3][0][:, 0].astype(int), d.indices(1, 3))  # prefetched, never trained
    d.end_batch(2)  # Keras' index of the epoch's third batch
    assert d.state_dict()["position"] == 3
    d.end_batch(3)
    d.end_epoch(1)
    assert (len(d), d.epoch, d.position) == (4, 2, 0)
    d.begin_epoch(2)
    assert np.array_equal(d[0][0][:, 0].astype(int), d.indices(2, 0))


def test_stopped_epoch_keeps_position_and_epoch_end_normalises() -> None:
    x, y = _xy()
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    d.begin_epoch(0)
    d.end_batch(0)
    d.end_epoch(0)  # stop_training after one batch: still inside epoch 0
    assert (d.epoch, d.position) == (0, 1)
    d2 = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    d2.load_state_dict({**d.state_dict(), "position": 4})  # saved at an epoch end
    assert (d2.epoch, d2.position, len(d2)) == (1, 0, 4)


def test_load_rejects_other_data_and_wrong_epoch() -> None:
    x, y = _xy()
    state = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED).state_dict()
    x2 = x.copy()
    x2[N - 1, 1] += 1
    for other in (_pure(ArrayData)(x2, y, batch_size=BS, seed=SEED),
                  _pure(ArrayData)(x, y, batch_size=BS + 1, seed=SEED),
                  _pure(ArrayData)(x, y, batch_size=BS, seed=SEED + 1),
                  _pure(ArrayData)(x[:-1], y[:-1], batch_size=BS, seed=SEED)):
        with pytest.raises(IncompatibleStateError):
            other.load_state_dict(state)
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    with pytest.raises(IncompatibleStateError):
        d.load_state_dict({**state, "position": 5})
    d.load_state_dict({**state, "epoch": 1, "position": 2})
    with pytest.raises(IncompatibleStateError, match="initial_epoch=1"):
        d.begin_epoch(2)


def test_out_of_order_keras_requests_are_refused() -> None:
    x, y = _xy()
    d = _pure(ArrayData)(x, y, batch_size=BS, seed=SEED)
    d.begin_epoch(0)
    d[2]  # what fit(shuffle=True) does
    with pytest.raises(InvalidArgumentError, match="shuffle=False"):
        d.end_batch(0)


def test_bad_arguments() -> None:
    x, y = _xy()
    with pytest.raises(InvalidArgumentError):
        _pure(ArrayData)(x, y[:-1])
    with pytest.raises(InvalidArgumentError):
        _pure(ArrayData)(x, y, batch_size=0)
    with pytest.raises(InvalidArgumentError):
        _pure(ArrayData)(x, y, seed=-1)
    with pytest.raises(InvalidArgumentError):
        _pure(ArrayData)(x, y, batch_size=BS, steps_per_epoch=5)
    assert len(_pure(ArrayData)(x, y, batch_size=BS, steps_per_epoch=2)) == 2


def _factory(epoch: int, seed: int) -> Any:
    for b in range(4):
        yield (np.full((2, 3), 100 * epoch + b + seed, dtype="float32"), np.zeros((2, 1), "float32"))


def test_generator_data_replays_and_skips() -> None:
    g = _pure(GeneratorData)(_factory, 4, seed=0)
    g.begin_epoch(1)
    assert [int(g[i][0][0, 0]) for i in (0, 1, 0, 3, 2)] == [100, 101, 100, 103, 102]
    g.end_batch(0)
    g.end_batch(1)
    state = json.loads(json.dumps(g.state_dict()))
    g2 = _pure(GeneratorData)(_factory, 4, seed=0)
    g2.load_state_dict(state)
    assert len(g2) == 2 and [int(g2[i][0][0, 0]) for i in range(2)] == [102, 103]
    with pytest.raises(IncompatibleStateError):
        _pure(GeneratorData)(_factory, 5, seed=0).load_state_dict(state)
    short = _pure(GeneratorData)(_factory, 6, seed=0)
    with pytest.raises(InvalidArgumentError, match="stopped after 4"):
        short[5]


def test_import_does_not_import_tensorflow() -> None:
    code = ("import sys, ckptcompat.data; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'tf_keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------- live Keras
def _recording_model(keras: Any, seen: list[list[int]]) -> Any:
    import tensorflow as tf

    if not tf.executing_eagerly():
        pytest.skip("records the batches with run_eagerly=True, which needs eager execution; under "
                    "graph execution test_resumed_training_is_bitwise_equal checks the resumed order")
    class Record(keras.layers.Layer):
        def call(self, inputs: Any) -> Any:
            if tf.executing_eagerly():
                seen.append([int(v) for v in np.asarray(inputs)[:, 0]])
            return inputs[:, 1:]

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1)(Record()(inp)))
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    return model


def _stopper(keras: Any, epoch: int, after: int) -> Any:
    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, e: int, logs: Any = None) -> None:
            self.epoch = e

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self.epoch == epoch and batch == after - 1:
                self.model.stop_training = True

    return Stop()


@pytest.mark.framework
@pytest.mark.parametrize("steps", [None, 3])
def test_fit_sees_the_expected_permutations(keras: Any, steps: int | None) -> None:
    x, y = _xy()
    seen: list[list[int]] = []
    d = ArrayData(x, y, batch_size=BS, seed=SEED, steps_per_epoch=steps)
    assert isinstance(d, ArrayData) and isinstance(d, keras.utils.Sequence)
    _recording_model(keras, seen).fit(d, epochs=3, shuffle=False, verbose=0, callbacks=[d.tracker()])
    assert seen == _expected(d, range(3))
    assert (d.epoch, d.position) == (3, 0)


@pytest.mark.framework
@pytest.mark.parametrize("k", [0, 2, 4])  # 0/4: at an epoch boundary; 2: mid-epoch
@pytest.mark.parametrize("kind", ["array", "generator"])
def test_interrupted_and_resumed_sees_the_same_batches(keras: Any, k: int, kind: str) -> None:
    x, y = _xy()

    def make() -> Any:
        if kind == "array":
            return ArrayData(x, y, batch_size=BS, seed=SEED)

        def factory(epoch: int, seed: int) -> Any:
            for b in range(4):
                idx = batch_indices(N, BS, seed, epoch, b)
                yield x[idx], y[idx]
        return GeneratorData(factory, 4, seed=SEED)

    full: list[list[int]] = []
    d = make()
    _recording_model(keras, full).fit(d, epochs=3, shuffle=False, verbose=0, callbacks=[d.tracker()])
    assert full == _expected(ArrayData(x, y, batch_size=BS, seed=SEED), range(3))

    seen: list[list[int]] = []
    d = make()
    stop_epoch, after = (0, 4) if k == 0 else (1, k)
    _recording_model(keras, seen).fit(d, epochs=3, shuffle=False, verbose=0,
                                      callbacks=[d.tracker(), _stopper(keras, stop_epoch, after)])
    state = json.loads(json.dumps(d.state_dict()))
    assert (state["epoch"], state["position"]) == ((1, 0) if k == 0 else (1, k % 4) if k < 4 else (2, 0))
    resumed = make()
    resumed.load_state_dict(state)
    _fit_resumed(_recording_model(keras, seen), resumed, 3, state["epoch"])
    assert seen == full


def _fit_resumed(model: Any, data: Any, epochs: int, initial_epoch: int) -> None:
    """fit on from a loaded data state; where fit() reads len(data) once and cannot be widened
    (policy "fixed") the interrupted epoch runs in a fit of its own."""
    from ckptcompat import runtime

    first = initial_epoch + 1 if (len(data) < data.batches_per_epoch and
                                  runtime.flavour_for(model).data_length_policy() == "fixed") else epochs
    for start, stop in ((initial_epoch, first), (first, epochs)):
        if stop > start:
            model.fit(data, epochs=stop, initial_epoch=start, shuffle=False, verbose=0,
                      callbacks=[data.tracker()])


@pytest.mark.framework
@pytest.mark.parametrize("dropout", [False, pytest.param(True, marks=pytest.mark.keras3)])
def test_resumed_training_is_bitwise_equal(keras: Any, dropout: bool) -> None:
    """Keras 3 only with dropout: its RNG state is a variable; Keras 2 uses op-level seeds.
    Where fit() reads len(data) once and cannot be widened (tf.keras 2.2.4-tf, standalone Keras
    2.2), one fit over the resumed and the following epochs is refused before any step, and the
    interrupted epoch finished in a fit of its own continues exactly."""
    import tensorflow as tf

    from _cb_helpers import deterministic, seed_all
    from ckptcompat import runtime
    from ckptcompat.errors import InvalidArgumentError

    deterministic(keras)
    graph = not tf.executing_eagerly()
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4)).astype("float32"), rng.random((40, 1)).astype("float32")

    def model() -> Any:
        if graph:  # op-level seeds count the graph's ops: each model on a fresh graph, and one
            keras.backend.clear_session()  # thread (no op determinism switch before TF 2.8)
            keras.backend.set_session(tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(
                intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)))
        seed_all(keras, 7)
        inp = keras.Input((4,))
        hidden = keras.layers.Dense(8, activation="relu")(inp)
        if dropout:
            hidden = keras.layers.Dropout(0.3)(hidden)
        m = keras.Model(inp, keras.layers.Dense(1)(hidden))
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mse")
        return m

    def steps(m: Any) -> int:
        return int(runtime.flavour_for(m).read_variable(m.optimizer.iterations))

    ref = model()
    d = ArrayData(x, y, batch_size=6, seed=SEED)
    ref.fit(d, epochs=3, shuffle=False, verbose=0, callbacks=[d.tracker()])
    ref_weights, ref_steps = ref.get_weights(), steps(ref)

    m = model()
    d = ArrayData(x, y, batch_size=6, seed=SEED)
    m.fit(d, epochs=3, shuffle=False, verbose=0, callbacks=[d.tracker(), _stopper(keras, 1, 3)])
    state = d.state_dict()
    assert (state["epoch"], state["position"]) == (1, 3)
    d2 = ArrayData(x, y, batch_size=6, seed=SEED)
    d2.load_state_dict(state)
    if runtime.flavour_for(m).data_length_policy() == "fixed":
        with pytest.raises(InvalidArgumentError, match="initial_epoch=1, epochs=2"):
            m.fit(d2, epochs=3, initial_epoch=1, shuffle=False, verbose=0, callbacks=[d2.tracker()])
        assert steps(m) == 7 + 3  # refused before any step
        m.fit(d2, epochs=2, initial_epoch=1, shuffle=False, verbose=0, callbacks=[d2.tracker()])
        m.fit(d2, epochs=3, initial_epoch=2, shuffle=False, verbose=0, callbacks=[d2.tracker()])
    else:
        m.fit(d2, epochs=3, initial_epoch=1, shuffle=False, verbose=0, callbacks=[d2.tracker()])

    assert steps(m) == ref_steps == 21
    assert len(ref_weights) == len(m.get_weights())
    for a, b in zip(ref_weights, m.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    not_resumed = model()
    not_resumed.fit(ArrayData(x, y, batch_size=6, seed=SEED + 1), epochs=3, shuffle=False, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(ref_weights, not_resumed.get_weights()))


@pytest.mark.keras2
def test_fit_steps_per_epoch_is_honoured(keras: Any) -> None:
    """fit(steps_per_epoch=k) with a tracker runs k steps per epoch on every Keras 2 (the tracker
    matches tf.keras 2.3-2.9's DataHandler to the data only where fit took len(data))."""
    from ckptcompat import runtime

    x, y = _xy()
    model = _model_for_steps(keras)
    d = ArrayData(x, y, batch_size=BS, seed=SEED)
    assert len(d) > 3
    model.fit(d, steps_per_epoch=3, epochs=2, shuffle=False, verbose=0, callbacks=[d.tracker()])
    assert int(runtime.flavour_for(model).read_variable(model.optimizer.iterations)) == 6


def _model_for_steps(keras: Any) -> Any:
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(optimizer="sgd", loss="mse")
    return model
