"""A tiny MNIST-like TF1 graph (``layer_conv1``, ``layer_fc1``, ``layer_fc2`` + Adam) for tests."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import numpy as np

H = W = 8
CLASSES = 3


def data(n: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is the brightest third of the picture (learnable, not trivially)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, H, W, 1), dtype=np.float32)
    thirds = np.stack([x[:, :, :3].mean((1, 2, 3)), x[:, :, 3:5].mean((1, 2, 3)), x[:, :, 5:].mean((1, 2, 3))], 1)
    return x, np.argmax(thirds, 1).astype(np.int64)


def batch(step: int, x: np.ndarray, y: np.ndarray, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The batch of iteration ``step``: a function of the step only (replayable)."""
    idx = np.random.default_rng(1000 + step).choice(len(x), size, replace=False)
    return x[idx], y[idx]


def _dense_vars(tf1: Any, name: str, n_in: int, n_out: int) -> tuple[Any, Any]:
    with tf1.variable_scope(name):
        k = tf1.get_variable("kernel", [n_in, n_out], initializer=tf1.glorot_uniform_initializer())
        b = tf1.get_variable("bias", [n_out], initializer=tf1.zeros_initializer())
    return k, b


def build(lr: float = 1e-2, seed: int = 0, use_layers: bool = False, fc1: int = 16) -> SimpleNamespace:
    """Graph + ops; ``use_layers`` builds it with ``tf.compat.v1.layers`` (same variable names)."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    g = tf1.Graph()
    with g.as_default():
        tf1.set_random_seed(seed)
        x = tf1.placeholder(tf.float32, [None, H, W, 1], name="x")
        y = tf1.placeholder(tf.int64, [None], name="y")
        if use_layers:
            from ckptcompat.runtime.tf1 import require_tf1_layers
            layers = require_tf1_layers()
            h = layers.conv2d(x, 4, 3, padding="same", activation=tf.nn.relu, name="layer_conv1")
            h = layers.flatten(h)
            h = layers.dense(h, fc1, activation=tf.nn.relu, name="layer_fc1")
            logits = layers.dense(h, CLASSES, name="layer_fc2")
        else:
            with tf1.variable_scope("layer_conv1"):
                k = tf1.get_variable("kernel", [3, 3, 1, 4], initializer=tf1.glorot_uniform_initializer())
                b = tf1.get_variable("bias", [4], initializer=tf1.zeros_initializer())
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME"), b))
            h = tf.reshape(h, [-1, H * W * 4])
            k1, b1 = _dense_vars(tf1, "layer_fc1", H * W * 4, fc1)
            h = tf.nn.relu(tf.matmul(h, k1) + b1)
            k2, b2 = _dense_vars(tf1, "layer_fc2", fc1, CLASSES)
            logits = tf.matmul(h, k2) + b2
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        global_step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=global_step)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        init = tf1.global_variables_initializer()
        saver = tf1.train.Saver()
    cfg = tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    sess = tf1.Session(graph=g, config=cfg)
    sess.run(init)
    return SimpleNamespace(tf=tf, tf1=tf1, graph=g, sess=sess, x=x, y=y, logits=logits, loss=loss,
                           train=train, acc=acc, global_step=global_step, saver=saver)


def values(net: SimpleNamespace) -> dict[str, np.ndarray]:
    from ckptcompat.runtime.tf1 import read_session
    return read_session(net.sess)


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def keras_twin(keras: Any, lr: float = 1e-2, fc1: int = 16) -> Any:
    """The same architecture in Keras with the TF1 scope names as layer names; Adam eps=1e-8."""
    model = keras.Sequential([
        keras.Input((H, W, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="layer_conv1"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(fc1, activation="relu", name="layer_fc1"),
        keras.layers.Dense(CLASSES, name="layer_fc2"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def keras_eager() -> bool:
    """Whether the Keras side runs eagerly (TF 2); under TF 1.15 it builds graph ops."""
    import tensorflow as tf

    return bool(tf.executing_eagerly())


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's output for ``x`` in one batch, eager or graph."""
    return np.asarray(model(x, training=False)) if keras_eager() else model.predict(x, batch_size=len(x))


def scalar(keras: Any, value: Any) -> float:
    """A hyperparameter as a float (graph-mode tf.keras keeps them as variables)."""
    return float(value) if isinstance(value, (int, float)) else float(keras.backend.get_value(value))


def run_op(keras: Any, result: Any) -> None:
    """Run what a Keras call returned under graph execution (eagerly it already ran)."""
    if not keras_eager():
        keras.backend.get_session().run(result)
