"""Our pure-Python TF1 bundle writer, restored by the running TensorFlow's own Saver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckptcompat.formats import tf_bundle
from ckptcompat.state import OptimizerState, Progress, TrainingState


def _state() -> TrainingState:
    rng = np.random.default_rng(1)
    weights = {"layer_conv1/kernel": rng.standard_normal((3, 4)).astype(np.float32),
               "layer_conv1/bias": rng.standard_normal(4).astype(np.float32),
               "head/kernel": rng.standard_normal((4, 2)).astype(np.float64),
               "steps_seen": np.array([3, -7], dtype=np.int32)}
    slots = {k: {"m": rng.standard_normal(v.shape).astype(v.dtype),
                 "v": rng.random(v.shape).astype(v.dtype)} for k, v in weights.items() if v.dtype.kind == "f"}
    return TrainingState(weights=weights, progress=Progress(global_step=11),
                         optimizer=OptimizerState("Adam", {"learning_rate": 0.001}, iterations=11, slots=slots))


@pytest.mark.framework
def test_saver_restores_our_bundle_bitwise(tmp_path: Path) -> None:
    import tensorflow as tf  # noqa: PLC0415
    tf1 = tf.compat.v1
    state = _state()
    tf_bundle.write(tmp_path / "model.ckpt", state)
    expected = dict(state.weights)
    for var, per in state.optimizer.slots.items():  # type: ignore[union-attr]
        expected[f"{var}/Adam"], expected[f"{var}/Adam_1"] = per["m"], per["v"]
    reader = tf.train.load_checkpoint(str(tmp_path))
    assert set(reader.get_variable_to_shape_map()) == {*expected, "beta1_power", "beta2_power", "global_step"}
    assert reader.get_tensor("global_step") == 11
    assert np.float32(reader.get_tensor("beta1_power")) == np.float32(0.9 ** 12)
    with tf.Graph().as_default():
        variables = {k: tf1.Variable(tf.zeros(v.shape, dtype=tf.as_dtype(v.dtype)), name=k)
                     for k, v in expected.items()}
        gs = tf1.train.get_or_create_global_step()
        saver = tf1.train.Saver(var_list=[*variables.values(), gs])
        with tf1.Session() as sess:
            saver.restore(sess, tf.train.latest_checkpoint(str(tmp_path)))
            for k, v in expected.items():
                got = sess.run(variables[k])
                assert got.dtype == v.dtype and np.array_equal(got, v), k
            assert sess.run(gs) == 11


@pytest.mark.framework
def test_tf1_saver_bundle_survives_our_read_write(tmp_path: Path) -> None:
    """TF1 Saver -> our reader -> our writer -> TF's reader: every tensor bitwise equal."""
    import tensorflow as tf  # noqa: PLC0415
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 2])
        w = tf1.get_variable("dense/kernel", [2, 3])
        loss = tf.reduce_sum(tf.matmul(x, w) ** 2)
        gs = tf1.train.get_or_create_global_step()
        train = tf1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=gs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(3):
                sess.run(train, {x: np.ones((4, 2), np.float32)})
            tf1.train.Saver().save(sess, str(tmp_path / "src" / "model.ckpt"))
    state = tf_bundle.read(tmp_path / "src")
    assert state.optimizer is not None and state.optimizer.class_name == "SGD"
    assert state.optimizer.iterations == 3 and set(state.optimizer.slots["dense/kernel"]) == {"momentum"}
    tf_bundle.write(tmp_path / "dst" / "model.ckpt", state)
    src = tf.train.load_checkpoint(str(tmp_path / "src" / "model.ckpt"))
    dst = tf.train.load_checkpoint(str(tmp_path / "dst"))
    assert set(src.get_variable_to_shape_map()) == set(dst.get_variable_to_shape_map())
    for key in src.get_variable_to_shape_map():
        a, b = src.get_tensor(key), dst.get_tensor(key)
        assert a.dtype == b.dtype and np.array_equal(a, b), key
