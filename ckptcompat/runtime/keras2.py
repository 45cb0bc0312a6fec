"""Live Keras 2: ``tf.keras`` of TF <= 2.15, and the ``tf_keras`` package on TF >= 2.16.

Import this module only when that flavour is running (see :func:`ckptcompat.runtime.detect`).
Two optimizer families exist in Keras 2:

* ``OptimizerV2`` (every optimizer before TF 2.11, ``tf.keras.optimizers.legacy.*`` after):
  hyper-parameters in ``_hyper``, slots via ``get_slot_names()`` / ``get_slot(var, name)``,
  created lazily by ``_create_all_weights(var_list)`` (tf.keras 2.2+; before, its steps),
  ``iterations`` created on first access;
* the TF 2.11+ optimizers (``tf.keras.optimizers.Adam`` ...; also tf-keras): slot lists
  such as ``_momentums`` indexed through ``_index_dict[_var_key(var)]``, created by
  ``build(var_list)``, learning rate in the ``_learning_rate`` variable.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ckptcompat.runtime import _engine, callback_base, keras_module, keras_source
from ckptcompat.runtime._engine import ApplyReport
from ckptcompat.runtime._flavour_ops import session_assign_all, session_read_all
from ckptcompat.runtime._keras2_tf1_adam import tf1_adam_class
from ckptcompat.runtime._walk import walk_variables
from ckptcompat.state import Producer, TrainingState

__all__ = ["NAME", "KERAS_MAJOR", "NATIVE_FORMAT", "NATIVE_FILE", "DATASET_LEN_READ_ONCE", "RETRY_WITH_OWN_LAYERS",
           "ApplyReport", "keras_module", "callback_base", "dataset_base", "config_for_running",
           "model_from_config", "find_optimizer_class", "tf1_adam_class", "variables",
           "variable_shapes", "capture", "apply", "learning_rate", "set_learning_rate",
           "start_fit_at", "clear_fit_start", "epoch_length_fixed", "data_length_policy", "read_variable", "write_variable"]

logger = logging.getLogger(__name__)

#: Flavour name (see :func:`ckptcompat.runtime.detect`).
NAME = "keras2"
#: Keras generation, for the argument translation tables of :mod:`ckptcompat.names.arguments`.
KERAS_MAJOR = 2
#: Format (:mod:`ckptcompat.formats`) and file name of a full model that this Keras loads natively.
NATIVE_FORMAT = "keras_h5"
NATIVE_FILE = "model.h5"
#: False: Keras 2 asks a ``Sequence`` for ``len()`` at every epoch start, before
#: ``on_epoch_begin`` (a resumed data object shortens its epoch from ``load_state_dict`` on).
DATASET_LEN_READ_ONCE = False
#: True: a config this Keras's deserializer cannot rebuild is tried once more with its own layer
#: classes given by name (tf-keras does not register SpectralNormalization; resuming/from_config.py).
RETRY_WITH_OWN_LAYERS = True


def _uses_tf_keras() -> bool:
    return keras_source() == "tf_keras"


def dataset_base() -> type:
    """``keras.utils.Sequence``: the base class of ckptcompat's data objects on Keras 2."""
    base: type = keras_module().utils.Sequence
    return base


def model_from_config(config: Mapping[str, Any], custom_objects: Mapping[str, Any]) -> Any:
    """A new model from a Keras 2 spelled config (``{"class_name", "config", ...}``)."""
    return keras_module().models.model_from_config(
        {"class_name": config["class_name"], "config": config["config"]},
        custom_objects=dict(custom_objects))


def config_for_running(model_config: Mapping[str, Any], written_by_keras3: bool | None = None,
                       path: str | None = None) -> dict[str, Any]:
    """``model_config`` of any generation in Keras 2 spelling. The downgrade rules are no-ops
    on Keras 2 spellings and also strip what newer tf-keras releases write that older ones
    refuse (InputLayer ``optional``, ...); ``written_by_keras3`` is not needed; ``path``
    names the checkpoint in errors."""
    from ckptcompat.names.config_downgrade import downgrade_model_config
    from ckptcompat.names.configs.keras2_releases import for_keras2_release

    version = str(getattr(keras_module(), "__version__", ""))
    return for_keras2_release(downgrade_model_config(model_config, path), version, path)


