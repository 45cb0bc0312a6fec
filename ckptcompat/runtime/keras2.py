"""Live Keras 2: ``tf.keras`` of TF <= 2.15, and the ``tf_keras`` package on TF >= 2.16.

Import this module only when that flavour is running (see :func:`ckptcompat.runtime.detect`).
Two optimizer families exist in Keras 2:

* ``OptimizerV2`` (every optimizer before TF 2.11, ``tf.keras.optimizers.legacy.*`` after):
  hyper-parameters in ``_hyper``, slots via ``get_slot_names()`` / ``get_slot(var, name)``,
  created lazily by ``_create_all_weights(var_list)``, ``iterations`` created on first access;
* the TF 2.11+ optimizers (``tf.keras.optimizers.Adam`` ...; also tf-keras): slot lists
  such as ``_momentums`` indexed through ``_index_dict[_var_key(var)]``, created by
  ``build(var_list)``, learning rate in the ``_learning_rate`` variable.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

import numpy as np

from ckptcompat.runtime import _engine
from ckptcompat.runtime._engine import ApplyReport
from ckptcompat.runtime._walk import walk_variables
from ckptcompat.state import Producer, TrainingState

__all__ = ["ApplyReport", "keras_module", "capture", "apply", "set_learning_rate"]

logger = logging.getLogger(__name__)


def _uses_tf_keras() -> bool:
    from ckptcompat.runtime import _tf_version  # local: avoid an import cycle at load time

    version = _tf_version()
    return version is not None and version >= (2, 16)


def keras_module() -> ModuleType:
    """``tf.keras`` (TF <= 2.15) or ``tf_keras`` (TF >= 2.16 with TF_USE_LEGACY_KERAS=1)."""
    from ckptcompat._lazy import require

    if _uses_tf_keras():
        return require("tf_keras", "use Keras 2 on TensorFlow >= 2.16")
    return require("tensorflow", "use tf.keras").keras


def _is_v2(opt: Any) -> bool:
    """True for OptimizerV2 (pre-2.11 optimizers and ``optimizers.legacy.*``)."""
    return hasattr(opt, "_hyper") and hasattr(opt, "get_slot_names")


class _Keras2Ops(_engine.FlavourOps):
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
            short_name=lambda v: v.name.split(":")[0].rsplit("/", 1)[-1],
            full_name=lambda v: v.name)

    def to_numpy(self, var: Any) -> np.ndarray:
        return np.asarray(var.numpy())

    def read_view(self, var: Any) -> np.ndarray:
        if hasattr(var, "read_value"):  # a view of the read tensor (copy-on-write in TF)
            return np.asarray(var.read_value())
        return self.to_numpy(var)

    def assign(self, var: Any, value: np.ndarray) -> None:
        var.assign(np.asarray(value, dtype=var.dtype.as_numpy_dtype))

    def live_slots(self, opt: Any, named: dict[str, Any]) -> dict[str, dict[str, Any]]:
        cls = self.optimizer_class(opt)
        if _is_v2(opt):
            from ckptcompat.names.variables import canonical_slot

            out: dict[str, dict[str, Any]] = {}
            for name, var in named.items():
                for raw in opt.get_slot_names():
                    try:
                        slot = opt.get_slot(var, raw)
                    except KeyError:
                        continue
                    out.setdefault(name, {})[canonical_slot(cls, raw)] = slot
            return out
        index = getattr(opt, "_index_dict", None)
        if not index:
            return {}
        return _engine.list_slots(opt, cls, named, lambda v: index.get(opt._var_key(v)))

    def build_optimizer(self, opt: Any, model: Any) -> None:
        var_list = list(model.trainable_variables)
        if _is_v2(opt):
            opt._create_all_weights(var_list)  # idempotent: existing slots are kept
            return
        if getattr(opt, "_built", False):
            return
        import tensorflow as tf

        # as apply_gradients does: inside the optimizer's name scope, so that the slots are
        # named "Adam/m/dense/kernel" and a later native .h5 save names them as Keras would
        with tf.name_scope(opt.name), tf.init_scope():
            opt.build(var_list)

    def ordered_optimizer_variables(self, opt: Any) -> list[Any] | None:
        if _is_v2(opt):
            return None  # OptimizerV2 has no weights-file layout of its own
        variables = opt.variables
        return list(variables() if callable(variables) else variables)

    def read_iterations(self, opt: Any) -> int:
        var = opt._iterations  # OptimizerV2 creates it on first `.iterations` access
        return 0 if var is None else int(var.numpy())

    def write_iterations(self, opt: Any, value: int) -> None:
        opt.iterations.assign(value)

    def raw_learning_rate(self, opt: Any) -> Any:
        if _is_v2(opt):
            return opt._hyper["learning_rate"]
        return opt._learning_rate

    def write_learning_rate(self, opt: Any, value: float) -> None:
        raw = self.raw_learning_rate(opt)
        if hasattr(raw, "assign"):
            raw.assign(np.asarray(value, dtype=raw.dtype.as_numpy_dtype))
        elif _is_v2(opt):  # hypers not created yet: the plain number is stored
            opt._set_hyper("learning_rate", float(value))
        else:
            opt.learning_rate = float(value)

    def is_schedule(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.optimizers.schedules.LearningRateSchedule)

    def serialize_schedule(self, obj: Any) -> dict[str, Any] | None:
        if not self.is_schedule(obj):
            return None
        from ckptcompat.runtime._walk import json_safe_or_none

        return json_safe_or_none(self.keras.optimizers.schedules.serialize(obj),
                                 "learning-rate schedule")

    def producer(self) -> Producer:
        import tensorflow as tf

        versions = {"tensorflow": str(tf.__version__)}
        if _uses_tf_keras():
            versions["keras"] = str(self.keras.__version__)
            return Producer(framework="tf-keras", versions=versions)
        keras_version = getattr(self.keras, "__version__", None)
        if keras_version is None:
            try:
                keras_version = importlib.import_module("keras").__version__
            except ImportError:
                keras_version = None
        if keras_version:
            versions["keras"] = str(keras_version)
        return Producer(framework="tf.keras", versions=versions)


_OPS = _Keras2Ops()


def capture(model: Any, *, include_optimizer: bool = True,
            into: TrainingState | None = None) -> TrainingState:
    """Weights (canonical names, model order) and optimizer state of a live Keras 2 model.

    Never changes the model or its optimizer (no variable is created or assigned). ``into``:
    an earlier capture whose arrays are reused (see :func:`_engine.capture`).
    """
    return _engine.capture(_OPS, model, include_optimizer=include_optimizer, into=into)


def apply(state: TrainingState, model: Any, *, partial: bool = False) -> ApplyReport:
    """Assign ``state`` to a live Keras 2 model by canonical name and shape.

    Builds the optimizer's slots first when needed. Every misfit is collected and raised
    together in one :class:`~ckptcompat.errors.IncompatibleStateError` before anything is
    assigned, unless ``partial=True`` (then what fits is restored and the rest reported).
    """
    return _engine.apply(_OPS, state, model, partial=partial)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """Set the learning rate in place (works where ``lr=`` is ignored); returns the old value."""
    return _engine.set_learning_rate(_OPS, model_or_optimizer, value)
