"""A generated two-Dense-layer Adam state of any width (framework-free), for size-sensitive tests.

Starts from the committed ``tf215/mlp_adam`` fixture (a real tf.keras 2.15 config and
optimizer) and widens both Dense layers to ``width`` units, with random weights and moments.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

import ckptcompat
from _paths import FIXTURES
from ckptcompat.state import TrainingState

__all__ = ["big_state", "tensor_bytes"]


def big_state(width: int, seed: int = 0) -> TrainingState:
    """About ``2 * width**2 * 3 * 4`` bytes of float32 tensors (kernels, biases, Adam m and v)."""
    base = ckptcompat.read(FIXTURES / "tf215" / "mlp_adam" / "model.h5")
    config = copy.deepcopy(base.model_config)
    layers = config["config"]["layers"]
    layers[0]["config"]["batch_input_shape"] = [None, width]
    for layer in layers[1:]:
        layer["config"]["units"] = width
    rng = np.random.default_rng(seed)
    shapes = {"dense/kernel": (width, width), "dense/bias": (width,),
              "dense_1/kernel": (width, width), "dense_1/bias": (width,)}

    def rand(shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    weights = {k: rand(s) for k, s in shapes.items()}
    slots = {k: {"m": rand(s), "v": np.abs(rand(s))} for k, s in shapes.items()}
    assert base.optimizer is not None
    optimizer = dataclasses.replace(base.optimizer, slots=slots, iterations=7)
    return base.replace(weights=weights, optimizer=optimizer, model_config=config)


def tensor_bytes(state: TrainingState) -> int:
    """Bytes of every weight and slot of ``state``."""
    return sum(a.nbytes for a in state.tensors().values())
