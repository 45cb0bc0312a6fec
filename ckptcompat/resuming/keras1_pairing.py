"""A Keras 1 weights-only ``.h5`` (``save_weights``: no config) into a live model, as Keras 2.0-2.3's
``load_weights`` took such a file: the file's layers holding weights are the live model's, in
order, and each live layer's class and settings (data format, kernel size, a wrapper's inner
layer, a nested model's layers) drive the Keras 1 conversion the file's config would have driven
(:mod:`ckptcompat.formats.keras_h5`). File and live layers pair by name where every file layer names
a live one, else in order; every converted weight must then have the live one's short name and
shape, else the other matchers try.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ckptcompat.errors import CkptCompatError
from ckptcompat.state import TrainingState

__all__ = ["through_live_classes"]

log = logging.getLogger(__name__)

_WRAPPERS = ("Bidirectional", "TimeDistributed")


def _keras1_class(cls: str) -> str:
    """A live class name as Keras 1 named the class (``Conv2D`` -> ``Convolution2D``)."""
    from ckptcompat.names.configs.keras1 import CLASS_RENAMES

    for old, (new, _) in CLASS_RENAMES.items():
        if new == cls:
            return old
    return cls


def _settings(layer: Any) -> dict[str, Any]:
    """What the conversion reads from a Keras 1 config, taken from the live layer."""
    out: dict[str, Any] = {"dim_ordering": "th" if getattr(layer, "data_format", None) == "channels_first" else "tf"}
    kernel_size, filters = getattr(layer, "kernel_size", None), getattr(layer, "filters", None)
    if isinstance(kernel_size, (tuple, list)) and kernel_size and isinstance(filters, int):
        out.update(filter_length=int(kernel_size[0]), nb_filter=filters)
    return out


def _weighted(container: Any) -> list[Any]:
    return [layer for layer in getattr(container, "layers", None) or [] if getattr(layer, "weights", None)]


def _saved_order(container: Any, name: str) -> list[Any]:
    """A nested model's layers holding weights in the order Keras 1 saved their weights: its
    trainable weights first (the trainable layers', in order), then the rest (a frozen layer's
    all). Taken from the live trainable flags, as Keras 2.3 did; warned where that is not the
    layer order (a layer frozen when the file was written but not now would pair otherwise)."""
    layers = _weighted(container)
    trainable = bool(getattr(container, "trainable", True))
    frozen = [layer for layer in layers if not (trainable and getattr(layer, "trainable_weights", None))]
    saved = [layer for layer in layers if not any(layer is f for f in frozen)] + frozen
    if any(a is not b for a, b in zip(saved, layers)):
        log.warning("nested model %s: Keras 1 saved the weights of its frozen layer(s) %s after the trainable "
                    "ones; paired by the live model's trainable flags, as Keras 2.3 did", name,
                    ", ".join(str(layer.name) for layer in frozen))
    return saved


def _entry(name: str, layer: Any, prefixes: list[str]) -> dict[str, Any] | None:
    """The Keras 1 config entry of one live layer under the file's layer ``name``, whose weights
    the file names with ``prefixes`` (in order); None where the two cannot be the same layer."""
    cls = type(layer).__name__
    if cls in _WRAPPERS:
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
        sides = ("forward_", "backward_") if cls == "Bidirectional" else ("",)
        if inner is None or not prefixes or not all(p.startswith(sides) for p in prefixes):
            return None
        head = prefixes[0]
        inner_name = head[len(next(s for s in sides if head.startswith(s))):]
        return {"class_name": cls, "config": {"name": name, "layer": {
            "class_name": _keras1_class(type(inner).__name__), "config": {"name": inner_name, **_settings(inner)}}}}
    if getattr(layer, "layers", None) is not None:  # a nested model: its own layers
        saved = _saved_order(layer, name)
        if len(saved) != len(prefixes):
            return None
        prefix_of = {id(inner): p for p, inner in zip(prefixes, saved)}
        entries = [_entry(prefix_of[id(inner)], inner, [prefix_of[id(inner)]]) for inner in _weighted(layer)]
        if any(e is None or e["class_name"] in _WRAPPERS for e in entries):
            return None
        return {"class_name": "Model", "config": {"name": name, "layers": entries}}
    return {"class_name": _keras1_class(cls), "config": {"name": name, **_settings(layer)}}


def _file_layers(state: TrainingState) -> list[tuple[str, list[str]]] | None:
    """(file layer, Keras 1 name prefixes of its weights in order) for each layer holding weights,
    in file order; None where a weight is not named the Keras 1 way."""
    from ckptcompat.formats.keras_h5 import keras1_weight_prefix

    out: dict[str, list[str]] = {}
    for name in state.weights:
        group, _, leaf = name.partition("/")
        prefix = keras1_weight_prefix(leaf.rsplit("/", 1)[-1])
        if prefix is None:
            return None
        prefixes = out.setdefault(group, [])
        if prefix not in prefixes:
            prefixes.append(prefix)
    return list(out.items())


def _paired_layers(state: TrainingState, model: Any, groups: list[tuple[str, list[str]]] | None) -> list[Any] | None:
    """The live layer of each file layer holding weights: by name where every file layer names a
    live one, else in order (as Keras's ``load_weights`` pairs a weights-only ``.h5``); None where
    the counts differ."""
    live = _weighted(model)
    if not groups or len(groups) != len(live):
        log.debug("%s: %s file layers with weights, %d live ones: not paired", state.producer.path,
                  len(groups or ()), len(live))
        return None
    by_name = {str(layer.name): layer for layer in live}
    if len(by_name) == len(live) and {group for group, _ in groups} == set(by_name):
        return [by_name[group] for group, _ in groups]
    return live


def _keras1_config(state: TrainingState, model: Any) -> dict[str, Any] | None:
    """A Keras 1 model config naming the file's layers with the classes of the live layers they
    pair with (:func:`_paired_layers`)."""
    groups = _file_layers(state)
    live = _paired_layers(state, model, groups)
    if live is None:
        return None
    entries = [_entry(group, layer, prefixes) for (group, prefixes), layer in zip(groups or (), live)]
    if any(e is None for e in entries):
        return None
    return {"class_name": "Sequential", "config": {"layers": entries}}


def through_live_classes(state: TrainingState, model: Any, live: Mapping[str, tuple[int, ...]]
                         ) -> tuple[TrainingState, dict[str, str]] | None:
    """The Keras 1 weights-only file of ``state`` read again, converted through the live layers'
    classes: (that state under live names, converted name -> live name) when every live variable
    is named with its shape, else None."""
    from ckptcompat.formats import keras_h5

    path = state.producer.path
    if state.model_config is not None or state.producer.format != "keras_h5" or not path \
            or not keras_h5.holds_keras1_names(state):
        return None
    config = _keras1_config(state, model)
    if config is None:
        return None

    try:
        again = keras_h5.read(path, include_optimizer=False, config=config)
    except CkptCompatError as exc:
        log.debug("%s: not readable through the live layers' classes: %s", path, exc)
        return None
    if set(again.weights) == set(state.weights):  # nothing converted: not a Keras 1 file
        return None
    mapping = _pair_in_order(again, model, live)
    if mapping is None:
        return None
    return (state.replace(weights={mapping[n]: v for n, v in again.weights.items()}),
            {a: b for a, b in mapping.items() if a != b})


def _pair_in_order(state: TrainingState, model: Any, live: Mapping[str, tuple[int, ...]]) -> dict[str, str] | None:
    """Converted name -> live name, layer by layer (:func:`_paired_layers`), each weight to the live
    one in the same place with the same short name and a fitting shape; None where any does not fit."""
    from ckptcompat._arrays import shape_fits

    groups: dict[str, list[str]] = {}
    for name in state.weights:
        groups.setdefault(name.split("/", 1)[0], []).append(name)
    layers = _paired_layers(state, model, [(group, []) for group in groups])
    if layers is None:
        return None
    mapping: dict[str, str] = {}
    for (group, names), layer in zip(groups.items(), layers):
        mine = [n for n in live if n.startswith(f"{layer.name}/")]
        if len(mine) != len(names) or any(
                a.rsplit("/", 1)[-1] != b.rsplit("/", 1)[-1] or not shape_fits(np.shape(state.weights[a]), live[b])
                for a, b in zip(names, mine)):
            log.debug("%s: file layer %s does not fit live layer %s after conversion", state.producer.path,
                      group, layer.name)
            return None
        mapping.update(zip(names, mine))
    return mapping if set(mapping) == set(state.weights) and set(mapping.values()) == set(live) else None
