"""Live standalone Keras <= 2.3 (the multi-backend ``keras`` package on TensorFlow 1.x; tested
with 2.3.1 and 2.2.4).

Its models are not ``tf.keras`` models: ``import keras`` of Keras < 2.4 is its own library,
run on the TensorFlow backend in graph mode. Chosen by :func:`ckptcompat.runtime.flavour_for`
when a model of that package is given (``resume(path, model=...)``, the callbacks); never
detected otherwise, since ``tf.keras`` is what TensorFlow gives user code.

Its optimizers keep no per-variable slot names: ``get_updates`` creates one list of slots per
kind, each in the order of the trainable weights, and ``optimizer.weights`` holds them after
the step counter (Keras 2.3: ``[iterations, m_0 .. m_n, v_0 .. v_n, vhat_0 .. vhat_n]``;
Keras 2.2: unnamed ``Variable_k``, some without ``iterations``). The slot lists are created when
the training function is built (``model._make_train_function``). Variables are read and written
through the backend's session (``K.get_value`` / ``K.set_value``).
"""

from __future__ import annotations

import logging
import weakref
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ckptcompat.errors import IncompatibleStateError, MissingDependencyError
from ckptcompat.runtime import _engine
from ckptcompat.runtime import standalone_keras_module as keras_module
from ckptcompat.runtime._engine import ApplyReport
from ckptcompat.runtime._flavour_ops import session_assign_all, session_read_all
from ckptcompat.runtime._walk import walk_variables
from ckptcompat.state import Producer, TrainingState

__all__ = ["NAME", "KERAS_MAJOR", "NATIVE_FORMAT", "NATIVE_FILE", "DATASET_LEN_READ_ONCE", "RETRY_WITH_OWN_LAYERS", "ApplyReport", "is_standalone_model", "keras_module",
           "callback_base", "dataset_base", "variables", "variable_shapes", "capture", "apply",
           "learning_rate", "set_learning_rate", "read_variable", "write_variable",
           "start_fit_at", "clear_fit_start", "epoch_length_fixed", "data_length_policy"]

logger = logging.getLogger(__name__)

#: Flavour name (see :func:`ckptcompat.runtime.flavour_for`).
NAME = "keras_standalone"
#: Keras generation, for the argument translation tables of :mod:`ckptcompat.names.arguments`.
KERAS_MAJOR = 2
#: Format (:mod:`ckptcompat.formats`) and file name of a full model that this Keras loads natively.
NATIVE_FORMAT = "keras_h5"
NATIVE_FILE = "model.h5"
#: False: ``fit`` asks a ``Sequence`` for ``len()`` at every epoch start.
DATASET_LEN_READ_ONCE = False
#: False: standalone Keras rebuilds with its own deserializer only (see keras2.RETRY_WITH_OWN_LAYERS).
RETRY_WITH_OWN_LAYERS = False
#: The last standalone release before ``keras`` became a front of ``tf.keras`` (2.4).
_LAST = (2, 3)


