"""What a Keras ``.h5`` file's model config says about its layers' weights: each layer's class,
whether it trains, its nested layers (:func:`layer_configs`); the owner of each weight of a nested
model whose names lost their layer (Keras 3.0, :func:`inner_names`); whether a weight trains
(:func:`trainable`)."""

from __future__ import annotations

from typing import Any

from ckptcompat.names.variables import strip_tensor_suffix

__all__ = ["layer_configs", "inner_names", "trainable"]

_NON_TRAINABLE_SHORT = {"moving_mean", "moving_variance", "running_mean", "running_std",
                        "seed_generator_state"}
_NORMALIZATION_STATS = {"mean", "variance", "count"}


def layer_configs(model_config: Any, nested: bool = False) -> dict[str, Any]:
    """``{layer name: (class_name, trainable, nested table)}`` from a model config, any generation;
    a nested model's table leaves out Keras 3 operation nodes (``NotEqual`` of an embedding mask:
    a config of its name alone), which own no weights."""
    cfg = model_config.get("config") if isinstance(model_config, dict) else model_config
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg
    table: dict[str, Any] = {}
    if not isinstance(layers, list):
        return table
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        lcfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = lcfg.get("name") or layer.get("name")
        if nested and _operation_node(layer, lcfg):
            continue
        if isinstance(name, str):  # a Keras 1 / 2.0-2.2 nested Sequential's config is its layer list
            listed = isinstance(lcfg.get("layers"), list) or isinstance(layer.get("config"), list)
            inner = layer_configs(layer, nested=True) if listed else {}
            table[name] = (str(layer.get("class_name", "")), lcfg.get("trainable", True) is not False, inner)
    return table


def _operation_node(layer: dict[str, Any], lcfg: dict[str, Any]) -> bool:
    """A Keras 3 operation node (an embedding mask's ``NotEqual``): a config of its name alone, a
    Keras ops module (none in a legacy ``.h5`` config), no class known to hold weights."""
    module = layer.get("module")
    return (set(lcfg) == {"name"} and layer.get("class_name") not in _CLASS_WEIGHTS
            and (module is None or str(module).startswith(("keras.src.ops", "keras.ops"))))


# Weight names per layer class, in creation order (for files that lost nested layer names).
_CLASS_WEIGHTS = {"Dense": 2, "Conv1D": 2, "Conv2D": 2, "Conv3D": 2, "Embedding": 1, "LSTM": 3,
                  "GRU": 3, "SimpleRNN": 3, "LayerNormalization": 2, "BatchNormalization": 4}
_WEIGHTLESS = {"InputLayer", "Dropout", "Activation", "Flatten", "Reshape", "MaxPooling2D",
               "MaxPooling1D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"}


def inner_names(nested: dict[str, Any]) -> list[str] | None:
    """Owner layer name of each weight of a nested model, or None when not derivable."""
    out: list[str] = []
    for name, (cls, _trainable, _sub) in nested.items():
        if cls in _WEIGHTLESS:
            continue
        if cls not in _CLASS_WEIGHTS:
            return None
        out += [name] * _CLASS_WEIGHTS[cls]
    return out


def trainable(layer: str, raw: str, table: dict[str, Any]) -> bool:
    cls, trainable, nested = table.get(layer, ("", True, {}))
    parts = strip_tensor_suffix(raw).split("/")
    short = parts[-1]
    owner = next((part for part in reversed(parts[:-1]) if part in nested), None)
    if owner is None and len(parts) == 1:  # Keras 1: an inner layer's weight named after it (dense_1_W)
        owner = max((name for name in nested if short.startswith(f"{name}_")), key=len, default=None)
    if owner is not None:
        cls, inner_trainable, _ = nested[owner]
        trainable = trainable and inner_trainable
    if short in _NON_TRAINABLE_SHORT or short.endswith(("_running_mean", "_running_std")):
        return False
    if "Normalization" in cls and "Batch" not in cls and short in _NORMALIZATION_STATS:
        return False
    return trainable
