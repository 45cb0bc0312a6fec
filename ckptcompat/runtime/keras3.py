"""Live Keras 3 (``keras`` >= 3.0, any backend that Keras runs on).

Import this module only when that flavour is running (see :func:`ckptcompat.runtime.detect`).
Keras 3 optimizers keep slot lists (``_momentums``, ``_velocities``, ...) aligned with
``_trainable_variables`` (index via ``_get_variable_index``), create them in
``build(variables)``, and keep the learning rate in the ``_learning_rate`` variable
(``optimizer.lr`` does not exist).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from ckptcompat.runtime import _engine
from ckptcompat.runtime._engine import ApplyReport
from ckptcompat.runtime._walk import json_safe_or_none, walk_variables
from ckptcompat.state import Producer, TrainingState

__all__ = ["ApplyReport", "keras_module", "capture", "apply", "set_learning_rate"]

logger = logging.getLogger(__name__)


def keras_module() -> ModuleType:
    """The ``keras`` (>= 3) module."""
    from ckptcompat._lazy import require

    return require("keras", "use Keras 3")


class _Keras3Ops(_engine.FlavourOps):
    def __init__(self) -> None:
        self._keras: ModuleType | None = None

    @property
    def keras(self) -> ModuleType:
        if self._keras is None:
            self._keras = keras_module()
        return self._keras

    def variables(self, model: Any) -> dict[str, Any]:
        keras = self.keras
        return walk_variables(
            model, is_model=lambda layer: isinstance(layer, keras.Model),
            short_name=lambda v: v.name.rsplit("/", 1)[-1],
            full_name=lambda v: getattr(v, "path", v.name))

    def to_numpy(self, var: Any) -> np.ndarray:
        value = getattr(var, "value", None)
        if hasattr(value, "numpy"):  # TensorFlow backend: EagerTensor.numpy() is one fresh copy
            return np.asarray(value.numpy())
        return np.asarray(self.keras.ops.convert_to_numpy(var))

    def read_view(self, var: Any) -> np.ndarray:
        value = getattr(var, "value", None)
        if hasattr(value, "read_value"):  # TensorFlow backend: a view of the read tensor
            return np.asarray(value.read_value())
        return self.to_numpy(var)

    def assign(self, var: Any, value: np.ndarray) -> None:
        var.assign(np.asarray(value, dtype=np.dtype(str(var.dtype))))

    def live_slots(self, opt: Any, named: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if not getattr(opt, "built", False):
            return {}
        cls = self.optimizer_class(opt)

        def index_of(var: Any) -> int | None:
            try:
                return int(opt._get_variable_index(var))
            except (KeyError, AttributeError):
                for i, tracked in enumerate(getattr(opt, "_trainable_variables", ())):
                    if tracked is var:
                        return i
                return None

        return _engine.list_slots(opt, cls, named, index_of)

    def build_optimizer(self, opt: Any, model: Any) -> None:
        if not getattr(opt, "built", False):
            opt.build(list(model.trainable_variables))

    def ordered_optimizer_variables(self, opt: Any) -> list[Any] | None:
        return list(opt.variables)  # what Optimizer.save_own_variables writes, in order

    def _iterations_var(self, opt: Any) -> Any:
        var = getattr(opt, "_iterations", None)  # 3.x with gradient accumulation: raw counter
        return opt.iterations if var is None else var

    def read_iterations(self, opt: Any) -> int:
        return int(self.keras.ops.convert_to_numpy(self._iterations_var(opt)))

    def write_iterations(self, opt: Any, value: int) -> None:
        self._iterations_var(opt).assign(value)

    def raw_learning_rate(self, opt: Any) -> Any:
        raw = opt._learning_rate
        if isinstance(raw, self.keras.Variable):
            return _VarView(raw, self.keras)
        return raw

    def write_learning_rate(self, opt: Any, value: float) -> None:
        raw = opt._learning_rate
        if isinstance(raw, self.keras.Variable):
            raw.assign(np.asarray(value, dtype=np.dtype(str(raw.dtype))))
        else:
            opt.learning_rate = float(value)

    def is_schedule(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.optimizers.schedules.LearningRateSchedule)

    def serialize_schedule(self, obj: Any) -> dict[str, Any] | None:
        if not self.is_schedule(obj):
            return None
        return json_safe_or_none(self.keras.optimizers.schedules.serialize(obj),
                                 "learning-rate schedule")

    def producer(self) -> Producer:
        keras = self.keras
        versions = {"keras": str(keras.__version__)}
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            versions["tensorflow"] = str(tf.__version__)
        return Producer(framework="keras", versions=versions)


class _VarView:
    """A Keras 3 variable seen through ``.numpy()`` on every backend."""

    def __init__(self, var: Any, keras: ModuleType) -> None:
        self._var, self._keras = var, keras

    def numpy(self) -> np.ndarray:
        return np.asarray(self._keras.ops.convert_to_numpy(self._var))


_OPS = _Keras3Ops()


def capture(model: Any, *, include_optimizer: bool = True,
            into: TrainingState | None = None) -> TrainingState:
    """Weights (canonical names, model order) and optimizer state of a live Keras 3 model.

    Never changes the model or its optimizer (no variable is created or assigned). ``into``:
    an earlier capture whose arrays are reused (see :func:`_engine.capture`).
    """
    return _engine.capture(_OPS, model, include_optimizer=include_optimizer, into=into)


def apply(state: TrainingState, model: Any, *, partial: bool = False) -> ApplyReport:
    """Assign ``state`` to a live Keras 3 model by canonical name and shape.

    Builds the optimizer first when needed. Every misfit is collected and raised together
    in one :class:`~ckptcompat.errors.IncompatibleStateError` before anything is assigned,
    unless ``partial=True`` (then what fits is restored and the rest reported).
    """
    return _engine.apply(_OPS, state, model, partial=partial)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """Set the learning rate in place (Keras 3 has no ``optimizer.lr``); returns the old value."""
    return _engine.set_learning_rate(_OPS, model_or_optimizer, value)
