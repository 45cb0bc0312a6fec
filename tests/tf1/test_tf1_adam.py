"""ckptcompat.tf1.adam: a Keras Adam that continues a TF1 AdamOptimizer run bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import _tf1_graph as G
from ckptcompat.tf1.adam import tf1_beta_power


def test_beta_power_is_the_float32_product() -> None:
    b = np.float32(0.999)
    power = b
    for _ in range(5000):
        power = np.float32(power * b)
    assert tf1_beta_power(0.999, 5000) == power
    assert tf1_beta_power(0.9, 0) == np.float32(0.9)
    assert tf1_beta_power(0.999, 5000) != np.float32(0.999) ** np.float32(5001)  # why it matters


def _new_optimizer_api(keras: Any) -> bool:
    """TF1Adam is built on the optimizer API of tf.keras 2.11+ / Keras 3 (``update_step``)."""
    return hasattr(keras.optimizers.Adam, "update_step")


def _needs_new_api(keras: Any) -> None:
    if not _new_optimizer_api(keras):
        pytest.skip("TF1Adam needs tf.keras 2.11+ or Keras 3; older tf.keras refuse it "
                    "(test_tf1adam_refused_on_optimizer_v2)")


def _live(model: Any) -> dict[str, Any]:
    from ckptcompat import runtime

    return runtime.flavour().variables(model)


@pytest.mark.framework
def test_converted_run_continues_bit_for_bit(tmp_path: Path, keras: Any) -> None:
    """TF1 graph trained 5 steps -> Keras model with TF1Adam; then two more steps on both
    sides with the same gradients: weights, m and v equal TF1's own ApplyAdam steps exactly."""
    from ckptcompat.tf1.convert import tf1_to_keras
    from ckptcompat.tf1.adam import TF1Adam

    _needs_new_api(keras)
    net = G.build(lr=1e-2)
    x, y = G.data()
    for i in range(5):
        bx, by = G.batch(i, x, y)
        net.sess.run(net.train, {net.x: bx, net.y: by})
    with net.graph.as_default():
        net.saver.save(net.sess, str(tmp_path / "tf1" / "model.ckpt"))
        tvars = net.tf1.trainable_variables()
        grads_op = net.tf1.gradients(net.loss, tvars)
        applies = {op.inputs[0].op.name: op.inputs[9] for op in net.graph.get_operations()
                   if op.type in ("ApplyAdam", "ResourceApplyAdam")}
    model = G.keras_twin(keras)
    model.compile(optimizer=TF1Adam(learning_rate=1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    report = tf1_to_keras(tmp_path / "tf1", model)
    assert report.iterations == 5 and len(report.restored_slots) == 12
    opt = model.optimizer
    assert type(opt).__name__ == "Adam"  # checkpoints record plain Adam state
    before = G.values(net)
    assert np.asarray(opt.beta1_power) == before["beta1_power"]
    assert np.asarray(opt.beta2_power) == before["beta2_power"]
    live = _live(model)
    from ckptcompat import runtime
    for step in (5, 6):
        bx, by = G.batch(step, x, y)
        grads = net.sess.run(grads_op, {net.x: bx, net.y: by})
        net.sess.run(net.train, {net.x: bx, net.y: by,
                                 **{applies[v.op.name]: g for g, v in zip(grads, tvars)}})
        opt.apply_gradients([(g, live[v.op.name]) for g, v in zip(grads, tvars)])
        after = G.values(net)
        state = runtime.flavour().capture(model)
        assert state.optimizer.iterations == step + 1 == int(after["global_step"])
        for v in tvars:
            name = v.op.name
            assert G.sha(state.weights[name]) == G.sha(after[name]), (step, name)
            assert G.sha(state.optimizer.slots[name]["m"]) == G.sha(after[f"{name}/Adam"]), (step, name)
            assert G.sha(state.optimizer.slots[name]["v"]) == G.sha(after[f"{name}/Adam_1"]), (step, name)
        assert np.asarray(opt.beta1_power) == after["beta1_power"]
        assert np.asarray(opt.beta2_power) == after["beta2_power"]


@pytest.mark.framework
def test_restore_rebuilds_the_powers_and_fit_continues_exactly(keras: Any) -> None:
    """A TF1Adam run captured after 7 steps and applied to a new model: the powers come
    back from the step count, and the next fit steps equal the uninterrupted run's."""
    import tensorflow as tf

    from ckptcompat import runtime
    from ckptcompat.tf1.adam import TF1Adam

    _needs_new_api(keras)
    tf.config.experimental.enable_op_determinism()
    x, y = G.data(64)

    def fresh() -> Any:
        keras.utils.set_random_seed(3)
        model = G.keras_twin(keras)
        model.compile(optimizer=TF1Adam(learning_rate=1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    straight = fresh()
    straight.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)  # 8 steps
    half = fresh()
    half.fit(x[:48], y[:48], batch_size=16, epochs=1, shuffle=False, verbose=0)
    half.fit(x[48:], y[48:], batch_size=16, epochs=1, shuffle=False, verbose=0)  # step 4
    half.fit(x[:48], y[:48], batch_size=16, epochs=1, shuffle=False, verbose=0)  # step 7
    state = runtime.capture(half)
    resumed = fresh()
    runtime.apply(state, resumed)
    opt = resumed.optimizer
    assert int(np.asarray(opt.iterations)) == 7
    assert np.asarray(opt.beta1_power) == np.asarray(half.optimizer.beta1_power) == tf1_beta_power(0.9, 7)
    assert np.asarray(opt.beta2_power) == np.asarray(half.optimizer.beta2_power)
    resumed.fit(x[48:], y[48:], batch_size=16, epochs=1, shuffle=False, verbose=0)  # step 8
    a, b = runtime.capture(straight), runtime.capture(resumed)
    for name in a.weights:
        assert G.sha(a.weights[name]) == G.sha(b.weights[name]), name


@pytest.mark.framework
def test_amsgrad_is_refused(keras: Any) -> None:
    from ckptcompat.errors import InvalidArgumentError
    from ckptcompat.tf1.adam import TF1Adam

    with pytest.raises(InvalidArgumentError, match="amsgrad"):
        TF1Adam(amsgrad=True)
    _needs_new_api(keras)
    opt = TF1Adam()
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == (float(np.float32(0.9)), float(np.float32(0.999)),
                                                      float(np.float32(1e-8)))


@pytest.mark.framework
def test_tf1adam_refused_on_optimizer_v2(keras: Any) -> None:
    """tf.keras <= 2.10 (TF 1.15 - 2.10) has only OptimizerV2: a typed error with the way on."""
    from ckptcompat.errors import MissingDependencyError
    from ckptcompat.tf1.adam import TF1Adam

    if _new_optimizer_api(keras):
        pytest.skip("this Keras has the optimizer API TF1Adam is built on")
    with pytest.raises(MissingDependencyError, match="tf.keras 2.11") as info:
        TF1Adam()
    assert "session=sess" in str(info.value)
