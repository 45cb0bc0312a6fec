"""TF1 Saver folders without a ``global_step`` tensor: the step from Adam's power accumulators."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import ckptcompat

pytestmark = pytest.mark.framework


def _adam_graph(beta1: float, seed: int = 0):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        x = tf1.placeholder(tf.float32, [None, 3])
        w = tf1.get_variable("w", [3, 1])
        loss = tf1.reduce_mean(tf1.square(tf1.matmul(x, w) - 1.0))
        train = tf1.train.AdamOptimizer(0.01, beta1=beta1).minimize(loss)  # no global_step
        saver = tf1.train.Saver()
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
    return sess, train, x, saver


@pytest.mark.parametrize("beta1", [0.9, 0.8])
def test_generated_saver_folder_gives_the_adam_step(tmp_path: Path, caplog, beta1: float) -> None:
    sess, train, x, saver = _adam_graph(beta1)
    for _ in range(7):
        sess.run(train, {x: np.ones((4, 3), np.float32)})
    with sess.graph.as_default():
        saver.save(sess, str(tmp_path / "model.ckpt"))
    other, *_ = _adam_graph(beta1, seed=1)
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(tmp_path, session=other)
    assert (run.global_step, run.global_step_source) == (7, "beta1_power")
    assert any("inferred from beta1_power" in r.getMessage() for r in caplog.records)


def test_real_tf1_saver_folder_without_global_step(real_checkpoints: Path) -> None:
    """BilleChu/dnn-test-tensorflow (TF 1.12, Adam, no global_step): its own meta graph,
    restored in a fresh session; beta1_power and beta2_power both say 100 steps."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    folder = real_checkpoints / "BilleChu__dnn-test-tensorflow"
    graph = tf1.Graph()
    with graph.as_default():
        tf1.train.import_meta_graph(str(folder / "model.ckpt.meta"))
        with tf1.Session(graph=graph) as sess:
            run = ckptcompat.resume(folder, session=sess)
    assert (run.global_step, run.global_step_source) == (100, "beta1_power")
    assert ckptcompat.read(folder / "model.ckpt").progress.global_step == 100
