"""Keras 2 (tf.keras / tf-keras) model and optimizer configs -> Keras 3 configs.

An ordered table of small pure functions; each takes one layer entry (``{"class_name",
"config", ...}``) and returns a new one, or ``None`` when it does not apply. Configs
already in Keras 3 form pass through unchanged (every step is idempotent). Nothing here
executes anything: Lambda byte-code stays an opaque string.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ckptcompat.names.variables import canonical_optimizer_class

__all__ = ["LAYER_STEPS", "NEWER_KERAS3_ARGS", "for_keras3_release", "upgrade_layer", "upgrade_model_config", "upgrade_optimizer_config",
           "convert_inbound_nodes"]

Entry = dict[str, Any]

_KERAS2_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "LSTM": ("time_major", "implementation"), "GRU": ("time_major", "implementation"),
    "SimpleRNN": ("time_major",), "RNN": ("time_major",),
    "LSTMCell": ("implementation",), "GRUCell": ("implementation",),
    "Embedding": ("input_length",),
    "BatchNormalization": ("fused", "virtual_batch_size", "adjustment", "renorm", "renorm_clipping",
                           "renorm_momentum"),
}
_OPTIMIZER_DROP = ("is_legacy_optimizer", "jit_compile", "decay")


def _input_layer(entry: Entry) -> Entry | None:
    if entry.get("class_name") != "InputLayer":
        return None
    cfg = dict(entry.get("config") or {})
    if "batch_input_shape" in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    if not cfg.get("ragged"):
        cfg.pop("ragged", None)
    return {**entry, "config": cfg}


def _dtype_policy(entry: Entry) -> Entry | None:
    dtype = (entry.get("config") or {}).get("dtype")
    if isinstance(dtype, Mapping) and dtype.get("class_name") == "Policy":
        name = (dtype.get("config") or {}).get("name", "float32")
        return {**entry, "config": {**entry["config"], "dtype": name}}
    return None


def _drop_keras2_keys(entry: Entry) -> Entry | None:
    keys = _KERAS2_ONLY_KEYS.get(str(entry.get("class_name")), ())
    cfg = entry.get("config") or {}
    if not any(k in cfg for k in keys):
        return None
    return {**entry, "config": {k: v for k, v in cfg.items() if k not in keys}}


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


_INITIALIZER_RENAMES = {"Orthogonal": "OrthogonalInitializer"}


def _initializers(entry: Entry) -> Entry | None:
    cfg = entry.get("config") or {}
    changed = {}
    for key, value in cfg.items():
        if (isinstance(value, Mapping) and value.get("class_name") in _INITIALIZER_RENAMES
                and key.endswith("initializer")):
            changed[key] = {**value, "class_name": _INITIALIZER_RENAMES[value["class_name"]]}
    return {**entry, "config": {**cfg, **changed}} if changed else None


def convert_inbound_nodes(nodes: Any) -> Any:
    """Keras 2 ``[[["dense", 0, 0, {}], ...]]`` -> Keras 3 ``[{"args": [...], "kwargs": {...}}]``."""
    if not isinstance(nodes, list) or not nodes or isinstance(nodes[0], Mapping):
        return nodes
    out = []
    for node in nodes:
        tensors, kwargs = [], {}
        for item in node:
            if isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str):
                tensors.append({"class_name": "__keras_tensor__",
                                "config": {"shape": [None], "dtype": "float32",
                                           "keras_history": list(item[:3])}})
                if len(item) > 3 and isinstance(item[3], Mapping):
                    kwargs.update(item[3])
        out.append({"args": [tensors[0]] if len(tensors) == 1 else [tensors], "kwargs": kwargs})
    return out


def _nodes(entry: Entry) -> Entry | None:
    nodes = entry.get("inbound_nodes")
    new = convert_inbound_nodes(nodes)
    return None if new is nodes else {**entry, "inbound_nodes": new}


#: ordered steps applied to every layer entry
LAYER_STEPS: tuple[Callable[[Entry], Entry | None], ...] = (
    _module, _input_layer, _dtype_policy, _drop_keras2_keys, _batchnorm_axis, _initializers, _nodes,
)


def upgrade_layer(entry: Mapping[str, Any]) -> Entry:
    """Apply every step of :data:`LAYER_STEPS` to one layer entry (and its sub-layers)."""
    out: Entry = dict(entry)
    for step in LAYER_STEPS:
        new = step(out)
        if new is not None:
            out = new
    cfg = out.get("config")
    if isinstance(cfg, Mapping):
        cfg = dict(cfg)
        if isinstance(cfg.get("layers"), list):
            keras2_nodes = any(isinstance(e, Mapping) and isinstance(e.get("inbound_nodes"), list)
                               and e["inbound_nodes"] and not isinstance(e["inbound_nodes"][0], Mapping)
                               for e in cfg["layers"])
            cfg["layers"] = [upgrade_layer(e) if isinstance(e, Mapping) else e for e in cfg["layers"]]
            if keras2_nodes:
                _shift_nested_model_nodes(cfg["layers"])
            if out.get("class_name") == "Sequential":
                cfg["layers"] = _sequential_input(cfg["layers"])
        for key in ("layer", "backward_layer", "cell"):
            if isinstance(cfg.get(key), Mapping) and "class_name" in cfg[key]:
                cfg[key] = upgrade_layer(cfg[key])
        out["config"] = cfg
    return out


def _shift_nested_model_nodes(layers: list[Any]) -> None:
    """Keras 2 counts a nested model's own construction as its node 0; Keras 3 does not."""
    models = {str((e.get("config") or {}).get("name") or e.get("name")) for e in layers
              if isinstance(e, Mapping) and e.get("class_name") in ("Functional", "Sequential")}
    for entry in layers:
        for node in entry.get("inbound_nodes") or [] if isinstance(entry, Mapping) else []:
            args = node.get("args") if isinstance(node, Mapping) else None
            flat = args[0] if args and isinstance(args[0], list) else (args or [])
            for tensor in flat:
                history = (tensor.get("config") or {}).get("keras_history") if isinstance(tensor, Mapping) else None
                if history and history[0] in models and history[1] >= 1:
                    history[1] -= 1


