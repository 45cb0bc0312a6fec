"""Live Keras 3 (``keras`` >= 3.0, any backend that Keras runs on).

Import this module only when that flavour is running (see :func:`ckptcompat.runtime.detect`).
Backend-agnostic: values are read with ``keras.ops.convert_to_numpy`` (one host copy; never a
tensor's own ``.numpy()``, which torch refuses for a parameter that requires grad) and set with
the variable's own ``assign``; TensorFlow is imported only when Keras runs on it.
Keras 3 optimizers keep slot lists (``_momentums``, ``_velocities``, ...) aligned with
``_trainable_variables`` (index via ``_get_variable_index``), create them in
``build(variables)``, and keep the learning rate in the ``_learning_rate`` variable
(``optimizer.lr`` does not exist).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from ckptcompat.runtime import _engine, callback_base, keras_module
from ckptcompat.runtime._engine import ApplyReport
from ckptcompat.runtime._walk import json_safe_or_none, walk_variables
from ckptcompat.state import Producer, TrainingState

__all__ = ["NAME", "KERAS_MAJOR", "NATIVE_FORMAT", "NATIVE_FILE", "DATASET_LEN_READ_ONCE", "RETRY_WITH_OWN_LAYERS",
           "ApplyReport", "keras_module", "callback_base", "dataset_base", "config_for_running",
           "model_from_config", "find_optimizer_class", "tf1_adam_class", "variables",
           "variable_shapes", "capture", "apply", "learning_rate", "set_learning_rate",
           "start_fit_at", "clear_fit_start", "epoch_length_fixed", "data_length_policy", "read_variable", "write_variable"]

logger = logging.getLogger(__name__)

#: Flavour name (see :func:`ckptcompat.runtime.detect`).
NAME = "keras3"
#: Keras generation, for the argument translation tables of :mod:`ckptcompat.names.arguments`.
KERAS_MAJOR = 3
#: Format (:mod:`ckptcompat.formats`) and file name of a full model that this Keras loads natively.
NATIVE_FORMAT = "keras_zip"
NATIVE_FILE = "model.keras"
#: True: Keras 3 reads ``len()`` of a ``PyDataset`` once at fit start and ends a shortened
#: (resumed) epoch by running out of data.
DATASET_LEN_READ_ONCE = True
#: False: Keras 3's deserializer knows every layer it ships (see keras2.RETRY_WITH_OWN_LAYERS).
RETRY_WITH_OWN_LAYERS = False


def dataset_base() -> type:
    """``keras.utils.PyDataset``: the base class of ckptcompat's data objects on Keras 3."""
    base: type = keras_module().utils.PyDataset
    return base


#: config strings Keras 3's legacy deserializer would turn into the function of that name
#: (``Attention(score_mode="dot")`` -> ``keras.ops.dot``, which its own ``load_model`` then
#: refuses); mapping them to themselves keeps them strings
_KEEP_AS_STRINGS: dict[str, str] = {"dot": "dot", "concat": "concat"}


def model_from_config(config: Mapping[str, Any], custom_objects: Mapping[str, Any]) -> Any:
    """A new model from a Keras 3 spelled config: ``.keras`` layout (with ``module``) through
    ``model_from_json``, the legacy ``.h5`` layout through Keras' legacy deserializer."""
    keras = keras_module()
    if "module" not in config:
        from keras.src.legacy.saving import saving_utils  # noqa: PLC0415

        return saving_utils.model_from_config(
            {"class_name": config["class_name"], "config": config["config"]},
            custom_objects={**_KEEP_AS_STRINGS, **_op_classes(config), **dict(custom_objects)})
    return keras.models.model_from_json(json.dumps(config), custom_objects=dict(custom_objects))


#: the ``keras.src.ops`` modules whose operation classes a functional config may call as nodes
_OP_MODULES = tuple(f"keras.src.ops.{m}" for m in ("numpy", "nn", "math", "core", "image", "linalg"))
#: Keras object spaces whose names an operation class must not shadow
_OTHER_SPACES = ("initializers", "regularizers", "constraints", "activations", "losses", "metrics", "optimizers")
#: how deep nested model configs are searched for operation nodes
_MAX_NESTING = 32


