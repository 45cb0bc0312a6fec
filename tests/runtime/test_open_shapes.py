"""A live variable may leave a dimension open (tf-keras's ``Discretization`` keeps its bin summary
in a ``(2, None)`` variable); shapes read as ``-1`` there and fit any length (``_arrays.shape_fits``),
instead of a ``TypeError`` from ``int(None)``. tests/names/test_names_config_layers.py restores the
real layer's file in tf-keras."""

from __future__ import annotations

from types import SimpleNamespace

from ckptcompat._arrays import shape_fits
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
