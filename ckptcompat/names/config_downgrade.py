"""Keras 3 model / training configs -> Keras 2 (tf.keras 2.12-2.15, tf-keras) configs.

A table of small pure functions, applied in order to every layer dict (``{"class_name",
"config", ...}``) of a model config, nested models included. Each function takes a deep
copy it may change and returns it. Keras 2 configs pass through unchanged (every rule is a
no-op on them), so :func:`downgrade_model_config` is safe to call on any generation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Dict

from ckptcompat.names.configs.keras1 import keras1_to_keras2_model
from ckptcompat.names.configs.mask_ops import without_embedding_masks
from ckptcompat.names.configs.nodes import has_keras3_nodes, nodes_to_keras2, shift_nested_model_refs
from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.names.configs.table import (ANY, KERAS3_ONLY_ARGS_AT, KERAS2_ARG_NAMES, KERAS2_DTYPE_NOT_POLICY,
                                            KERAS2_RENAMED_OBJECTS, KERAS2_REQUIRED_ARGS,
                                            KERAS3_ONLY_LAYER_ARGS, OLD_DEFAULTS, decode_json_values,
                                            keras2_policy, warn_changed_activations)

__all__ = [
    "LAYER_RULES",
    "UNKNOWN_LAYER_ARGS",
    "UNKNOWN_OBJECT_ARGS",
    "RENAMED_OBJECTS",
    "OPTIMIZER_KEYS_UNKNOWN_TO_KERAS2",
    "downgrade_layer",
    "downgrade_model_config",
    "downgrade_optimizer_config",
    "downgrade_training_config",
    "dropped_optimizer_keys",
    "is_keras3_config",
]

#: Layer constructor arguments Keras 3 writes that Keras 2 constructors refuse.
UNKNOWN_LAYER_ARGS: dict[str, tuple[str, ...]] = KERAS3_ONLY_LAYER_ARGS

_VS_AXES = ("input_axes", "output_axes")
#: Arguments of nested serialized objects (initializers, ...) that Keras 2 refuses.
UNKNOWN_OBJECT_ARGS: dict[str, tuple[str, ...]] = {
    name: _VS_AXES for name in ("VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
                                "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal")
}

#: Optimizer config keys of Keras 3 that Keras 2 optimizers do not accept.
OPTIMIZER_KEYS_UNKNOWN_TO_KERAS2: tuple[str, ...] = (
    "loss_scale_factor", "gradient_accumulation_steps",
)

#: Constructor keys tf.keras 2.11-2.15 / tf-keras (new) optimizers accept, common and per class.
_NEW_OPTIMIZER_BASE_KEYS: tuple[str, ...] = (
    "name", "learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
    "ema_momentum", "ema_overwrite_frequency", "jit_compile", "is_legacy_optimizer")
_NEW_OPTIMIZER_KEYS: dict[str, tuple[str, ...]] = {
    "Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "Adamax": ("beta_1", "beta_2", "epsilon"),
    "Nadam": ("beta_1", "beta_2", "epsilon"),
    "SGD": ("momentum", "nesterov"),
    "RMSprop": ("rho", "momentum", "epsilon", "centered"),
    "Adagrad": ("initial_accumulator_value", "epsilon"),
    "Adadelta": ("rho", "epsilon"),
    "Ftrl": ("learning_rate_power", "initial_accumulator_value", "l1_regularization_strength",
             "l2_regularization_strength", "l2_shrinkage_regularization_strength", "beta"),
}

_REGISTRATION_KEYS = ("module", "registered_name")
_FLOAT_POLICIES = {"float16", "float32", "float64", "bfloat16"}

Layer = Dict[str, Any]


def is_keras3_config(config: Mapping[str, Any]) -> bool:
    """True when ``config`` (a model or layer dict) carries Keras 3 markers."""
    # tf.keras/tf-keras 2.13+ also write module/registered_name/build_config: not markers
    text = repr(config)
    return ("'batch_shape'" in text or "__keras_tensor__" in text or "'DTypePolicy'" in text
            or "'FloatDTypePolicy'" in text)


def strip_registration(obj: Any) -> Any:
    """Drop ``module`` / ``registered_name`` from every serialized object, recursively."""
    if isinstance(obj, dict):
        keys = set(obj)
        drop = _REGISTRATION_KEYS if "class_name" in keys else ()
        return {k: strip_registration(v) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [strip_registration(v) for v in obj]
    return obj


def _policy(value: Any) -> Any:
    """Keras 3 ``DTypePolicy`` dict -> Keras 2 dtype string / ``Policy`` dict."""
    return keras2_policy(value)


def rule_old_defaults(layer: Layer) -> Layer:
    """A config written before an argument existed meant its old default (``GRU.reset_after``)."""
    cfg = layer.get("config")
    if isinstance(cfg, dict) and "module" not in layer and not is_keras3_config(layer):
        for key, value in OLD_DEFAULTS.get(str(layer.get("class_name")), {}).items():
            cfg.setdefault(key, value)
    return layer


def rule_changed_activations(layer: Layer) -> Layer:
    """Warn (never change) about a Keras 3 activation Keras 2 computes differently
    (:data:`~ckptcompat.names.configs.table.CHANGED_ACTIVATIONS`: ``hard_sigmoid``)."""
    if "module" in layer or is_keras3_config(layer):
        warn_changed_activations(layer, to_keras3=False)
    return layer


def rule_registration(layer: Layer) -> Layer:
    """Drop registration keys and Keras 3 build/compile metadata from a layer dict."""
    out = strip_registration(layer)
    for key in ("build_config", "compile_config"):
        out.pop(key, None)
    return out


#: Serialized class names Keras 3 spells differently from Keras 2.
RENAMED_OBJECTS: dict[str, str] = KERAS2_RENAMED_OBJECTS


def _drop_object_args(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.get("class_name") in RENAMED_OBJECTS:
            obj["class_name"] = RENAMED_OBJECTS[obj["class_name"]]
        if isinstance(obj.get("config"), dict) and obj.get("class_name") in UNKNOWN_OBJECT_ARGS:
            for key in UNKNOWN_OBJECT_ARGS[obj["class_name"]]:
                obj["config"].pop(key, None)
        for value in obj.values():
            _drop_object_args(value)
    elif isinstance(obj, list):
        for value in obj:
            _drop_object_args(value)
    return obj


def rule_object_args(layer: Layer) -> Layer:
    """Drop Keras 3-only arguments of initializers and other serialized objects in the config."""
    cfg = layer.get("config")
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key not in ("layers", "layer", "backward_layer", "cell"):
                _drop_object_args(value)
    return layer


def rule_dtype_policy(layer: Layer) -> Layer:
    """Replace dtype policy dicts in the layer config by what Keras 2 understands."""
    cfg = layer.get("config")
    if isinstance(cfg, dict) and "dtype" in cfg:
        cfg["dtype"] = _policy(cfg["dtype"])
        policy = cfg["dtype"].get("config", {}).get("name") if isinstance(cfg["dtype"], dict) else cfg["dtype"]
        if layer.get("class_name") in KERAS2_DTYPE_NOT_POLICY and (policy in _FLOAT_POLICIES
                                                                   or str(policy).startswith("mixed")):
            del cfg["dtype"]  # the Keras 3 compute policy; here Keras 2 means the output / input dtype
    return layer


def rule_adapted_bins(layer: Layer) -> Layer:
    """An adapted Keras 3 ``Discretization`` records its ``bin_boundaries`` beside ``num_bins``, which
    Keras 2 refuses together: the boundaries are the bins, ``num_bins`` is dropped."""
    cfg = layer.get("config")
    if layer.get("class_name") == "Discretization" and isinstance(cfg, dict) \
            and cfg.get("bin_boundaries") is not None and cfg.get("num_bins") is not None:
        del cfg["num_bins"]
    return layer


def rule_input_layer(layer: Layer) -> Layer:
    """``InputLayer``: ``batch_shape`` -> ``batch_input_shape``."""
    cfg = layer.get("config")
    if layer.get("class_name") == "InputLayer" and isinstance(cfg, dict) and "batch_shape" in cfg:
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
    return layer


def rule_unknown_args(layer: Layer) -> Layer:
    """Drop constructor arguments Keras 2 does not know (see :data:`UNKNOWN_LAYER_ARGS`), rename
    the ones Keras 2 spells differently and add the ones its ``from_config`` requires."""
    cfg = layer.get("config")
    cls = str(layer.get("class_name"))
    if isinstance(cfg, dict):
        for key in UNKNOWN_LAYER_ARGS["*"] + UNKNOWN_LAYER_ARGS.get(cls, ()):
            cfg.pop(key, None)
        for new, old in KERAS2_ARG_NAMES.get(cls, {}).items():
            if new in cfg:
                cfg[old] = cfg.pop(new)
        for key, value in KERAS2_REQUIRED_ARGS.get(cls, {}).items():
            cfg.setdefault(key, value)
        for key, keras2_value in KERAS3_ONLY_ARGS_AT.get(cls, {}).items():
            if key not in cfg:
                continue
            value = cfg.pop(key)
            if keras2_value is not ANY and value is not None and value != keras2_value:
                raise UnsupportedFormatError(
                    f"layer {cfg.get('name')!r} ({cls}): {key}={value!r} has no Keras 2 equivalent "
                    f"(Keras 2 behaves as {key}={keras2_value!r}; missing rule: {cls}.{key})",
                    hint="build the model yourself and pass resume(path, model=model)")
    return layer


def rule_inbound_nodes(layer: Layer) -> Layer:
    """Keras 3 nodes ``{"args": [...], "kwargs": {...}}`` -> Keras 2 ``[[name, node, idx, kwargs]]``.

    Tensors inside kwargs (``initial_state``, ``mask``, ...) become ``[name, node, idx]`` lists,
    which Keras 2 resolves back to tensors when it rebuilds the call.
    """
    if isinstance(layer.get("inbound_nodes"), list):
        layer["inbound_nodes"] = nodes_to_keras2(layer["inbound_nodes"], str(layer.get("class_name")),
                                                 str(layer.get("name") or (layer.get("config") or {}).get("name")))
    return layer


_MODEL_CLASSES = {"Functional", "Model", "Sequential"}


def rule_nested(layer: Layer) -> Layer:
    """Recurse into nested models (``config.layers``) and wrappers (``config.layer``)."""
    cfg = layer.get("config")
    if not isinstance(cfg, dict):
        return layer
    if isinstance(cfg.get("layers"), list):
        k3_nodes = any(has_keras3_nodes(sub) for sub in cfg["layers"])
        if k3_nodes:
            cfg = layer["config"] = without_embedding_masks(cfg)
        cfg["layers"] = [downgrade_layer(sub) if isinstance(sub, dict) else sub for sub in cfg["layers"]]
        for key in ("input_layers", "output_layers"):
            refs = cfg.get(key)
            if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
                cfg[key] = [refs]  # Keras 3 flattens a single input/output reference
        if k3_nodes:
            shift_nested_model_refs(cfg, +1)
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(cfg.get(key), dict) and "class_name" in cfg[key]:
            cfg[key] = downgrade_layer(cfg[key])
    if isinstance(cfg.get("cells"), list):
        cfg["cells"] = [downgrade_layer(c) if isinstance(c, dict) else c for c in cfg["cells"]]
    return layer


#: The rules, applied in this order to every layer dict.
LAYER_RULES: tuple[Callable[[Layer], Layer], ...] = (
    rule_old_defaults,
    rule_changed_activations,
    rule_registration,
    rule_dtype_policy,
    rule_adapted_bins,
    rule_input_layer,
    rule_unknown_args,
    rule_object_args,
    rule_inbound_nodes,
    rule_nested,
)


def downgrade_layer(layer: Mapping[str, Any]) -> Layer:
    """Apply :data:`LAYER_RULES` to one layer dict (a copy is returned)."""
    out: Layer = copy.deepcopy(dict(layer))
    for rule in LAYER_RULES:
        out = rule(out)
    return out


def downgrade_model_config(config: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """Keras 3, 2 or 1 model config ``{"class_name", "config"}`` -> Keras 2 model config.

    Keras 1 spellings go through :func:`~ckptcompat.names.configs.keras1.keras1_to_keras2_model`
    first; arguments whose default changed since (``GRU.reset_after``) get their old value.
    """
    config = keras1_to_keras2_model(decode_json_values(copy.deepcopy(dict(config))), path)
    return downgrade_layer(config)


def downgrade_optimizer_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keras 3 optimizer ``{"class_name", "config"}`` -> one tf.keras 2.11-2.15 new optimizers accept
    (Keras 2's ``decay`` as the equal ``InverseTimeDecay`` rate; ckptcompat's stores keep the
    captured hyper-parameters in state.json, which ``resume`` reads)."""
    from ckptcompat.names.lr_decay import decay_schedule_config, decays_by_product, saved_decay

    out = strip_registration(copy.deepcopy(dict(config)))
    cls = str(out.get("class_name", "")).split(">")[-1]
    # classes with no legacy counterpart: a legacy .h5 is loaded with the legacy optimizers'
    # lookup (tf.keras 2.11-2.15, tf-keras), which finds them only under their registered
    # names, as tf.keras / tf-keras write them themselves
    out["class_name"] = f"Custom>{cls}" if cls in ("AdamW", "Lion", "Adafactor") else cls
    inner = dict(out.get("config") or {})
    if "lr" in inner and "learning_rate" not in inner:
        inner["learning_rate"] = inner.pop("lr")
    decay = saved_decay(cls, None, inner)  # Nadam's decay is its momentum schedule: dropped below
    if decay:
        lr = inner.get("learning_rate")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise ValueError(f"{cls} with decay={decay!r} and the learning rate {lr!r} has no equivalent in "
                             "the tf.keras 2.11+ optimizers (decay was removed); use a learning-rate schedule")
        # the same rate, as a schedule (named where the multi-backend API's product is meant)
        inner["learning_rate"] = decay_schedule_config(lr, decay, decays_by_product(config))
    allowed = _NEW_OPTIMIZER_BASE_KEYS + _NEW_OPTIMIZER_KEYS.get(cls, ())
    inner = {k: v for k, v in inner.items() if k in allowed}
    inner.setdefault("name", cls)
    inner.setdefault("jit_compile", False)
    inner["is_legacy_optimizer"] = False
    out["config"] = inner
    return out


def dropped_optimizer_keys(config: Mapping[str, Any]) -> list[str]:
    """Keys of an optimizer config that :func:`downgrade_optimizer_config` drops."""
    cls = str(config.get("class_name", "")).split(">")[-1]
    inner = dict(config.get("config") or {})
    allowed = set(_NEW_OPTIMIZER_BASE_KEYS + _NEW_OPTIMIZER_KEYS.get(cls, ()) + ("lr", "decay"))
    return sorted(set(inner) - allowed)


def downgrade_training_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the compile keys Keras 2 reads; downgrade loss/metric/optimizer dicts."""
    out: dict[str, Any] = {}
    for key in ("loss", "metrics", "weighted_metrics", "loss_weights"):
        out[key] = strip_registration(copy.deepcopy(config.get(key)))
    if isinstance(config.get("optimizer_config"), Mapping):
        out["optimizer_config"] = downgrade_optimizer_config(config["optimizer_config"])
    return out