def _config_layers(config: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every layer entry of a model config, those of nested models included (to :data:`_MAX_NESTING`)."""
    inner = config.get("config") if isinstance(config, Mapping) else None
    layers = inner.get("layers") if isinstance(inner, Mapping) else None
    for layer in layers if isinstance(layers, list) and depth < _MAX_NESTING else ():
        if isinstance(layer, Mapping):
            yield layer
            yield from _config_layers(layer, depth + 1)


def _op_class(module: Any, name: str) -> type | None:
    """The one ``Operation`` class (not a layer) named ``name`` in :data:`_OP_MODULES` (or in
    ``module``, one of them, where the node names it); None where there is none or two."""
    import importlib  # noqa: PLC0415

    from keras.src.layers import Layer  # noqa: PLC0415
    from keras.src.ops.operation import Operation  # noqa: PLC0415

    if module is not None and module not in _OP_MODULES:
        return None
    candidates = set()
    for mod in _OP_MODULES if module is None else (module,):
        try:
            cls = getattr(importlib.import_module(mod), name, None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls.__module__ == mod and issubclass(cls, Operation) \
                and not issubclass(cls, Layer):
            candidates.add(cls)
    return candidates.pop() if len(candidates) == 1 else None  # two modules, one name: which one?


def _op_classes(config: Mapping[str, Any]) -> dict[str, type]:
    """Keras's own operation classes a functional config calls as graph nodes (``NotEqual`` for an
    ``Embedding(mask_zero=True)`` mask, as Keras 3.15 records it), nested models' included:
    Keras's legacy ``.h5`` deserializer looks up layers only, so no release (3.15 included)
    rebuilds such an ``.h5`` natively. Only a node whose config holds nothing but its name (an
    operation's; a layer's has more) is resolved, by :func:`_op_class`; no other module is
    imported."""
    known_layers = keras_module().layers
    other_spaces = [getattr(keras_module(), n, None) for n in _OTHER_SPACES]
    found: dict[str, type] = {}
    for layer in _config_layers(config):
        module, name, inner_cfg = layer.get("module"), layer.get("class_name"), layer.get("config")
        if not isinstance(name, str) or name in found or hasattr(known_layers, name) \
                or not isinstance(inner_cfg, Mapping) or not set(inner_cfg) <= {"name"} \
                or any(hasattr(space, name) for space in other_spaces):
            continue  # custom_objects apply model-wide: never shadow a loss, metric, initializer... (Mean)
        cls = _op_class(module, name)
        if cls is not None:
            found[name] = cls
            logger.info("graph node %r: Keras's own operation %s.%s", inner_cfg.get("name"), cls.__module__, name)
    return found


def config_for_running(model_config: Mapping[str, Any], written_by_keras3: bool | None = None,
                       path: str | None = None) -> dict[str, Any]:
    """``model_config`` of any generation in this Keras 3 release's spelling (upgraded when
    it was written by Keras 2; ``written_by_keras3`` None: told from the config itself);
    ``path`` names the checkpoint in errors."""
    from ckptcompat.names.config_downgrade import is_keras3_config
    from ckptcompat.names.config_upgrade import upgrade_model_config
    from ckptcompat.names.configs.keras3_releases import for_keras3_release

    if written_by_keras3 is None:
        written_by_keras3 = is_keras3_config(model_config)
    out = dict(model_config) if written_by_keras3 else upgrade_model_config(model_config, path)
    return for_keras3_release(out, str(getattr(keras_module(), "__version__", "")), path)


def find_optimizer_class(name: str, legacy: bool = False) -> type | None:
    """The optimizer class ``name`` (``legacy`` is ignored: Keras 3 has one family)."""
    cls: type | None = getattr(keras_module().optimizers, name, None)
    return cls


def tf1_adam_class(mixin: type) -> type:
    """Keras 3 ``Adam`` stepping like TF1's ``AdamOptimizer`` (see :mod:`ckptcompat.tf1.adam`):
    ``mixin`` keeps the ``beta1_power``/``beta2_power`` variables."""
    keras = keras_module()
    ops = keras.ops

    class Adam(mixin, keras.optimizers.Adam):  # type: ignore[misc,valid-type]
        """Keras 3 Adam with TF1's bias-correction powers (see :mod:`ckptcompat.tf1.adam`)."""

        def build(self, var_list: Any) -> None:
            if self.built:
                return
            super().build(var_list)
            b1, b2 = self._power_values()
            self.beta1_power = self.add_variable(
                shape=(), dtype="float32", name="beta1_power",
                initializer=keras.initializers.Constant(float(b1)))
            self.beta2_power = self.add_variable(
                shape=(), dtype="float32", name="beta2_power",
                initializer=keras.initializers.Constant(float(b2)))

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            # TF1's ApplyAdam kernel, op for op: alpha = lr * sqrt(1 - b2p) / (1 - b1p);
            # m += (g - m) * (1 - b1); v += (g^2 - v) * (1 - b2); w -= m * alpha / (sqrt(v) + eps)
            lr = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            b1p = ops.cast(self.beta1_power, variable.dtype)
            b2p = ops.cast(self.beta2_power, variable.dtype)
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            alpha = lr * ops.sqrt(1 - b2p) / (1 - b1p)
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
            self.assign_sub(variable, ops.divide(ops.multiply(m, alpha),
                                                 ops.add(ops.sqrt(v), self.epsilon)))

        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            result = super().apply(grads, trainable_variables)
            self._advance_powers()  # after every variable's update, as TF1's _finish
            return result

    return Adam


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

    @property
    def backend(self) -> str:
        return str(self.keras.backend.backend())

    def to_numpy(self, var: Any) -> np.ndarray:
        if self.backend == "tensorflow":  # EagerTensor.numpy() is one fresh copy
            return np.asarray(var.value.numpy())
        value = np.asarray(self.keras.ops.convert_to_numpy(var))
        # JAX and torch may hand out a view of the live buffer (torch: shared memory)
        return value if value.flags.owndata and value.flags.writeable else np.array(value, copy=True)

    def read_view(self, var: Any) -> np.ndarray:
        if self.backend == "tensorflow":  # a view of the read tensor
            return np.asarray(var.value.read_value())
        return np.asarray(self.keras.ops.convert_to_numpy(var))  # a view on CPU (copied by the caller)

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

    def stored_learning_rate(self, opt: Any) -> Any:
        return opt._learning_rate

    def is_variable(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.Variable)

    def is_schedule(self, obj: Any) -> bool:
        return isinstance(obj, self.keras.optimizers.schedules.LearningRateSchedule)

    def serialize_schedule(self, obj: Any) -> dict[str, Any] | None:
        if not self.is_schedule(obj):
            return None
        return json_safe_or_none(self.keras.optimizers.schedules.serialize(obj),
                                 "learning-rate schedule")

    def producer(self) -> Producer:
        keras = self.keras
        backend = self.backend
        versions = {"keras": str(keras.__version__), "backend": backend}
        framework = sys.modules.get(backend)  # imported by Keras itself for its backend
        if framework is not None and getattr(framework, "__version__", None):
            versions[backend] = str(framework.__version__)
        return Producer(framework="keras", versions=versions)


