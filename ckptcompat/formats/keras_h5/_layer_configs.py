"""What a Keras ``.h5`` file's model config says about its layers' weights: each layer's class,
whether it trains, its nested layers (:func:`layer_configs`); the owner of each weight of a nested
model whose names lost their layer (Keras 3.0, :func:`inner_names`); the way down to a layer of a
nested model at any depth (:func:`layer_chains`); whether a weight trains (:func:`trainable`)."""

from __future__ import annotations

from typing import Any

from ckptcompat.names.variables import strip_tensor_suffix

__all__ = ["layer_configs", "inner_names", "layer_chains", "layer_order", "place", "with_inner_path", "trainable",
           "path_chain"]

_NON_TRAINABLE_SHORT = {"moving_mean", "moving_variance", "running_mean", "running_std",
                        "moving_stddev", "renorm_mean", "renorm_stddev",  # BatchNormalization(renorm=True);
                        "renorm_mean_weight", "renorm_stddev_weight",  # older tf.keras: their debiasing weights
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


def layer_chains(nested: dict[str, Any]) -> dict[str, tuple[tuple[str, str, bool], ...]]:
    """Every layer of a nested model's table, at any depth: the ``(name, class, trainable)`` of each
    model on the way down to it, itself last (a direct layer's own name first where names repeat)."""
    chains = {name: ((name, cls, trainable),) for name, (cls, trainable, _sub) in nested.items()}
    for name, (cls, trainable, sub) in nested.items():
        for inner, chain in layer_chains(sub).items():
            chains.setdefault(inner, ((name, cls, trainable), *chain))
    return chains


def _layer_paths(table: dict[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, (_cls, _trainable, sub) in table.items():
        paths += [prefix + name, *_layer_paths(sub, f"{prefix}{name}/")]
    return paths


def layer_order(table: dict[str, Any]) -> dict[str, int]:
    """Every layer's path in a table (``middle/inner/dense``) -> its place in model order, nested
    models depth first (their layers right after them)."""
    return {path: i for i, path in enumerate(_layer_paths(table))}


def place(name: str, order: dict[str, int]) -> int:
    """The model-order place of weight ``name``: its longest layer path's (after every layer where none)."""
    parts = name.split("/")
    return next((order[p] for p in ("/".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)) if p in order),
                len(order))


def with_inner_path(layer: str, raw: str, chains: dict[str, tuple[tuple[str, str, bool], ...]]) -> str:
    """``raw`` with the models between top-level layer ``layer`` and the weight's own layer put in, where
    tf.keras named a weight of a model nested two deep after its layer alone (``dense/kernel:0`` in
    group ``inner1`` -> ``inner2/dense/kernel:0``, as the live walk names it); ``chains``: the group's
    :func:`layer_chains`, computed once for all its weights."""
    parts = raw.split("/")
    heads = parts[:-1]
    start = len(heads) - heads[::-1].index(layer) if layer in heads else 0
    chain = chains.get(heads[start]) if start < len(heads) else None
    if not chain or len(chain) == 1:
        return raw
    return "/".join([*parts[:start], *(name for name, _, _ in chain[:-1]), *parts[start:]])


def path_chain(parts: list[str], nested: dict[str, Any]) -> tuple[tuple[str, str, bool], ...] | None:
    """The way down the nested tables that a weight's own path takes (``block_b/proj/kernel``: block_b,
    then its proj), from the first of its parts that is a layer of ``nested``; None where none is."""
    start = next((i for i, part in enumerate(parts[:-1]) if part in nested), None)
    if start is None:
        return None
    chain, table = [], nested
    for part in parts[start:-1]:
        if part not in table:
            break
        cls, trainable, table = table[part]
        chain.append((part, cls, trainable))
    return tuple(chain)


def trainable(layer: str, raw: str, table: dict[str, Any]) -> bool:
    """Whether weight ``raw`` of top-level layer ``layer`` trains: every model on the way down to
    its layer trains, and it is no statistic. The way is the weight's own path where it names one;
    a weight named after its layer alone is looked up at any depth."""
    cls, trainable, nested = table.get(layer, ("", True, {}))
    parts = strip_tensor_suffix(raw).split("/")
    short = parts[-1]
    chain = path_chain(parts, nested)
    if chain is None:
        chains = layer_chains(nested)
        owner = next((part for part in reversed(parts[:-1]) if part in chains), None)
        if owner is None and len(parts) == 1:  # Keras 1: an inner layer's weight named after it (dense_1_W)
            owner = max((name for name in chains if short.startswith(f"{name}_")), key=len, default=None)
        chain = chains[owner] if owner is not None else None
    if chain:
        cls = chain[-1][1]
        trainable = trainable and all(inner_trainable for _, _, inner_trainable in chain)
    if short in _NON_TRAINABLE_SHORT or short.endswith(("_running_mean", "_running_std")):
        return False
    if "Normalization" in cls and "Batch" not in cls and short in _NORMALIZATION_STATS:
        return False
    return trainable
