"""Layer walk shared by the live flavours: canonical weight names in model order.

Framework-free: the flavour passes small callables that know how its variables and
models look, so this module never imports TensorFlow or Keras.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.configs.table import LOOKUP_CLASSES
from ckptcompat.names.variables import strip_tensor_suffix

__all__ = ["walk_variables", "layer_weights", "unused_weight_ids", "json_safe", "json_safe_or_none", "model_config_of",
           "finalize_assigned", "forget_traced"]

logger = logging.getLogger(__name__)



def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)  # tf.keras 2.2+, tf_keras and Keras 3
    if flatten is not None:
        return list(flatten(include_self=False, recursive=False))
    found: list[Any] = []  # tf.keras 2.0 / 2.2.4-tf: the tracked sub-layers, lists of them flattened
    for item in getattr(layer, "_layers", None) or ():
        found.extend(item if isinstance(item, (list, tuple)) or type(item).__name__ == "ListWrapper" else [item])
    return [sub for sub in found if hasattr(sub, "name") and hasattr(sub, "weights")]


def unused_weight_ids(layer: Any) -> set[int]:
    """Weights a ``Bidirectional`` holds but never uses: Keras 3.0 keeps the layer it was given
    beside the forward and backward copies it runs, and builds it too when a newer config
    carries its ``build_config`` (both it and the forward copy are then named ``forward_lstm``).
    The Bidirectional does not own them; where the model calls that layer itself too, they are
    walked there."""
    if type(layer).__name__ != "Bidirectional":
        return set()
    forward, backward = getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)
    given = getattr(layer, "layer", None)
    if forward is None or backward is None or given is None or given is forward or given is backward:
        return set()
    used = {id(w) for side in (forward, backward) for w in side.weights}
    return {id(w) for w in getattr(given, "weights", ()) if id(w) not in used}


def layer_weights(layer: Any, short_name: Callable[[Any], str]) -> list[tuple[str, Any]]:
    """(name relative to ``layer``, variable) for every weight of ``layer``, in its order.

    Short names normally; when two weights share one (wrappers such as ``Bidirectional``),
    each weight is named through the direct sub-layer that owns it, recursively
    (``forward_lstm/kernel``): RNN cell scopes therefore never appear.
    """
    unused = unused_weight_ids(layer)
    weights = [w for w in {id(w): w for w in layer.weights}.values()  # a wrapper may list one twice
               if id(w) not in unused]
    tables = [type(w).__name__ for w in weights if not hasattr(w, "name") or not hasattr(w, "shape")]
    if type(layer).__name__ in LOOKUP_CLASSES:
        # tf-keras's: a vocabulary table handler, tf_idf weights, adapt accumulators; the config
        # carries vocabulary and idf weights in both generations (resuming.adapted_vocab)
        return []
    if tables:  # tf.keras lookup layers list their vocabulary table handler among the weights
        raise IncompatibleStateError(
            f"layer {getattr(layer, 'name', '?')!r} holds state that is not a variable ({', '.join(tables)}: "
            "a lookup-table vocabulary); ckptcompat restores variables only",
            hint="rebuild the preprocessing layer with its vocabulary yourself and pass model=, "
                 "or move the lookup out of the trained model")
    names = [short_name(w) for w in weights]
    if len(set(names)) == len(names):
        return list(zip(names, weights))
    by_id: dict[int, str] = {}
    for sub in _sublayers(layer):
        for rel, var in layer_weights(sub, short_name):
            by_id.setdefault(id(var), f"{sub.name}/{rel}")
    return [(by_id.get(id(w), n), w) for n, w in zip(names, weights)]


def walk_variables(model: Any, *, is_model: Callable[[Any], bool],
                   short_name: Callable[[Any], str],
                   full_name: Callable[[Any], str]) -> dict[str, Any]:
    """Every variable of ``model`` by canonical name, in model order.

    Layers are visited in ``model.layers`` order; a layer that is itself a model adds its
    name as a path component and is walked recursively. Inside a layer, weights keep
    ``layer.weights`` order and are named ``<path>/<layer>/<short name>`` (see
    :func:`layer_weights` for wrappers whose weights share short names). A variable reached twice (shared
    layers) is listed once, under its first name. Variables the model owns outside its
    layers are appended last under their own (suffix-free) name.
    """
    out: dict[str, Any] = {}
    seen: set[int] = set()
    unused: set[int] = set()  # held by a Bidirectional, not run by it (unused_weight_ids)

    def add(name: str, var: Any) -> None:
        if id(var) in seen:
            return
        if name in out:
            raise IncompatibleStateError(
                "two variables of the live model get the same canonical name",
                [f"{name}: {full_name(out[name])} and {full_name(var)}"],
                hint="give the layers distinct names")
        seen.add(id(var))
        out[name] = var

    def visit(container: Any, prefix: list[str]) -> None:
        for layer in _layers(container):
            if is_model(layer):
                visit(layer, [*prefix, layer.name])
                continue
            unused.update(unused_weight_ids(layer))
            if type(layer).__name__ in LOOKUP_CLASSES:  # what layer_weights leaves out stays out
                unused.update(id(w) for w in layer.weights)
            for name, var in layer_weights(layer, short_name):
                add("/".join([*prefix, layer.name, name]), var)

    visit(model, [])
    for var in _iter(getattr(model, "weights", ())):
        if id(var) not in seen and id(var) not in unused:
            logger.debug("variable %s is outside every layer; named by itself", full_name(var))
            add(strip_tensor_suffix(full_name(var)), var)
    return out


def finalize_assigned(model: Any, assigned: Iterable[Any]) -> list[str]:
    """Run ``finalize_state`` of every layer (nested ones included) one of whose variables was
    assigned, as Keras's own weight loading does in both generations: an adapted
    ``Normalization`` computes its mean and variance tensors from its variables there, and
    without it goes on using the values it had before. Returns the layers' names."""
    ids = {id(var) for var in assigned}
    done: list[str] = []
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        stack.extend(_sublayers(layer))
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize) and layer is not model and any(id(w) in ids for w in _iter(layer.weights)):
            finalize()
            done.append(str(layer.name))
    if done:
        logger.debug("finalize_state after assignment: %s", ", ".join(done))
        forget_traced(model)
    return done


