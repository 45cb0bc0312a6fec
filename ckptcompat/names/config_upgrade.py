"""Keras 1/2 (keras, tf.keras, tf-keras) model and optimizer configs -> Keras 3 configs.

An ordered table of small pure functions; each takes one layer entry (``{"class_name",
"config", ...}``) and returns a new one, or ``None`` when it does not apply. Configs
already in Keras 3 form pass through unchanged (every step is idempotent). Keras 1.x
spellings are first brought to Keras 2 (:mod:`ckptcompat.names.configs.keras1`); call
records go through :mod:`ckptcompat.names.configs.nodes`; the rules shared with the
downgrade direction live in :mod:`ckptcompat.names.configs.table`. Nothing here executes
anything: Lambda byte-code stays an opaque string.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Dict

from ckptcompat.names.configs.keras1 import is_keras1_layer, keras1_input_dtype, keras1_to_keras2_layer
from ckptcompat.names.configs.nodes import RNN_CLASSES, has_keras2_nodes, nodes_to_keras3, shift_nested_model_refs
from ckptcompat.names.configs.table import (INPUT_SHAPE_KEYS, KERAS2_ONLY_LAYER_ARGS, KERAS3_RENAMED_OBJECTS,
                                            OLD_DEFAULTS, OLD_OUTPUT_MODES, REMOVED_IN_KERAS3, decode_json_values,
                                            keras3_policy, warn_changed_activations)
from ckptcompat.names.variables import canonical_optimizer_class

__all__ = ["LAYER_STEPS", "upgrade_layer", "upgrade_model_config",
           "upgrade_optimizer_config", "convert_inbound_nodes"]

Entry = Dict[str, Any]
_OPTIMIZER_DROP = ("is_legacy_optimizer", "jit_compile", "decay")
_MODEL_CLASSES = ("Functional", "Model", "Sequential")


def _input_layer(entry: Entry) -> Entry | None:
    if entry.get("class_name") != "InputLayer":
        return None
    cfg = dict(entry.get("config") or {})
    if "batch_input_shape" in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    if not cfg.get("ragged"):
        cfg.pop("ragged", None)
    if isinstance(cfg.get("dtype"), Mapping):
        cfg["dtype"] = keras3_policy(cfg["dtype"])
    return {**entry, "config": cfg}


def _input_shape_keys(entry: Entry) -> Entry | None:
    """``batch_input_shape`` / ``input_shape`` / ``input_dim`` on any layer but an InputLayer.

    Keras 2 reads them only on a Sequential's first layer (see :func:`_sequential_input`,
    which runs first and keeps the shape); Keras 3 constructors refuse them.
    """
    cfg = entry.get("config") or {}
    if entry.get("class_name") in ("InputLayer", "Embedding") or not any(k in cfg for k in INPUT_SHAPE_KEYS):
        keys = ("batch_input_shape", "input_shape", "batch_size") if entry.get("class_name") == "Embedding" else ()
        if keys and any(k in cfg for k in keys):
            return {**entry, "config": {k: v for k, v in cfg.items() if k not in keys}}
        return None
    return {**entry, "config": {k: v for k, v in cfg.items() if k not in INPUT_SHAPE_KEYS}}


def _dtype_policy(entry: Entry) -> Entry | None:
    dtype = (entry.get("config") or {}).get("dtype")
    if isinstance(dtype, Mapping) and dtype.get("class_name") == "Policy":
        return {**entry, "config": {**entry["config"], "dtype": keras3_policy(dtype)}}
    return None


def _drop_keras2_keys(entry: Entry) -> Entry | None:
    keys = KERAS2_ONLY_LAYER_ARGS["*"] + KERAS2_ONLY_LAYER_ARGS.get(str(entry.get("class_name")), ())
    cfg = entry.get("config") or {}
    if not any(k in cfg for k in keys):
        return None
    return {**entry, "config": {k: v for k, v in cfg.items() if k not in keys}}


def _attention_causal(entry: Entry) -> Entry | None:
    """tf.keras <= 2.9 ``Attention(causal=...)``: Keras 3 takes ``use_causal_mask=`` per call
    (after :func:`_nodes`, so the calls are Keras 3 records)."""
    cfg = entry.get("config") or {}
    if entry.get("class_name") not in _CAUSAL_ATTENTION or "causal" not in cfg:
        return None
    out = {**entry, "config": {k: v for k, v in cfg.items() if k != "causal"}}
    nodes = entry.get("inbound_nodes")
    if not cfg.get("causal"):
        return out
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, Mapping) for n in nodes):
        from ckptcompat.errors import UnsupportedFormatError

        raise UnsupportedFormatError(
            f"layer {cfg.get('name')!r} ({entry.get('class_name')}): causal=True is a call argument in "
            "Keras 3 and this config records no call to carry it (missing rule: causal outside a "
            "functional call)", hint="build the model yourself and pass resume(path, model=model)")
    out["inbound_nodes"] = [{**n, "kwargs": {**(n.get("kwargs") or {}), "use_causal_mask": True}} for n in nodes]
    return out


_CAUSAL_ATTENTION = ("Attention", "AdditiveAttention")


def _changed_activations(entry: Entry) -> Entry | None:
    """Warn (never change) about a Keras 1/2 activation Keras 3 computes differently
    (:data:`~ckptcompat.names.configs.table.CHANGED_ACTIVATIONS`: ``hard_sigmoid``)."""
    if "module" not in entry:  # a Keras 1/2 entry (every Keras 3 entry names its module)
        warn_changed_activations(entry, to_keras3=True)
    return None


def _module(entry: Entry) -> Entry | None:
    cls = entry.get("class_name")
    if cls in ("Functional", "Model"):
        return {**entry, "class_name": "Functional", "module": "keras.src.models.functional",
                "registered_name": "Functional"}
    if cls == "Sequential":
        return None if entry.get("module") == "keras" else {**entry, "module": "keras", "registered_name": None}
    if "module" not in entry:
        return {**entry, "module": "keras.layers", "registered_name": None}
    return None


def _batchnorm_axis(entry: Entry) -> Entry | None:
    axis = (entry.get("config") or {}).get("axis")
    if entry.get("class_name") == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        return {**entry, "config": {**entry["config"], "axis": axis[0]}}
    return None


def _rename_objects(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.get("class_name") in KERAS3_RENAMED_OBJECTS:
            obj["class_name"] = KERAS3_RENAMED_OBJECTS[obj["class_name"]]
        cfg = obj.get("config")
        if obj.get("class_name") == "VarianceScaling" and isinstance(cfg, dict) and cfg.get("distribution") == "normal":
            cfg["distribution"] = "truncated_normal"  # Keras 2.0 spelling (2.x warned and mapped)
        for value in obj.values():
            _rename_objects(value)
    elif isinstance(obj, list):
        for value in obj:
            _rename_objects(value)
    return obj


def _initializers(entry: Entry) -> Entry | None:
    cfg = entry.get("config") or {}
    changed = {k: _rename_objects(copy.deepcopy(v)) for k, v in cfg.items()
               if isinstance(v, Mapping) and k not in ("layer", "backward_layer", "cell", "layers")}
    for key, value in changed.items():
        if key.endswith("initializer") and isinstance(value.get("config"), dict):
            value["config"].pop("dtype", None)  # tf.keras 1.x initializers carried a dtype
            for arg, default in _TF1_INITIALIZER_DEFAULTS.get(str(value.get("class_name")), {}).items():
                if arg in value["config"] and value["config"][arg] is None:
                    value["config"][arg] = default
    return {**entry, "config": {**cfg, **changed}} if changed else None


#: tf.keras 2.0.8 (TF 1.4) serializes TF1's random initializers, whose None meant TF1's default
#: (``tf.random_uniform_initializer(0, None)``: maxval 1 for floats); Keras 3 refuses None
_TF1_INITIALIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "RandomUniform": {"minval": 0.0, "maxval": 1.0},
    "RandomNormal": {"mean": 0.0, "stddev": 1.0}, "TruncatedNormal": {"mean": 0.0, "stddev": 1.0},
}


def _old_defaults(entry: Entry) -> Entry | None:
    """Arguments whose default changed: a Keras 2 config that omits them meant the old default."""
    defaults = OLD_DEFAULTS.get(str(entry.get("class_name")), {})
    cfg = entry.get("config") or {}
    missing = {k: v for k, v in defaults.items() if k not in cfg}
    return {**entry, "config": {**cfg, **missing}} if missing and "module" not in entry else None


def convert_inbound_nodes(nodes: Any, class_name: str = "") -> Any:
    """Keras 2 ``[[["dense", 0, 0, {}], ...]]`` -> Keras 3 ``[{"args": [...], "kwargs": {...}}]``."""
    return nodes_to_keras3(nodes, class_name)


def _nodes(entry: Entry) -> Entry | None:
    if not has_keras2_nodes(entry):
        return None
    return {**entry, "inbound_nodes": nodes_to_keras3(entry["inbound_nodes"], str(entry.get("class_name")))}


def _several_shapes(shape: Any) -> bool:
    return isinstance(shape, list) and bool(shape) and all(isinstance(s, list) or s is None for s in shape)


def _build_config_of_calls(entry: Entry) -> Entry | None:
    """tf.keras 2.13+ ``.keras``: the ``build_config`` records what the layer was built on, which Keras 3's
    ``build`` takes another way: a MultiHeadAttention's one ``input_shape`` (Keras 3:
    ``build(query_shape, value_shape)``), a recurrent layer's list of shapes when it was called with
    ``initial_state`` (Keras 3: the sequences' shape). Dropped: the model's rebuild calls the layer,
    which builds it from what it is given."""
    build = entry.get("build_config") or {}
    if "input_shape" not in build:
        return None
    cls = entry.get("class_name")
    if cls == "MultiHeadAttention" or (cls in RNN_CLASSES and _several_shapes(build["input_shape"])):
        return {k: v for k, v in entry.items() if k != "build_config"}
    return None


#: ordered steps applied to every layer entry (after the Keras 1 -> 2 conversion)
#: tf.keras 2.4-2.5 preprocessing spellings, renamed in 2.6 (tf-keras still takes them, Keras 3 refuses)
_OLD_PREPROCESSING_ARGS = {"IntegerLookup": {"max_values": "max_tokens", "mask_value": "mask_token",
                                             "oov_value": "oov_token"},
                           "CategoryEncoding": {"max_tokens": "num_tokens"}}
_OUTPUT_MODE_CLASSES = frozenset({"IntegerLookup", "StringLookup", "TextVectorization", "CategoryEncoding",
                                  "Hashing", "Discretization"})


def _old_preprocessing_args(entry: Entry) -> Entry | None:
    cfg = entry.get("config") or {}
    cls = str(entry.get("class_name"))
    renames = _OLD_PREPROCESSING_ARGS.get(cls, {})
    mode = cfg.get("output_mode") if cls in _OUTPUT_MODE_CLASSES else None
    if not any(k in cfg for k in renames) and not (isinstance(mode, str) and mode in OLD_OUTPUT_MODES):
        return None
    out = {renames.get(k, k): v for k, v in cfg.items() if k not in renames or renames[k] not in cfg}
    if isinstance(mode, str) and mode in OLD_OUTPUT_MODES:
        out["output_mode"] = OLD_OUTPUT_MODES[mode]
    return {**entry, "config": out}


LAYER_STEPS: tuple[Callable[[Entry], Entry | None], ...] = (
    _old_defaults, _changed_activations, _module, _input_layer, _input_shape_keys, _dtype_policy, _drop_keras2_keys,
    _batchnorm_axis,
    _initializers, _nodes, _attention_causal, _build_config_of_calls, _old_preprocessing_args,
)


def upgrade_layer(entry: Mapping[str, Any], path: str | None = None) -> Entry:
    """Apply every step of :data:`LAYER_STEPS` to one layer entry (and its sub-layers)."""
    out: Entry = dict(entry)
    if isinstance(out.get("config"), list):  # Keras 1 / 2.0-2.1 Sequential: a bare list of layers
        out["config"] = {"name": out.get("name") or "sequential", "layers": out["config"]}
    if out.get("class_name") not in _MODEL_CLASSES and is_keras1_layer(out):
        out = keras1_to_keras2_layer(out, path)
    if out.get("class_name") in REMOVED_IN_KERAS3:
        from ckptcompat.errors import UnsupportedFormatError

        name = (out.get("config") or {}).get("name") if isinstance(out.get("config"), Mapping) else None
        raise UnsupportedFormatError(
            f"layer {name!r} ({out['class_name']}): {REMOVED_IN_KERAS3[out['class_name']]} "
            f"(missing rule: {out['class_name']} -> Keras 3)", path=path,
            hint="rebuild that part of the model with Keras 3 layers and pass resume(path, model=model)")
    cfg = out.get("config")
    sequential_layers = None
    if isinstance(cfg, Mapping) and isinstance(cfg.get("layers"), list) and out.get("class_name") == "Sequential":
        sequential_layers = [keras1_to_keras2_layer(e, path) if isinstance(e, Mapping) and is_keras1_layer(e)
                             else e for e in cfg["layers"]]
        sequential_layers = _sequential_input(sequential_layers,
                                              keras1_input_dtype(cfg["layers"][0]) if cfg["layers"] else None)
    for step in LAYER_STEPS:
        new = step(out)
        if new is not None:
            out = new
    cfg = out.get("config")
    if isinstance(cfg, Mapping):
        cfg = dict(cfg)
        if isinstance(cfg.get("layers"), list):
            layers = sequential_layers if sequential_layers is not None else cfg["layers"]
            keras2_nodes = any(has_keras2_nodes(e) for e in layers)
            cfg["layers"] = [upgrade_layer(e, path) if isinstance(e, Mapping) else e for e in layers]
            if keras2_nodes:
                shift_nested_model_refs(cfg, -1)
        for key in ("layer", "backward_layer", "cell"):
            if isinstance(cfg.get(key), Mapping) and "class_name" in cfg[key]:
                cfg[key] = upgrade_layer(cfg[key], path)
        if isinstance(cfg.get("cells"), list):
            cfg["cells"] = [upgrade_layer(c, path) if isinstance(c, Mapping) else c for c in cfg["cells"]]
        out["config"] = cfg
    return out


def _sequential_input(layers: list[Any], keras1_dtype: str | None = None) -> list[Any]:
    """Keras 2 Sequential: the first layer's ``batch_input_shape`` becomes an explicit InputLayer,
    of the first layer's dtype, or of a Keras 1 ``input_dtype`` (an Embedding's int32 input)."""
    if not layers or not isinstance(layers[0], Mapping) or layers[0].get("class_name") == "InputLayer":
        return layers
    cfg = dict(layers[0].get("config") or {})
    shape = cfg.get("batch_input_shape")
    if shape is None and cfg.get("input_shape") is not None:
        shape = [cfg.get("batch_size"), *cfg["input_shape"]]
    if shape is None and cfg.get("input_dim") is not None and layers[0].get("class_name") != "Embedding":
        shape = [None, cfg["input_dim"]]
    if shape is None:
        return layers
    dtype = cfg.get("dtype") if isinstance(cfg.get("dtype"), str) else "float32"
    if keras1_dtype is not None:
        dtype = keras1_dtype
    inp = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
           "config": {"batch_shape": list(shape), "dtype": dtype, "sparse": False,
                      "name": f"{cfg.get('name', 'input')}_input"}}
    return [inp, *layers]


def upgrade_model_config(model_cfg: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """A Keras 3 model config (``{"class_name", "config", ...}``) from a Keras 1, 2 or 3 one.

    Raises :class:`~ckptcompat.errors.UnsupportedFormatError` naming the layer and the missing
    rule when a layer has no Keras 3 equivalent (e.g. a Keras 1 ``Merge`` with a function).
    """
    return upgrade_layer(decode_json_values(copy.deepcopy(dict(model_cfg))), path)


def upgrade_optimizer_config(opt: Mapping[str, Any] | str) -> dict[str, Any]:
    """``{"class_name": "Custom>Adam", "config": {"lr": ..., "is_legacy_optimizer": ...}}`` -> Keras 3."""
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    cls = canonical_optimizer_class(str(opt.get("class_name", "")))
    cfg = {k: v for k, v in dict(opt.get("config") or {}).items() if k not in _OPTIMIZER_DROP}
    if "lr" in cfg:
        cfg.setdefault("learning_rate", cfg.pop("lr"))
        cfg.pop("lr", None)
    if isinstance(cfg.get("name"), str):
        cfg["name"] = cfg["name"].lower()
    return {"module": "keras.optimizers", "class_name": cls, "config": cfg, "registered_name": None}
