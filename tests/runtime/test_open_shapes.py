"""A live variable may leave a dimension open (tf-keras's ``Discretization`` keeps its bin summary
in a ``(2, None)`` variable); shapes read as ``-1`` there and fit any length (``_arrays.shape_fits``),
instead of a ``TypeError`` from ``int(None)``. tests/names/test_names_config_layers.py restores the
real layer's file in tf-keras."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ckptcompat._arrays import holds_nothing, shape_fits
from ckptcompat.runtime._flavour_ops import FlavourOps


def test_an_open_dimension_reads_as_minus_one() -> None:
    ops = FlavourOps.__new__(FlavourOps)
    assert ops.shape(SimpleNamespace(shape=(2, None))) == (2, -1)
    assert ops.shape(SimpleNamespace(shape=(3, 4))) == (3, 4)


def test_an_open_dimension_fits_any_length_and_nothing_else_does() -> None:
    assert shape_fits((2, 5), (2, -1)) and shape_fits((2, 0), (2, -1))
    assert not shape_fits((3, 5), (2, -1))
    assert not shape_fits((2, 5, 1), (2, -1))
    assert shape_fits((3, 4), (3, 4)) and not shape_fits((4, 3), (3, 4))
    assert not shape_fits((2, -1), (2, 5))  # only the live side may be open


def test_a_variable_holding_no_element_is_told_by_its_shape_or_its_value() -> None:
    read: list[int] = []

    def value(shape: tuple[int, ...]) -> Any:
        read.append(1)
        return np.zeros(shape)

    assert holds_nothing((2, 0), lambda: value((2, 0))) and not read  # the static shape says it
    assert holds_nothing((2, -1), lambda: value((2, 0))) and len(read) == 1  # open: the value says it
    assert not holds_nothing((2, -1), lambda: value((2, 3)))
    assert not holds_nothing((3, 4), lambda: value((3, 4))) and len(read) == 2  # closed: never read


class _Ops:
    """The two FlavourOps methods the matching uses, on plain arrays."""

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        self._vars = variables

    def variables(self, model: Any) -> dict[str, np.ndarray]:
        return self._vars

    def shape(self, var: np.ndarray) -> tuple[int, ...]:
        return tuple(var.shape)

    def to_numpy(self, var: np.ndarray) -> np.ndarray:
        return var


def test_empty_tensors_are_left_out_of_matching_on_both_sides() -> None:
    """tf-keras's unadapted Discretization keeps a (2, 0) summary Keras 3 has no variable for, and the
    other way round: neither side's empty tensor is a misfit (resume of such .h5 files is proven in
    tests/names/test_names_config_layers.py, Keras 3 reading tf-keras's Discretization.h5)."""
    from ckptcompat.resuming.assign import _live_shapes, _without_empty
    from ckptcompat.state import TrainingState

    rt = SimpleNamespace(_OPS=_Ops({"dense/kernel": np.ones((4, 2)), "disc/summary": np.zeros((2, 0))}))
    live = _live_shapes(rt, model=None)
    assert live == {"dense/kernel": (4, 2)}
    state = TrainingState(weights={"dense/kernel": np.ones((4, 2)), "other/summary": np.zeros((2, 0)),
                                   "odd/empty": np.zeros((0,))})
    assert list(_without_empty(state, live, "f.h5").weights) == ["dense/kernel"]
    kept = TrainingState(weights={"dense/kernel": np.zeros((0, 2))})  # names a live variable: a misfit to report
    assert list(_without_empty(kept, live, "f.h5").weights) == ["dense/kernel"]