_OPS = _Keras3Ops()


def read_variable(var: Any) -> np.ndarray:
    """A copy of a live variable's value (``numpy()``: a distributed variable has no __array__)."""
    read = getattr(var, "numpy", None)
    return np.asarray(read() if callable(read) else _OPS.to_numpy(var))


def write_variable(var: Any, value: Any) -> None:
    """Assign ``value`` to a live variable."""
    var.assign(value)


def variables(model: Any) -> dict[str, Any]:
    """Every live variable of a Keras 3 model by canonical name, in model order."""
    return _OPS.variables(model)


def variable_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every variable of a live Keras 3 model."""
    return {name: _OPS.shape(var) for name, var in _OPS.variables(model).items()}


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


def learning_rate(model_or_optimizer: Any) -> float | None:
    """The optimizer's current fixed learning rate; None for a schedule."""
    return _engine.learning_rate(_OPS, model_or_optimizer)


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """Set the learning rate in place (Keras 3 has no ``optimizer.lr``); returns the old value."""
    return _engine.set_learning_rate(_OPS, model_or_optimizer, value)


def start_fit_at(model: Any, epoch: int, step: int = 0) -> bool:
    """Make the running ``fit`` start at ``epoch`` (call in ``on_train_begin``: Keras 3's ``fit``
    reads ``model._initial_epoch`` right after it, the hook of its own ``BackupAndRestore``);
    False when this Keras has no such hook. ``step`` is not used: a resumed data object ends
    the shortened epoch itself."""
    if not hasattr(model, "_initial_epoch"):
        return False
    model._initial_epoch = int(epoch)  # noqa: SLF001 -- Keras 3's own fit hook
    return True


def epoch_length_fixed(model: Any) -> bool:
    """Keras 3 reads the length once anyway; a resumed data object ends its epoch by exhaustion."""
    return False


def data_length_policy() -> str:
    """``"exhaustion"``: Keras 3 reads the length once and ends an epoch when the data runs out."""
    return "exhaustion"


def clear_fit_start(model: Any) -> None:
    """Undo :func:`start_fit_at` (at ``on_train_end``): Keras 3 never resets it itself."""
    if getattr(model, "_initial_epoch", None) is not None:
        model._initial_epoch = None  # noqa: SLF001