def forget_traced(model: Any) -> None:
    """Drop the model's traced train/test/predict functions (both generations retrace one that is
    None): one traced before a layer's derived state changed keeps the old tensors."""
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


def _layers(container: Any) -> list[Any]:
    layers = getattr(container, "layers", None)
    return list(layers) if layers is not None else []


def _iter(values: Iterable[Any]) -> Iterable[Any]:
    return list(values) if values is not None else []


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types.

    Raises ``TypeError`` for anything JSON cannot hold (framework objects, functions).
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "numpy"):  # eager tensors / variables left in a config
        return json_safe(np.asarray(value.numpy()))
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def json_safe_or_none(value: Any, what: str) -> Any:
    """:func:`json_safe`, or ``None`` (logged) when ``value`` holds something JSON cannot."""
    try:
        safe = json_safe(value)
        json.dumps(safe)
        return safe
    except (TypeError, ValueError) as exc:
        logger.warning("%s is not JSON-serialisable (%s); not captured", what, exc)
        return None


def model_config_of(model: Any) -> dict[str, Any] | None:
    """``{"class_name", "config"}`` of a model as JSON-safe data (adapted vocabularies in it);
    None for a subclassed model without ``get_config``."""
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None
    if not config:
        return None
    from ckptcompat.resuming.adapted_vocab import config_with_live_vocabularies

    safe = json_safe_or_none(config, "model config")  # with adapted vocabularies: no variable holds them
    return None if safe is None else config_with_live_vocabularies({"class_name": type(model).__name__,
                                                                    "config": safe}, model)
