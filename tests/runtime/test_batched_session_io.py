"""Under TF1 graph execution every variable read or write is a session run, and every new assign
op extends the session: ``capture`` reads all variables through one :meth:`FlavourOps.read_all`
and ``apply`` writes them through one :meth:`FlavourOps.assign_all` (tf.keras / standalone Keras:
``batch_get_value`` / ``batch_set_value``). A stand-in flavour counts the calls; the graph-mode
suites (tests/matrix/test_graph_mode.py, tests/tf1) prove the real sessions bitwise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from ckptcompat.runtime import _engine
from ckptcompat.runtime._flavour_ops import FlavourOps
from ckptcompat.state import Producer, TrainingState


class _Var:
    def __init__(self, value: np.ndarray) -> None:
        self.value = value
        self.shape = value.shape
        self.dtype = value.dtype


class _SessionOps(FlavourOps):
    """A flavour whose variables are read and written only in batches (a TF1 session)."""

    def __init__(self, variables: dict[str, _Var], batched: bool = True) -> None:
        self._vars, self.batched = variables, batched
        self.calls: list[str] = []

    def variables(self, model: Any) -> dict[str, Any]:
        return dict(self._vars)

    def to_numpy(self, var: Any) -> np.ndarray:
        self.calls.append("to_numpy")
        return np.array(var.value, copy=True)

    def assign(self, var: Any, value: np.ndarray) -> None:
        self.calls.append("assign")
        var.value = np.array(value, copy=True)

    def assign_all(self, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
        if not self.batched:
            return super().assign_all(pairs)
        self.calls.append(f"assign_all:{len(pairs)}")
        for var, value in pairs:
            var.value = np.array(value, copy=True)

    def read_all(self, variables: Sequence[Any]) -> list[np.ndarray] | None:
        if not self.batched:
            return None
        self.calls.append(f"read_all:{len(variables)}")
        return [np.array(v.value, copy=True) for v in variables]

    def optimizer_of(self, model: Any) -> Any:
        return None

    def producer(self) -> Producer:
        return Producer(framework="test", versions={})


def _model_vars() -> dict[str, _Var]:
    return {"dense/kernel": _Var(np.arange(6, dtype=np.float32).reshape(2, 3)),
            "dense/bias": _Var(np.array([1.0, 2.0, 3.0], dtype=np.float32))}


def test_capture_reads_every_variable_in_one_batch_and_reuses_buffers() -> None:
    ops = _SessionOps(_model_vars())
    model = SimpleNamespace()
    first = _engine.capture(ops, model)
    assert ops.calls == ["read_all:2"]
    assert first.weights["dense/kernel"].tolist() == [[0, 1, 2], [3, 4, 5]]
    ops._vars["dense/bias"].value = np.array([7.0, 8.0, 9.0], dtype=np.float32)
    buffer = first.weights["dense/bias"]
    again = _engine.capture(ops, model, into=first)
    assert again.weights["dense/bias"] is buffer and buffer.tolist() == [7.0, 8.0, 9.0]
    assert ops.calls == ["read_all:2", "read_all:2"]  # never one read per variable


def test_captured_arrays_do_not_change_with_the_variables() -> None:
    ops = _SessionOps(_model_vars())
    state = _engine.capture(ops, SimpleNamespace())
    ops._vars["dense/kernel"].value[:] = -1
    assert state.weights["dense/kernel"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_apply_writes_every_variable_in_one_batch() -> None:
    ops = _SessionOps(_model_vars())
    state = TrainingState(weights={"dense/kernel": np.ones((2, 3), np.float32),
                                   "dense/bias": np.zeros(3, np.float32)})
    report = _engine.apply(ops, state, SimpleNamespace())
    assert ops.calls == ["assign_all:2"]
    assert sorted(report.restored_weights) == ["dense/bias", "dense/kernel"]
    assert ops._vars["dense/kernel"].value.tolist() == [[1.0] * 3] * 2


def test_without_batches_each_variable_is_read_and_written_on_its_own() -> None:
    ops = _SessionOps(_model_vars(), batched=False)
    state = _engine.capture(ops, SimpleNamespace())
    _engine.apply(ops, state, SimpleNamespace())
    assert ops.calls == ["to_numpy", "to_numpy", "assign", "assign"]
