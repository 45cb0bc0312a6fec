"""Keras 3 files paired with a live model the way Keras 3 loads them: by dataset path.

Keras 3 saves a model by walking its attributes: a subclassed model's ``self.encoder =
Dense(3, name="enc")`` is stored under ``encoder/vars/0``, ``1``; a list attribute's layers under
``blocks/dense``, ``blocks/dense_1`` (snake-cased class and a counter); a Sequential's under
``layers/<class>``, an RNN's cell under ``cell``. Where the reader cannot name the variables (a
subclassed model, whose config describes no layers: ``<group>/var_<i>``; a layer class it does not
know), neither names nor layer order identify them (HDF5 lists the groups alphabetically). Keras's
own loader pairs them by walking the live model; so does :func:`through_save_walk`, with Keras's
own walker and each layer's own ``save_own_variables`` (which fixes the order of ``vars/<i>``),
against the dataset the reader read each variable from, verifying every shape and taking the
pairing only when it is one to one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from ckptcompat.state import TrainingState

__all__ = ["save_walk_layout", "through_attributes", "through_save_walk"]

log = logging.getLogger(__name__)

_MAX_DEPTH = 64


def save_walk_layout(model: Any, live_vars: Mapping[str, Any]) -> dict[str, list[str | None]]:
    """Where Keras 3 saves each variable group of ``model``: the group (``encoder/vars``,
    ``layers/lstm/cell/vars``, ``vars`` for the model's own) -> the live names of the variables it
    saves there, in ``vars/<i>`` order (None for a stored value no variable of the layer equals);
    empty where Keras 3's saving walker is not importable or the model is not a Keras 3 one (a
    tf-keras model where the keras package beside it is Keras 3)."""
    walker = _keras_walker()
    if walker is None:
        return {}
    walk, saveable, snake = walker
    if not saveable(model):
        return {}
    by_id = {id(v): name for name, v in live_vars.items()}
    out: dict[str, list[str | None]] = {}
    # what ``visited`` holds stays alive (``alive``): a property's temporary list (``model.layers``)
    # freed during the walk would lend its id to the next one, which would then be skipped
    visited, alive = set(), []  # type: set[int], list[Any]

    def save(obj: Any, path: str, depth: int) -> None:
        if id(obj) in visited or depth > _MAX_DEPTH:
            return
        visited.add(id(obj))
        alive.append(obj)
        if hasattr(obj, "save_own_variables"):  # the model's own variables too, at vars/<i>
            names = _own_variables(obj, by_id, live_vars)
            if names:
                out[f"{path}/vars" if path else "vars"] = [None if n is None else str(n) for n in names]
        for attr, child in walk(obj):
            child_path = f"{path}/{attr}" if path else attr
            if saveable(child):
                save(child, child_path, depth + 1)
            elif isinstance(child, _attribute_containers()):
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
    candidates = [(name, np.asarray(v)) for name, v in live_vars.items() if id(v) in owned]
    for i, key in enumerate(keys):
        if names[i] is None:
            copy = np.asarray(store[key])
            equal = [name for name, value in candidates if name not in names and value.shape == copy.shape
                     and value.dtype == copy.dtype and value.tobytes() == copy.tobytes()]
            names[i] = equal[0] if len(equal) == 1 else None
            log.debug("%s stores a copy at vars/%s: %s", type(obj).__name__, key, equal or "no variable equals it")
    return names if len(set(names)) == len(names) else [None] * len(names)


def _attribute_containers() -> tuple[type, ...]:
    """The attribute containers whose items the running Keras loads (a ``set`` in 3.0, not in 3.15:
    its ``_load_state`` names the types it follows)."""
    from keras.src.saving import saving_lib

    code = getattr(getattr(saving_lib, "_load_state", None), "__code__", None)
    return (list, tuple, dict, set) if code is not None and "set" in code.co_names else (list, tuple, dict)


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
    """A subclassed model's Keras 3 file (its config lists no layers), paired by attribute path
    (:func:`through_save_walk`) before any name is tried: the reader's names (``var_<i>``, or
    kernel/bias guessed from a group named ``dense_1``) say nothing there. A Sequential /
    Functional file, or any whose config lists its layers (a subclass of Sequential), is named
    after the layers' own names and paired by name, else structure: None."""
    if type(model).__name__ in ("Sequential", "Functional") or _config_lists_layers(state):
        return None
    return through_save_walk(state, model, live_vars, live)


def through_save_walk(state: TrainingState, model: Any, live_vars: Mapping[str, Any],
                      live: Mapping[str, tuple[int, ...]]) -> tuple[TrainingState, dict[str, str]] | None:
    """``state`` under the live names, paired the way Keras 3 loads a ``.keras`` / ``.weights.h5``:
    the dataset each file variable was read from (``layers/lstm/cell/vars/0``) with the live
    variable the model's own save walk puts there (:func:`save_walk_layout`). Taken only when every
    one pairs, shapes equal, one to one, every live variable restored: (renamed state, file name
    -> live name); else None."""
    if state.producer.format != "keras_zip" or not state.producer.path:
        return None
    layout = save_walk_layout(model, live_vars)
    if not layout:
        return None
    from ckptcompat.errors import CkptCompatError
    from ckptcompat.formats import keras_zip

    try:
        sources = keras_zip.variable_sources(state.producer.path)
    except CkptCompatError as exc:
        log.debug("%s: file paths not read (%s)", state.producer.path, exc)
        return None
    if set(sources) != set(state.weights):  # the state was named another way (through a given config)
        return None
    # a variable a layer saves twice (SpectralNormalization's reference to the wrapped kernel):
    # a file read without config holds it twice, and both copies must be equal
    saved_twice = {n for n, count in Counter(n for names in layout.values() for n in names).items() if count > 1}
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}  # live name -> the file name paired with it first
    for name, source in sources.items():
        group, _, index = source.rpartition("/")
        targets = layout.get(group) or []
        target = targets[int(index)] if index.isdigit() and int(index) < len(targets) else None
        if target is None or tuple(np.shape(state.weights[name])) != tuple(live[target]):
            return None
        first = taken.setdefault(target, name)
        if first != name and (target not in saved_twice or not _equal(state.weights[first], state.weights[name])):
            return None  # one to one, but for a variable saved twice, read twice alike
        mapping[name] = target
    if set(mapping.values()) != set(live):
        return None  # every live variable restored
    optimizer = state.optimizer
    if optimizer is not None and optimizer.slots:
        import dataclasses

        optimizer = dataclasses.replace(optimizer, slots={mapping.get(k, k): v for k, v in optimizer.slots.items()})
    renamed = {k: v for k, v in mapping.items() if k != v}
    return state.replace(weights={mapping[k]: v for k, v in state.weights.items()}, optimizer=optimizer), renamed


def _equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _config_lists_layers(state: TrainingState) -> bool:
    """Whether the file's model config lists layers (then the reader named them by it)."""
    config = (state.model_config or {}).get("config") if isinstance(state.model_config, Mapping) else None
    return isinstance(config, Mapping) and bool(config.get("layers"))
