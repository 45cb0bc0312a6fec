"""Slot kinds one generation keeps and the live optimizer does not, in a positional optimizer list.

tf.keras 2.11+ and tf-keras ``SGD`` keep a ``momentum`` slot per trainable variable even at
momentum 0; Keras 3 (and OptimizerV2) create none. ``runtime/_positional`` reads such a file in the
order the other generation's generated layout table gives for the live class and configuration,
names the extra slots, and leaves them to the translation by meaning. Checked here on stand-in
variables, without a framework; the real releases in
``tests/resuming/test_resume_positional_optimizer.py`` (tf221-tfkeras row).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ckptcompat.runtime import _positional
from ckptcompat.state import OptimizerState


class _Var:
    def __init__(self, name: str, shape: tuple[int, ...], trainable: bool = True) -> None:
        self.name, self.shape, self.trainable = name, tuple(shape), trainable


class _Ops:
    def __init__(self, cls: str, ordered: list[Any]) -> None:
        self.cls, self.ordered = cls, ordered

    def shape(self, var: Any) -> tuple[int, ...]:
        return var.shape

    def optimizer_class(self, opt: Any) -> str:
        return self.cls

    def ordered_optimizer_variables(self, opt: Any) -> list[Any] | None:
        return self.ordered

    def optimizer_config(self, opt: Any) -> dict[str, Any]:
        return dict(opt.get_config())


class _Opt:
    def __init__(self, config: dict[str, Any], rate: Any = None) -> None:
        self.config, self._learning_rate = config, rate

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)


def _model() -> dict[str, _Var]:
    """A Dense layer and a frozen one (its variables have no slot in any generation)."""
    return {"dense/kernel": _Var("dense/kernel", (4, 3)), "dense/bias": _Var("dense/bias", (3,)),
            "frozen/kernel": _Var("frozen/kernel", (3, 2), trainable=False)}


def _keras3_sgd(momentum: float) -> tuple[_Ops, _Opt, dict[str, dict[str, Any]]]:
    """Keras 3 SGD: iteration, learning rate, then a momentum per trainable variable when > 0."""
    it, lr = _Var("iteration", ()), _Var("learning_rate", ())
    live = {} if momentum == 0 else {n: {"momentum": _Var("m", v.shape)} for n, v in _model().items() if v.trainable}
    ordered = [it, lr] + [per["momentum"] for per in live.values()]
    return _Ops("SGD", ordered), _Opt({"momentum": momentum}, rate=lr), live


def _file(*arrays: np.ndarray, cls: str = "Unknown") -> OptimizerState:
    return OptimizerState(class_name=cls, extra={f"vars/{i}": a for i, a in enumerate(arrays)})


def _tf_keras_sgd_file(seed: int = 0) -> list[np.ndarray]:
    """What tf-keras writes for SGD at momentum 0: the counter, then ``m`` of kernel and bias."""
    rng = np.random.RandomState(seed)
    return [np.asarray(7, dtype="int64"), rng.rand(4, 3).astype("f4"), rng.rand(3).astype("f4")]


def test_tf_keras_sgd_momentum_slots_are_named_for_a_keras3_sgd_that_keeps_none() -> None:
    ops, opt, live = _keras3_sgd(0.0)
    arrays = _tf_keras_sgd_file()
    placed = _positional.slots_from_positions(ops, opt, live, _file(*arrays), _model())
    assert placed.iterations == 7
    assert set(placed.slots) == {"dense/kernel", "dense/bias"}  # not the frozen layer's
    assert placed.slots["dense/kernel"]["momentum"].tobytes() == arrays[1].tobytes()
    assert placed.slots["dense/bias"]["momentum"].tobytes() == arrays[2].tobytes()


def test_a_file_only_slot_of_another_shape_is_not_placed() -> None:
    ops, opt, live = _keras3_sgd(0.0)
    arrays = _tf_keras_sgd_file()
    arrays[2] = np.zeros((4,), "f4")
    st = _file(*arrays)
    assert _positional.slots_from_positions(ops, opt, live, st, _model()) is st


def test_a_file_of_another_class_is_not_read_through_the_live_class_table() -> None:
    ops, opt, live = _keras3_sgd(0.0)
    st = _file(*_tf_keras_sgd_file(), cls="Adam")
    assert _positional.slots_from_positions(ops, opt, live, st, _model()) is st


def test_a_live_optimizer_that_keeps_every_kind_places_in_its_own_order() -> None:
    """SGD with momentum in both generations: the live order, no file-only reading besides it."""
    ops, opt, live = _keras3_sgd(0.9)
    arrays = _tf_keras_sgd_file(1)
    placed = _positional.slots_from_positions(ops, opt, live, _file(*arrays), _model())
    assert placed.slots["dense/kernel"]["momentum"].tobytes() == arrays[1].tobytes()
    assert placed.iterations == 7


def test_the_same_generation_file_is_read_as_before() -> None:
    """Keras 3 SGD at 0 wrote counter and rate only: no slot to name."""
    ops, opt, live = _keras3_sgd(0.0)
    placed = _positional.slots_from_positions(
        ops, opt, live, _file(np.asarray(5, "int64"), np.asarray(0.01, "f4")), _model())
    assert placed.iterations == 5 and not placed.slots


def test_a_keras3_file_with_momentum_is_not_read_as_a_tf_keras_one() -> None:
    """Keras 3 SGD(momentum=0.9) wrote counter, rate and momenta: into a Keras 3 SGD at 0 it fits no
    reading (tf-keras files hold no rate variable); before, the rate was taken out and the momenta dropped."""
    ops, opt, live = _keras3_sgd(0.0)
    arrays = _tf_keras_sgd_file(2)
    st = _file(arrays[0], np.asarray(0.01, "f4"), *arrays[1:])
    assert _positional.slots_from_positions(ops, opt, live, st, _model()) is st


def test_a_frozen_layer_of_keras2_is_told_by_the_models_trainable_variables() -> None:
    """tf.keras keeps ``trainable`` True on a frozen layer's variables: the model's own list decides."""
    named = {**_model(), "frozen/kernel": _Var("frozen/kernel", (3, 2), trainable=True)}
    ops, opt, live = _keras3_sgd(0.0)
    arrays = _tf_keras_sgd_file(3)
    trainable = frozenset(id(named[n]) for n in ("dense/kernel", "dense/bias"))
    placed = _positional.slots_from_positions(ops, opt, live, _file(*arrays), named, trainable)
    assert set(placed.slots) == {"dense/kernel", "dense/bias"}
    st = _file(*arrays)
    assert _positional.slots_from_positions(ops, opt, live, st, named) is st  # counted without the list
