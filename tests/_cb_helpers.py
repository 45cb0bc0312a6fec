"""Shared pieces of the tests/callbacks/test_callbacks_*.py files: tiny deterministic data and models."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from _paths import FIXTURES, load_script


def seed_all(keras: Any, seed: int) -> None:
    """Seed Python, numpy and the framework, on every Keras: the generators' ``seed``
    (fixtures/_truth.py: ``keras.utils.set_random_seed`` where it exists, else the three seeds)."""
    truth = sys.modules.get("_truth") or load_script(FIXTURES / "_truth.py", "_truth")
    truth.seed(keras, seed)


def deterministic(keras: Any, seed: int = 0) -> None:
    """Seed Python/numpy/framework RNGs and switch TensorFlow to deterministic ops (TF >= 2.8;
    older releases run these tiny CPU models deterministically as they are)."""
    import tensorflow as tf

    seed_all(keras, seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):
        pass


def tiny_data(n: int = 64, noise: float = 0.35, seed: int = 1) -> tuple[np.ndarray, ...]:
    """x, y (binary, partly noisy labels so validation metrics plateau), x_val, y_val."""
    rng = np.random.RandomState(seed)
    x = rng.rand(n, 4).astype("float32")
    y = (x.sum(axis=1) > 2.0).astype("float32")
    flip = rng.rand(n) < noise
    y[flip] = 1.0 - y[flip]
    xv = rng.rand(n // 2, 4).astype("float32")
    yv = (xv.sum(axis=1) > 2.0).astype("float32")
    return x, y, xv, yv


def tiny_model(keras: Any, *, metrics: Any = ("acc",), lr: float = 0.3, seed: int = 0) -> Any:
    """A compiled two-layer sigmoid classifier (same initial weights for the same seed)."""
    deterministic(keras, seed)
    model = keras.Sequential([keras.layers.Input((4,)),
                              keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(1, activation="sigmoid", name="out")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
                  loss="binary_crossentropy",
                  metrics=[m() if callable(m) else m for m in metrics])
    return model


def weights_equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Bitwise equality of two weight lists (dtype included)."""
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


class WeightRecorder:
    """Not a callback itself: ``make(keras)`` returns one recording weights at every epoch end."""

    @staticmethod
    def make(keras: Any) -> Any:
        class _Recorder(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.by_epoch: dict[int, list[np.ndarray]] = {}

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.by_epoch[epoch] = [np.array(w) for w in self.model.get_weights()]

        return _Recorder()


def array_data(n: int = 40, batch: int = 8) -> Any:
    """An ``ArrayData`` of ``n`` seeded regression samples (4 features), ``batch`` per step."""
    from ckptcompat.data import ArrayData

    rng = np.random.default_rng(0)
    x = rng.random((n, 4), dtype=np.float32)
    return ArrayData(x, x @ rng.random((4, 1), dtype=np.float32), batch_size=batch, seed=2)
