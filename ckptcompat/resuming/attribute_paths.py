"""Keras 3 files of subclassed models: variables saved under attribute paths, not layer names.

Keras 3 saves a model by walking its attributes: a subclassed model's ``self.encoder =
Dense(3, name="enc")`` is stored under ``encoder/vars/0``, ``1``; a list attribute's layers under
``blocks/dense``, ``blocks/dense_1`` (snake-cased class and a counter). Such a file's config
describes no layers, so the reader names the variables ``<group>/var_<i>`` and neither names nor
layer order identify them (HDF5 lists the groups alphabetically). Keras's own loader pairs them
by walking the live model the same way; so does :func:`through_attributes`, with Keras's own
walker and each layer's own ``save_own_variables`` (which fixes the order of ``vars/<i>``),
verifying every shape and taking the pairing only when it is one to one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from ckptcompat.state import TrainingState

__all__ = ["attribute_layout", "through_attributes"]

log = logging.getLogger(__name__)

_VAR = re.compile(r"var_(\d+)")
_MAX_DEPTH = 64


def attribute_layout(model: Any, live_vars: Mapping[str, Any]) -> dict[str, list[str]]:
    """Attribute path Keras 3 saves each layer under -> the live names of the variables it
    saves there, in ``vars/<i>`` order; empty where Keras 3's saving walker is not importable."""
    walker = _keras_walker()
    if walker is None:
        return {}
    from ckptcompat.formats.keras_zip._weights import group_name_parts

    walk, saveable, snake = walker
    by_id = {id(v): name for name, v in live_vars.items()}
    out: dict[str, list[str]] = {}
    # what ``visited`` holds stays alive (``alive``): a property's temporary list (``model.layers``)
    # freed during the walk would lend its id to the next one, which would then be skipped
    visited, alive, clashes = set(), [], []  # type: set[int], list[Any], list[str]
    holding: set[str] = set()  # raw paths of the objects with variables of their own (``encoder``)

    def save(obj: Any, path: str, depth: int) -> None:
        if id(obj) in visited or depth > _MAX_DEPTH:
            return
        visited.add(id(obj))
        alive.append(obj)
        if hasattr(obj, "save_own_variables"):  # the model's own variables too, at vars/<i>
            names = _own_variables(obj, by_id, live_vars)
            holding.update([path] if names else [])
            # as the reader names the group (a parent is saved before its children)
            key = "/".join(group_name_parts(f"{path}/vars" if path else "vars", holding.__contains__)) or "model"
            if names and all(names):
                clashes.extend([key] if key in out else [])
                out[key] = [str(n) for n in names]
        for attr, child in walk(obj):
            child_path = f"{path}/{attr}" if path else attr
            if saveable(child):
                save(child, child_path, depth + 1)
            elif isinstance(child, (list, tuple, dict, set)):
                container(child, child_path, depth + 1)

    def container(items: Any, path: str, depth: int) -> None:
        if id(items) in visited or depth > _MAX_DEPTH:
            return
        visited.add(id(items))
        alive.append(items)
        used: dict[str, int] = {}

        def unique(base: str) -> str:
            count = used.get(base)
            used[base] = 0 if count is None else count + 1
            return base if count is None else f"{base}_{count + 1}"

        for item in (items.values() if isinstance(items, dict) else items):
            if saveable(item):
                save(item, f"{path}/{unique(snake(type(item).__name__))}", depth + 1)
            elif isinstance(item, (list, tuple, dict)):  # Keras 3.15+: nested containers
                container(item, f"{path}/{unique('container')}", depth + 1)

    save(model, "", 0)
    if clashes:  # two groups the reader names alike: no pairing is sure
        log.debug("attribute paths named alike without layers/ or cell/: %s", clashes)
        return {}
    return out


