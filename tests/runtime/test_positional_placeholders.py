"""Adafactor's scalar placeholders in a positional optimizer list, without a framework.

Keras 3 keeps ``r``/``c`` placeholders (zero scalars) for every variable under 2 dimensions among
its optimizer's variables; tf-keras keeps them outside its list and names both ``r/...``. The
placement (``runtime/_positional``) and the live slot discovery (``runtime/_slots.list_slots``)
are checked here on stand-in variables; the real releases in
``tests/resuming/test_resume_positional_optimizer.py`` (tf221-tfkeras row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ckptcompat.runtime import _positional
from ckptcompat.runtime._slots import list_slots
from ckptcompat.state import OptimizerState


class _Var:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name, self.shape = name, tuple(shape)

    def assign(self, value: Any) -> None:  # a variable-like stand-in
        raise AssertionError("not assigned here")


class _Ops:
    """The few FlavourOps the placement asks (shapes, class, the optimizer's own order)."""

    def __init__(self, ordered: list[Any] | None) -> None:
        self.ordered = ordered

    def shape(self, var: Any) -> tuple[int, ...]:
        return var.shape

    def optimizer_class(self, opt: Any) -> str:
        return "Adafactor"

    def ordered_optimizer_variables(self, opt: Any) -> list[Any] | None:
        return self.ordered


class _Opt:
    _learning_rate = None


def _model() -> dict[str, _Var]:
    return {"dense/kernel": _Var("dense/kernel", (4, 3)), "dense/bias": _Var("dense/bias", (3,))}


def _keras3_live(named: dict[str, _Var]) -> tuple[list[Any], dict[str, dict[str, Any]], Any]:
    """Keras 3: iteration, learning rate, then r, c, v per variable (scalar r, c for the bias)."""
    it, lr = _Var("iteration", ()), _Var("learning_rate", ())
    live = {"dense/kernel": {"r": _Var("r", (4,)), "c": _Var("c", (3,)), "v": _Var("v", (4, 3))},
            "dense/bias": {"r": _Var("r", ()), "c": _Var("c", ()), "v": _Var("v", (3,))}}
    ordered = [it, lr] + [live[n][s] for n in named for s in ("r", "c", "v")]
    opt = _Opt()
    opt._learning_rate = lr
    return ordered, live, opt


def _tf_keras_live() -> tuple[list[Any], dict[str, dict[str, Any]], Any]:
    """tf-keras: iteration, r, c, v of the kernel, v of the bias; the bias placeholders outside."""
    live = {"dense/kernel": {"r": _Var("r", (4,)), "c": _Var("c", (3,)), "v": _Var("v", (4, 3))},
            "dense/bias": {"r": _Var("r", ()), "c": _Var("c", ()), "v": _Var("v", (3,))}}
    k, b = live["dense/kernel"], live["dense/bias"]
    return [_Var("iteration", ()), k["r"], k["c"], k["v"], b["v"]], live, _Opt()


def _values(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    return {"kr": rng.rand(4).astype("f4"), "kc": rng.rand(3).astype("f4"), "kv": rng.rand(4, 3).astype("f4"),
            "bv": rng.rand(3).astype("f4")}


def _state(arrays: list[np.ndarray]) -> OptimizerState:
    return OptimizerState(class_name="Unknown", extra={f"vars/{i}": a for i, a in enumerate(arrays)})


def _place(ordered: list[Any], live: dict[str, dict[str, Any]], opt: Any, arrays: list[np.ndarray]) -> OptimizerState:
    return _positional.slots_from_positions(_Ops(ordered), opt, live, _state(arrays), _model())


def test_a_keras3_file_into_tf_keras_drops_the_zero_placeholders() -> None:
    v, zero = _values(0), np.zeros((), "f4")
    arrays = [np.asarray(4, "i8"), np.asarray(0.01, "f4"), v["kr"], v["kc"], v["kv"], zero, zero, v["bv"]]
    ordered, live, opt = _tf_keras_live()
    placed = _place(ordered, live, opt, arrays)
    assert placed.iterations == 4
    assert {n: sorted(s) for n, s in placed.slots.items()} == {"dense/kernel": ["c", "r", "v"], "dense/bias": ["v"]}
    assert placed.slots["dense/bias"]["v"] is arrays[7] and placed.slots["dense/kernel"]["v"] is arrays[4]


def test_a_nonzero_placeholder_is_not_dropped() -> None:
    v, zero = _values(1), np.zeros((), "f4")
    arrays = [np.asarray(4, "i8"), np.asarray(0.01, "f4"), v["kr"], v["kc"], v["kv"], np.ones((), "f4"), zero, v["bv"]]
    ordered, live, opt = _tf_keras_live()
    st = _state(arrays)
    assert _positional.slots_from_positions(_Ops(ordered), opt, live, st, _model()) is st  # not placed


def test_a_tf_keras_file_into_keras3_leaves_the_live_placeholders() -> None:
    v = _values(2)
    arrays = [np.asarray(4, "i8"), v["kr"], v["kc"], v["kv"], v["bv"]]
    named = _model()
    ordered, live, opt = _keras3_live(named)
    placed = _place(ordered, live, opt, arrays)
    assert placed.iterations == 4
    assert sorted(placed.slots["dense/bias"]) == ["v"] and placed.slots["dense/bias"]["v"] is arrays[4]
    assert placed.slots["dense/kernel"]["r"] is arrays[1]


def test_the_same_generation_keeps_its_order() -> None:
    v, zero = _values(3), np.zeros((), "f4")
    arrays = [np.asarray(4, "i8"), np.asarray(0.01, "f4"), v["kr"], v["kc"], v["kv"], zero, zero, v["bv"]]
    ordered, live, opt = _keras3_live(_model())
    placed = _place(ordered, live, opt, arrays)
    assert sorted(placed.slots["dense/bias"]) == ["c", "r", "v"]


def test_a_missing_real_slot_is_still_refused() -> None:
    v = _values(4)
    arrays = [np.asarray(4, "i8"), v["kr"], v["kc"], v["kv"]]  # the bias's v is not there
    ordered, live, opt = _keras3_live(_model())
    st = _state(arrays)
    assert _positional.slots_from_positions(_Ops(ordered), opt, live, st, _model()) is st


@pytest.mark.parametrize("order", [("_r", "_c", "_v"), ("_c", "_r", "_v")])
def test_tf_keras_placeholders_named_alike_take_their_list_slot(order: tuple[str, ...]) -> None:
    """tf-keras names both placeholders of a bias ``Adafactor/r/dense/bias``: the lists tell r and c."""
    named = _model()
    kernel_slots = {a: _Var(f"Adafactor/{a[1]}/dense/kernel:0", s) for a, s in
                    (("_r", (4,)), ("_c", (3,)), ("_v", (4, 3)))}
    bias_slots = {"_r": _Var("Adafactor/r/dense/bias:0", ()), "_c": _Var("Adafactor/r/dense/bias:0", ()),
                  "_v": _Var("Adafactor/v/dense/bias:0", (3,))}
    opt = type("Opt", (), {})()
    for attr in order:
        setattr(opt, attr, [kernel_slots[attr], bias_slots[attr]])
    index = {id(named["dense/kernel"]): 0, id(named["dense/bias"]): 1}
    found = list_slots(opt, "Adafactor", named, lambda var: index.get(id(var)))
    assert {s: found["dense/bias"][s] for s in "rcv"} == {s: bias_slots[f"_{s}"] for s in "rcv"}
    assert {s: found["dense/kernel"][s] for s in "rcv"} == {s: kernel_slots[f"_{s}"] for s in "rcv"}


def test_slots_named_alike_in_another_class_are_not_renamed(caplog: pytest.LogCaptureFixture) -> None:
    named = {"dense/kernel": _Var("dense/kernel", (4, 3))}
    first, second = _Var("Adam/m/dense/kernel:0", (4, 3)), _Var("Adam/m/dense/kernel:0", (4, 3))
    opt = type("Opt", (), {})()
    opt._momentums, opt._velocities = [first], [second]
    found = list_slots(opt, "Adam", named, lambda var: 0)
    assert found == {"dense/kernel": {"m": second}}  # as before: the later list's, and said so
    assert any("both named" in r.getMessage() for r in caplog.records)