def _version(text: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in str(text).split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def is_standalone_model(model: Any) -> bool:
    """True when ``model`` (or an optimizer) is an object of standalone Keras <= 2.3 or of a
    subclass of one of its classes (imported already: nothing is imported here). Raises
    :class:`MissingDependencyError` when that Keras runs on a backend other than TensorFlow."""
    import sys

    if not any((getattr(c, "__module__", None) or "").split(".")[0] == "keras" for c in type(model).__mro__):
        return False
    keras = sys.modules.get("keras")
    if keras is None or _version(getattr(keras, "__version__", "9")) > _LAST:
        return False
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    if callable(backend) and backend() != "tensorflow":
        raise MissingDependencyError(
            f"standalone Keras runs on the {backend()} backend; ckptcompat supports it on TensorFlow",
            hint="set KERAS_BACKEND=tensorflow (or \"backend\" in ~/.keras/keras.json)")
    return True


def callback_base() -> type:
    """``keras.callbacks.Callback`` of standalone Keras."""
    base: type = keras_module().callbacks.Callback
    return base


def dataset_base() -> type:
    """``keras.utils.Sequence`` of standalone Keras."""
    base: type = keras_module().utils.Sequence
    return base


class _StandaloneOps(_engine.FlavourOps):
    def __init__(self) -> None:
        self._keras: ModuleType | None = None
        # optimizer -> the trainable weights its slot lists follow (its model's, at compile)
        self._params: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()

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
        return np.array(self.keras.backend.get_value(var), copy=True)

    def assign(self, var: Any, value: np.ndarray) -> None:
        self.keras.backend.set_value(var, np.asarray(value, dtype=var.dtype.as_numpy_dtype))

    def assign_all(self, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
        session_assign_all(self.keras.backend, pairs)

    def read_all(self, variables: Sequence[Any]) -> list[np.ndarray] | None:
        return session_read_all(self.keras.backend, variables)

    def optimizer_of(self, model: Any) -> Any | None:
        opt = getattr(model, "optimizer", None)
        if opt is not None:
            params = getattr(model, "_collected_trainable_weights", None)
            self._params[opt] = list(params if params is not None else model.trainable_weights)
        return opt

    def _slot_lists(self, opt: Any) -> list[list[Any]]:
        """The optimizer's slot lists, one per kind, each in trainable-weight order ([] before
        the training function is built)."""
        params = self._params.get(opt, [])
        scalars = {id(v) for v in vars(opt).values() if self.is_variable(v)}
        try:
            weights = list(opt.weights)
        except (AttributeError, NotImplementedError) as exc:  # keras.optimizers.TFOptimizer
            raise IncompatibleStateError(
                f"the {type(opt).__name__} optimizer does not list its variables ({exc})",
                hint="compile the model with a keras.optimizers optimizer, or pass "
                     "optimizer=\"reset\" / save without the optimizer") from exc
        rest = [w for w in weights if id(w) not in scalars]
        if not rest:
            return []
        if not params or len(rest) % len(params):
            raise IncompatibleStateError(
                f"the {type(opt).__name__} optimizer holds {len(rest)} slot variables, which do not "
                f"split into lists over the model's {len(params)} trainable weights",
                hint="compile the model, build its training function and pass it as model=")
        n = len(params)
        return [rest[i * n:(i + 1) * n] for i in range(len(rest) // n)]

    def live_slots(self, opt: Any, named: dict[str, Any]) -> dict[str, dict[str, Any]]:
        from ckptcompat.names.variables import CANONICAL_SLOTS

        cls = self.optimizer_class(opt)
        lists = self._slot_lists(opt)
        kinds = list(CANONICAL_SLOTS.get(cls, ()))
        if len(lists) > len(kinds):  # a custom optimizer: its lists by position, named so
            logger.info("%s: %d slot lists, %d known by meaning; the rest named slot<k>",
                        cls, len(lists), len(kinds))
            kinds += [f"slot{k}" for k in range(len(kinds), len(lists))]
        name_of = {id(var): name for name, var in named.items()}
        params = self._params.get(opt, [])
        out: dict[str, dict[str, Any]] = {}
        misfits = []
        for kind, slots in zip(kinds, lists):
            if kind == "vhat" and not getattr(opt, "amsgrad", False):
                continue  # Adam's (1,) placeholders without amsgrad: no state
            for param, slot in zip(params, slots):
                name = name_of.get(id(param), param.name)
                if self.shape(slot) != self.shape(param):
                    misfits.append(f"{name}/{kind}: slot {self.shape(slot)}, weight {self.shape(param)}")
                    continue
                out.setdefault(name, {})[kind] = slot
        if misfits:
            raise IncompatibleStateError(
                f"the {cls} optimizer's slot lists do not follow the model's trainable weights",
                misfits, hint="compile the model once, with this optimizer, and pass it as model=")
        return out

    def build_optimizer(self, opt: Any, model: Any) -> None:
        if not self._slot_lists(opt) and hasattr(model, "_make_train_function"):
            model._make_train_function()  # noqa: SLF001 -- where Keras <= 2.3 creates the slots

    def read_iterations(self, opt: Any) -> int:
        var = getattr(opt, "iterations", None)
        return 0 if var is None else int(self.to_numpy(var))

    def write_iterations(self, opt: Any, value: int) -> None:
        var = getattr(opt, "iterations", None)
        if var is None:
            raise IncompatibleStateError(f"the {type(opt).__name__} optimizer has no step counter",
                                         hint="compile the model with a keras.optimizers optimizer")
        self.assign(var, np.asarray(value))

    def stored_learning_rate(self, opt: Any) -> Any:
        for attr in ("learning_rate", "lr"):  # Keras 2.3; `lr` in Keras <= 2.2
            value = getattr(opt, attr, None)
            if value is not None:
                return value
        raise IncompatibleStateError(f"the {type(opt).__name__} optimizer has no learning rate",
                                     hint="compile the model with a keras.optimizers optimizer")

    def is_variable(self, obj: Any) -> bool:
        import tensorflow as tf

        return isinstance(obj, tf.Variable)

    def is_schedule(self, obj: Any) -> bool:
        return False  # standalone Keras decays the rate with `decay`, a hyper-parameter

    def serialize_schedule(self, obj: Any) -> dict[str, Any] | None:
        return None

    def producer(self) -> Producer:
        import tensorflow as tf

        return Producer(framework="keras", versions={"keras": str(self.keras.__version__),
                                                     "tensorflow": str(tf.__version__)})


_OPS = _StandaloneOps()


def read_variable(var: Any) -> np.ndarray:
    """A fresh copy of a live variable's value, read in the backend's session."""
    return _OPS.to_numpy(var)


def write_variable(var: Any, value: Any) -> None:
    """Assign ``value`` to a live variable in the backend's session."""
    _OPS.assign(var, np.asarray(value))


def variables(model: Any) -> dict[str, Any]:
    """Every live variable of a standalone Keras model by canonical name, in model order."""
    return _OPS.variables(model)


def variable_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every variable of a live standalone Keras model."""
    return {name: _OPS.shape(var) for name, var in _OPS.variables(model).items()}


def capture(model: Any, *, include_optimizer: bool = True,
            into: TrainingState | None = None) -> TrainingState:
    """Weights and optimizer state of a live standalone Keras model (see :func:`_engine.capture`)."""
    return _engine.capture(_OPS, model, include_optimizer=include_optimizer, into=into)


def apply(state: TrainingState, model: Any, *, partial: bool = False) -> ApplyReport:
    """Assign ``state`` to a live standalone Keras model by canonical name and shape; the
    optimizer's slot lists are created first (its training function built) when needed."""
    return _engine.apply(_OPS, state, model, partial=partial)


def learning_rate(model_or_optimizer: Any) -> float | None:
    """The optimizer's current learning rate."""
    return _engine.learning_rate(_OPS, model_or_optimizer)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """Set the learning rate in place; returns the old value."""
    return _engine.set_learning_rate(_OPS, model_or_optimizer, value)


def start_fit_at(model: Any, epoch: int, step: int = 0) -> bool:
    """False: standalone Keras's ``fit`` has no hook for its first epoch (pass
    ``fit(initial_epoch=...)``)."""
    return False


def clear_fit_start(model: Any) -> None:
    """Nothing to undo (see :func:`start_fit_at`)."""


def epoch_length_fixed(model: Any) -> bool:
    """False: standalone Keras has no ``tf.distribute`` path (see :func:`data_length_policy`)."""
    return False


def data_length_policy() -> str:
    """Keras 2.3 asks the data for its length at every epoch, 2.2 once per ``fit``."""
    from ckptcompat.runtime._fit_loops import standalone_policy

    return standalone_policy(getattr(keras_module(), "__version__", ""))