def _create_v2_weights(opt: Any, var_list: list[Any]) -> None:
    """An OptimizerV2's iterations, hypers and slots (idempotent: existing slots are kept), created
    as ``apply_gradients`` creates them: inside the optimizer's name scope (``Adam/iter``,
    ``Adam/dense/kernel/m``, the names a native ``.h5`` save then writes); ``_create_all_weights`` from
    tf.keras 2.2 on, before it the steps it groups."""
    import tensorflow as tf

    create = getattr(opt, "_create_all_weights", None)
    with tf.name_scope(opt._name), tf.init_scope():
        if create is not None:
            create(var_list)
            return
        _ = opt.iterations
        opt._create_hypers()
        opt._create_slots(var_list)


def find_optimizer_class(name: str, legacy: bool = False) -> type | None:
    """The optimizer class ``name``; ``legacy``: the ``OptimizerV2`` one of
    ``optimizers.legacy`` where it exists (the checkpoint's was a legacy optimizer)."""
    optimizers = keras_module().optimizers
    space = getattr(optimizers, "legacy", None) if legacy else None
    cls = getattr(space, name, None) if space is not None else None
    return cls or getattr(optimizers, name, None)


def _graph_mode() -> bool:
    """True under TF1-style graph execution (TF 1.x by default, or after
    ``tf.compat.v1.disable_eager_execution()``): variables are read and written through the
    Keras session, not ``.numpy()`` / ``.assign()``."""
    import tensorflow as tf

    return not tf.executing_eagerly()


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
        if _graph_mode():  # TF 1.x graph execution: the value comes from a session run
            return np.asarray(self.keras.backend.get_value(var))
        return np.asarray(var.numpy())

    def read_view(self, var: Any) -> np.ndarray:
        if hasattr(var, "read_value") and not _graph_mode():  # a view of the read tensor (copy-on-write in TF)
            return np.asarray(var.read_value())
        return self.to_numpy(var)

    def assign(self, var: Any, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=var.dtype.as_numpy_dtype)
        if _graph_mode():  # an assign op run in the Keras session (var.assign would only build it)
            self.keras.backend.set_value(var, value)
        else:
            var.assign(value)

    def assign_all(self, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
        if _graph_mode():
            session_assign_all(self.keras.backend, pairs)
        else:
            super().assign_all(pairs)

    def optimizer_config(self, opt: Any) -> dict[str, Any]:
        if not (_graph_mode() and _is_v2(opt) and getattr(opt, "_hypers_created", False)):
            return super().optimizer_config(opt)  # (hypers not created yet: get_config creates them)
        # graph execution: get_config() reads each hyper-parameter variable in a session run of its
        # own; read them in one and let get_config() serialize the values
        hyper = opt._hyper  # noqa: SLF001 -- what OptimizerV2's get_config serializes
        tensors = {name: value for name, value in hyper.items() if hasattr(value, "op") and hasattr(value, "dtype")}
        if not tensors:
            return super().optimizer_config(opt)
        values = session_read_all(self.keras.backend, list(tensors.values())) or []
        saved = dict(hyper)
        try:
            hyper.update((name, value[()]) for name, value in zip(tensors, values))  # as get_value: a scalar
            return super().optimizer_config(opt)
        finally:
            hyper.clear()
            hyper.update(saved)

    def read_all(self, variables: Sequence[Any]) -> list[np.ndarray] | None:
        return session_read_all(self.keras.backend, variables) if _graph_mode() else None

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
            _create_v2_weights(opt, var_list)
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
        return 0 if var is None else int(self.to_numpy(var))

    def write_iterations(self, opt: Any, value: int) -> None:
        self.assign(opt.iterations, np.asarray(value))

    def stored_learning_rate(self, opt: Any) -> Any:
        if _is_v2(opt):
            return opt._hyper["learning_rate"]
        return opt._learning_rate

    def is_variable(self, obj: Any) -> bool:
        return hasattr(obj, "assign") and hasattr(obj, "numpy")

    def set_plain_learning_rate(self, opt: Any, value: float) -> None:
        if _is_v2(opt):  # hypers not created yet: the plain number is stored
            opt._set_hyper("learning_rate", value)
        else:
            opt.learning_rate = value

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


def read_variable(var: Any) -> np.ndarray:
    """A fresh copy of a live variable's value (under TF1 graph execution, read in the session)."""
    return _OPS.to_numpy(var)


def write_variable(var: Any, value: Any) -> None:
    """Assign ``value`` to a live variable (under TF1 graph execution, in the session)."""
    _OPS.assign(var, np.asarray(value))


def variables(model: Any) -> dict[str, Any]:
    """Every live variable of a Keras 2 model by canonical name, in model order."""
    return _OPS.variables(model)


def variable_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every variable of a live Keras 2 model."""
    return {name: _OPS.shape(var) for name, var in _OPS.variables(model).items()}


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


def learning_rate(model_or_optimizer: Any) -> float | None:
    """The optimizer's current fixed learning rate (``optimizer.lr`` too); None for a schedule."""
    return _engine.learning_rate(_OPS, model_or_optimizer)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """Set the learning rate in place (works where ``lr=`` is ignored); returns the old value."""
    return _engine.set_learning_rate(_OPS, model_or_optimizer, value)


class _StartAt:
    """What Keras 2's ``fit`` asks after ``on_train_begin`` (``model._training_state``, the hook
    of its own ``BackupAndRestore``): the epoch to start at and the step: 0 where a resumed data
    object serves only the rest of an interrupted epoch, the saved step where ``fit`` reads the
    epoch's length once (:func:`epoch_length_fixed`)."""

    def __init__(self, epoch: int, step: int = 0) -> None:
        self.epoch = int(epoch)
        self.step = int(step)

    def maybe_load_initial_counters_from_ckpt(self, steps_per_epoch: Any, initial_epoch: int,
                                              mode: Any = None) -> tuple[int, int]:
        return self.epoch, self.step

    def maybe_load_initial_epoch_from_ckpt(self, initial_epoch: int, mode: Any = None) -> int:
        return self.epoch  # tf.keras <= 2.9 and the v1 training loop


def start_fit_at(model: Any, epoch: int, step: int = 0) -> bool:
    """Make the running ``fit`` start at ``epoch`` (and at batch ``step`` of it) (call in
    ``on_train_begin``); False when this Keras has no such hook."""
    if not hasattr(model, "_training_state"):
        return False
    model._training_state = _StartAt(epoch, step)  # noqa: SLF001 -- Keras 2's own fit hook
    return True


def epoch_length_fixed(model: Any) -> bool:
    """True when this ``fit`` reads the data's length once for all epochs: under a
    ``tf.distribute`` strategy tf.keras 2.10+ distributes the dataset and never infers an epoch's
    steps again, so a resumed epoch cannot be served shortened; ``fit`` starts it at the saved
    step instead (:func:`start_fit_at`). Older tf.keras honour only the epoch there: their
    ``DataHandler`` is matched to the shortened data (:func:`data_length_policy`)."""
    return getattr(model, "_distribution_strategy", None) is not None and data_length_policy() == "every_epoch"


def data_length_policy() -> str:
    """When this tf.keras's ``fit`` reads a data object's length (:mod:`._fit_loops`); under
    graph execution every release runs the v1 loops, which read it once for good."""
    import tensorflow as tf

    from ckptcompat.runtime._fit_loops import tf_keras_policy

    if not tf.executing_eagerly():
        return "fixed"
    return tf_keras_policy(getattr(keras_module(), "__version__", ""))


def clear_fit_start(model: Any) -> None:
    """Undo :func:`start_fit_at` (at ``on_train_end``), so the next ``fit`` starts as asked."""
    if isinstance(getattr(model, "_training_state", None), _StartAt):
        model._training_state = None  # noqa: SLF001