def _sequential_input(layers: list[Any]) -> list[Any]:
    if layers and isinstance(layers[0], Mapping) and layers[0].get("class_name") == "InputLayer":
        # tf.keras keeps ``batch_input_shape`` on the layers after the InputLayer (TF 2.x
        # ``Dense(input_shape=...)``); the InputLayer has it already, Keras 3 constructors refuse it
        return [layers[0], *({**e, "config": {k: v for k, v in e["config"].items() if k != "batch_input_shape"}}
                             if isinstance(e, Mapping) and isinstance(e.get("config"), Mapping) else e
                             for e in layers[1:])]
    if not layers or not isinstance(layers[0], Mapping):
        return layers
    first = dict(layers[0])
    cfg = dict(first.get("config") or {})
    shape = cfg.pop("batch_input_shape", None)
    if shape is None:
        return layers
    first["config"] = cfg
    inp = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
           "config": {"batch_shape": shape, "dtype": cfg.get("dtype", "float32") if isinstance(
               cfg.get("dtype"), str) else "float32", "sparse": False, "name": f"{cfg.get('name', 'input')}_input"}}
    return [inp, first, *layers[1:]]


def upgrade_model_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A Keras 3 model config (``{"class_name", "config", ...}``) from a Keras 2 or 3 one."""
    return upgrade_layer(copy.deepcopy(dict(model_cfg)))


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


#: constructor arguments later Keras 3 releases write that Keras 3.0-3.3 constructors refuse
NEWER_KERAS3_ARGS: tuple[str, ...] = ("quantization_config", "lora_rank", "lora_alpha", "optional",
                                      "input_axes", "output_axes")


#: BatchNormalization arguments of later Keras 3 releases; dropped for 3.0-3.3 when renorm is off
NEWER_KERAS3_RENORM_ARGS: tuple[str, ...] = ("renorm", "renorm_clipping", "renorm_momentum")
#: serialized class names later Keras 3 releases write -> the name Keras 3.0-3.3 registered
OLDER_KERAS3_CLASS_NAMES: dict[str, str] = {"Orthogonal": "OrthogonalInitializer"}


def for_keras3_release(model_cfg: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Drop arguments the target Keras 3 release does not know (only for releases before 3.4)."""
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    out = copy.deepcopy(dict(model_cfg))
    if len(parts) < 2 or parts[0] != 3 or parts[1] >= 4:
        return out

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            cfg = obj.get("config")
            if isinstance(cfg, dict) and "layers" in cfg:
                for key in ("input_layers", "output_layers"):  # 3.0 wants a list of [name, node, tensor]
                    value = cfg.get(key)
                    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                        cfg[key] = [value]
            if isinstance(cfg, dict) and "class_name" in obj:
                for key in NEWER_KERAS3_ARGS:
                    if cfg.get(key) in (None, False):
                        cfg.pop(key, None)
                if obj.get("class_name") == "BatchNormalization" and not cfg.get("renorm"):
                    for key in NEWER_KERAS3_RENORM_ARGS:
                        cfg.pop(key, None)
            if obj.get("module") == "keras.initializers" and obj.get("class_name") in OLDER_KERAS3_CLASS_NAMES:
                obj["class_name"] = OLDER_KERAS3_CLASS_NAMES[obj["class_name"]]
            for value in obj.values():
                strip(value)
        elif isinstance(obj, list):
            for value in obj:
                strip(value)
        return obj

    return strip(out)
