"""OptimizerV2 slots named without the optimizer's scope (``dense/kernel/m``, ``iter``), as a model
resumed by ckptcompat 0.1.0 and then saved natively holds them, read by their variable; a nested
``block/dense/kernel/m`` is not taken for a top-level ``dense/kernel`` (no framework needed)."""

from __future__ import annotations

import numpy as np

from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots


def _weights() -> list[WeightInfo]:
    return [WeightInfo("dense/kernel", "dense/kernel", (4, 3), True),
            WeightInfo("dense/bias", "dense/bias", (3,), True),
            WeightInfo("block/dense/kernel", "block/dense/kernel", (2, 2), True)]


def test_unscoped_slots_are_placed_by_their_variable() -> None:
    rng = np.random.RandomState(0)
    values = {"iter": np.asarray(7, "int64"), "dense/kernel/m": rng.rand(4, 3), "dense/bias/m": rng.rand(3),
              "block/dense/kernel/m": rng.rand(2, 2), "dense/kernel/v": rng.rand(4, 3), "dense/bias/v": rng.rand(3),
              "block/dense/kernel/v": rng.rand(2, 2)}
    iterations, slots, _ = match_slots("Adam", list(values), list(values.values()), _weights(), "x.h5")
    assert iterations == 7
    assert slots["block/dense/kernel"]["m"].tobytes() == values["block/dense/kernel/m"].tobytes()
    assert slots["dense/kernel"]["v"].tobytes() == values["dense/kernel/v"].tobytes()
    assert set(slots) == {"dense/kernel", "dense/bias", "block/dense/kernel"}


def test_scoped_slots_still_read_as_before() -> None:
    rng = np.random.RandomState(1)
    values = {"Adam/iter": np.asarray(3, "int64"), "Adam/dense/kernel/m": rng.rand(4, 3),
              "Adam/block/dense/kernel/m": rng.rand(2, 2)}
    weights = _weights()
    _, slots, _ = match_slots("Adam", list(values), list(values.values()), weights, "x.h5")
    assert slots["dense/kernel"]["m"].tobytes() == values["Adam/dense/kernel/m"].tobytes()
    assert slots["block/dense/kernel"]["m"].tobytes() == values["Adam/block/dense/kernel/m"].tobytes()