def _own_variables(obj: Any, by_id: Mapping[int, str], live_vars: Mapping[str, Any]) -> list[str | None]:
    """The live names of what ``obj.save_own_variables`` stores, in ``vars/<i>`` order. A layer
    that stores copies (numpy arrays) instead of its variables is read by value: each copy must
    equal exactly one of the layer's own variables not yet paired (same shape, dtype and bytes),
    else its name is None."""
    store: dict[str, Any] = {}
    try:
        obj.save_own_variables(store)
    except Exception as exc:  # noqa: BLE001 -- a layer that cannot say is left to the other matchers
        log.debug("save_own_variables of %s: %s", type(obj).__name__, exc)
        return []
    keys = sorted(store, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
    names = [by_id.get(id(store[k])) for k in keys]
    if all(names):
        return names
    # only the layer's own variables: a sub-layer's are saved in its own group
    own = [*getattr(obj, "_trainable_variables", ()), *getattr(obj, "_non_trainable_variables", ())]
    owned = {id(v) for v in own}
    candidates = [(name, np.asarray(v)) for name, v in live_vars.items() if id(v) in owned and name not in names]
    for i, key in enumerate(keys):
        if names[i] is None:
            copy = np.asarray(store[key])
            equal = [name for name, value in candidates if name not in names and value.shape == copy.shape
                     and value.dtype == copy.dtype and value.tobytes() == copy.tobytes()]
            names[i] = equal[0] if len(equal) == 1 else None
            log.debug("%s stores a copy at vars/%s: %s", type(obj).__name__, key, equal or "no variable equals it")
    return names if len(set(names)) == len(names) else [None] * len(names)


def _keras_walker() -> tuple[Callable[[Any], Any], Callable[[Any], bool], Callable[[str], str]] | None:
    """Keras 3's own saving walk: (children of an object, is it saved, snake-cased class name);
    ``_walk_saveable`` / ``KerasSaveable`` since 3.1 (``_walk_trackable`` / ``_is_keras_trackable``
    in 3.0). None where neither is importable (then no attribute pairing is tried)."""
    try:
        from keras.src.saving import saving_lib
        from keras.src.utils.naming import to_snake_case
    except ImportError:
        return None
    walk = getattr(saving_lib, "_walk_saveable", None)
    if walk is not None:
        try:
            from keras.src.saving.keras_saveable import KerasSaveable
        except ImportError:
            return None
        return walk, lambda obj: isinstance(obj, KerasSaveable), to_snake_case
    walk, is_saveable = getattr(saving_lib, "_walk_trackable", None), getattr(saving_lib, "_is_keras_trackable", None)
    return (walk, is_saveable, to_snake_case) if walk is not None and is_saveable is not None else None


def through_attributes(state: TrainingState, model: Any, live_vars: Mapping[str, Any],
                       live: Mapping[str, tuple[int, ...]]) -> tuple[TrainingState, dict[str, str]] | None:
    """``state`` under the live names when its variables are a Keras 3 file's attribute groups
    (:func:`attribute_layout`) and every one pairs with a live variable of the same shape, one to
    one: (renamed state, file name -> live name); else None."""
    # a subclassed model's Keras 3 file: Keras pairs it by attribute path, whatever names the
    # reader gave (var_<i>, or kernel/bias guessed from a group named dense_1); a Sequential /
    # Functional file, or any whose config lists its layers (a subclass of Sequential), is named
    # after the layers' own names, not their paths, and is paired by name, else structure
    if state.producer.format != "keras_zip" or type(model).__name__ in ("Sequential", "Functional") \
            or _config_lists_layers(state):
        return None
    layout = attribute_layout(model, live_vars)
    if not layout:
        return None
    groups = _file_groups(state, layout)
    mapping: dict[str, str] = {}
    for group, names in groups.items():
        targets = layout.get(group)
        if targets is None or len(targets) != len(names):
            return None
        for name, target in zip(names, targets):
            if tuple(np.shape(state.weights[name])) != tuple(live[target]):
                return None
            mapping[name] = target
    targets = set(mapping.values())
    if len(mapping) != len(state.weights) or len(targets) != len(mapping) or targets != set(live):
        return None  # one to one, every live variable restored
    optimizer = state.optimizer
    if optimizer is not None and optimizer.slots:
        import dataclasses

        optimizer = dataclasses.replace(optimizer, slots={mapping.get(k, k): v for k, v in optimizer.slots.items()})
    renamed = {k: v for k, v in mapping.items() if k != v}
    return state.replace(weights={mapping[k]: v for k, v in state.weights.items()}, optimizer=optimizer), renamed


def _config_lists_layers(state: TrainingState) -> bool:
    """Whether the file's model config lists layers (then the reader named them by it)."""
    config = (state.model_config or {}).get("config") if isinstance(state.model_config, Mapping) else None
    return isinstance(config, Mapping) and bool(config.get("layers"))


def _file_groups(state: TrainingState, layout: Mapping[str, Any]) -> dict[str, list[str]]:
    """The file's variables by attribute group, each group in ``vars/<i>`` order. A config-less
    ``.weights.h5`` names its groups by the ``name`` attribute Keras stored there, not by their
    path: those are translated through the file's own groups."""
    from ckptcompat.resuming.read import through_labels

    labels = through_labels({path: path for path in layout}, state.producer.path)
    out: dict[str, list[tuple[int, str]]] = {}
    for position, name in enumerate(state.weights):
        head, _, leaf = name.rpartition("/")
        group = labels.get(head, head)
        found = _VAR.fullmatch(leaf)
        out.setdefault(group, []).append((int(found.group(1)) if found else position, name))
    return {group: [name for _, name in sorted(items)] for group, items in out.items()}
