"""A ``tf_idf`` lookup layer's ``idf_weights`` stored by name, for a caller's ``model=``.

Keras (3, and tf-keras 2.13+) saves a ``tf_idf`` ``StringLookup``/``IntegerLookup``/
``TextVectorization``'s idf weights with the layer's own ``save_own_variables``, by name beside
its variables (``vars/idf_weights``); its ``load_weights`` gives them back to the live layer. Where
the checkpoint's config carries the layer's vocabulary, :mod:`ckptcompat.resuming.adapted_vocab`
sets vocabulary and idf together; where it carries none (a ``.weights.h5`` has no config), the
stored idf weights go to the live layer here, as native ``load_weights`` does: paired through the
file's layer positions, else by layer path, else per class in the order of Keras's generated names;
their size checked before anything is assigned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, List, Set, Tuple

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.formats.keras_zip._layout import snake_case
from ckptcompat.names.configs.table import LOOKUP_CLASSES
from ckptcompat.resuming.layer_paths import config_entries, live_layers
from ckptcompat.state import TrainingState

__all__ = ["IdfPlan", "plan_stored_idf", "saved_idf", "set_stored_idf"]

log = logging.getLogger(__name__)

_KEY = "idf_weights"

#: (live layer, the checkpoint's idf weights as Keras saves them)
IdfPlan = List[Tuple[Any, np.ndarray]]


def _lookup_like(path: str, classes: Mapping[str, Any], lookup_paths: Set[str]) -> bool:
    """Whether the checkpoint's layer at ``path`` is a lookup layer: its config class says so, or
    it names a live lookup layer, or a TextVectorization's inner one, or Keras named it after one."""
    if path in classes:
        return classes[path] in LOOKUP_CLASSES
    return path in lookup_paths or path.endswith("/_lookup_layer") or _generated(path)[0] in _BASES


def _stored(state: TrainingState, live_names: Set[str], lookup_paths: Set[str]
            ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The checkpoint's idf weights by layer path, and the names they had: ``idf_weights`` stored by
    name by a lookup layer, no variable of the model, of no layer whose config carries a vocabulary
    (adapted_vocab sets them with it). A layer's second copy (a TextVectorization's inner lookup
    layer's) is left out with it."""
    entries = list(config_entries(state.model_config))
    classes = {path: entry.get("class_name") for path, entry in entries}
    carried = {path for path, entry in entries if isinstance(entry["config"].get("vocabulary"), (list, tuple))}
    found: dict[str, np.ndarray] = {}
    names = []
    for name, value in state.weights.items():
        path, _, key = name.rpartition("/")
        if key != _KEY or not path or name in live_names or path in carried or path.rpartition("/")[0] in carried \
                or not _lookup_like(path, classes, lookup_paths):
            continue
        names.append(name)
        found[path] = np.asarray(value)
    outer = {path: value for path, value in found.items() if path.rpartition("/")[0] not in found}
    return outer, names


def _output_mode(layer: Any) -> str:
    mode = getattr(layer, "output_mode", None) or getattr(layer, "_output_mode", None)  # TextVectorization: private
    return str(mode or "")


def _generated(path: str) -> tuple[str, int]:
    """A generated layer name's base and number (``string_lookup_10`` -> ``("string_lookup", 10)``)."""
    base, _, number = path.rpartition("/")[2].rpartition("_")
    return (base, int(number)) if base and number.isdigit() else (path.rpartition("/")[2], 0)


#: the names Keras generates for lookup layers start with these
_BASES = frozenset(snake_case(cls) for cls in LOOKUP_CLASSES)


def _pairs(model: Any, stored: dict[str, np.ndarray], file_paths: Mapping[str, str] | None,
           where: str) -> list[tuple[Any, np.ndarray]]:
    """The live tf_idf layers with the checkpoint's idf weights. ``file_paths`` (a file without
    config: its layer path -> live layer path, as Keras's ``load_weights`` pairs them) first, then
    by layer path, then per class in the order of Keras's generated names where both sides have as
    many (not those a live layer of another kind holds); with a config (``file_paths`` None) by
    layer path only."""
    layers = dict(live_layers(model))
    tf_idf = {path: layer for path, layer in layers.items()
              if type(layer).__name__ in LOOKUP_CLASSES and _output_mode(layer) in ("tf_idf", "tf-idf")}
    pairs: list[tuple[Any, np.ndarray]] = []
    taken: set[str] = set()
    unpaired = list(stored)
    for rule in ([file_paths.get] if file_paths is not None else []) + [lambda path: path]:
        for path in list(unpaired):
            live = rule(path)
            if live in tf_idf and live not in taken:
                pairs.append((tf_idf[live], stored[path]))
                taken.add(live)
                unpaired.remove(path)
    rest = [layer for path, layer in tf_idf.items() if path not in taken]
    placed = {path for path in unpaired if path in layers or (file_paths or {}).get(path) in layers}  # not tf_idf
    for cls in sorted({type(layer).__name__ for layer in rest}) if file_paths is not None else []:
        mine = [layer for layer in rest if type(layer).__name__ == cls]
        theirs = sorted((path for path in unpaired if _generated(path)[0] == snake_case(cls) and path not in placed),
                        key=_generated)
        if len(mine) == len(theirs):
            log.info("%s: %d %s layer(s) paired with the checkpoint's idf weights by generated-name order", where,
                     len(mine), cls)
            pairs += [(layer, stored[path]) for layer, path in zip(mine, theirs)]
            unpaired = [path for path in unpaired if path not in theirs]
    if unpaired:
        log.warning("%s: the checkpoint's idf weights of %s fit no tf_idf lookup layer of the model; left out",
                    where, ", ".join(unpaired))
    return pairs


def _without_vocabulary(layer: Any) -> bool:
    """True for a layer that holds no token yet (never adapted): its idf weights are only the
    special tokens', any length fits (tf-keras's idf variable is ``(None,)``), as natively."""
    try:
        return len(layer.get_vocabulary(include_special_tokens=False)) == 0
    except Exception as exc:  # noqa: BLE001 -- tf.keras 2.4-2.5: no argument; a table not initialized
        log.debug("%s: its vocabulary cannot be read: %s", getattr(layer, "name", "?"), exc)
        return False


def _loader(layer: Any) -> Any:
    return getattr(layer, "load_own_variables", None) or getattr(layer, "_load_own_variables", None)


def saved_idf(layer: Any) -> np.ndarray | None:
    """A live tf_idf layer's idf weights as its own ``save_own_variables`` (tf.keras 2.12:
    ``_save_own_variables``) saves them, in their dtype; None where it saves none. Keras's own
    errors pass through (Keras 3: no ``idf_weights_const`` before ``adapt``)."""
    for method in ("save_own_variables", "_save_own_variables"):
        if callable(getattr(layer, method, None)):
            store: dict[str, Any] = {}
            getattr(layer, method)(store)
            if _KEY in store:
                return np.asarray(store[_KEY])
    return None


def _own(layer: Any) -> np.ndarray | None:
    """:func:`saved_idf`, None when the layer cannot say (none yet: a layer never adapted)."""
    try:
        return saved_idf(layer)
    except Exception as exc:  # noqa: BLE001 -- Keras 3: no idf_weights_const before adapt
        log.debug("%s: its own idf weights cannot be read: %s", getattr(layer, "name", "?"), exc)
        return None


def plan_stored_idf(model: Any, state: TrainingState, live_names: Callable[[], Set[str]], where: str, *,
                    partial: bool = False) -> tuple[TrainingState, IdfPlan]:
    """``state`` without the idf weights stored by name, and those for the model's tf_idf lookup
    layers whose own differ (to set once the rest is assigned: :func:`set_stored_idf`); a layer
    whose idf weights hold another number of values raises before anything is assigned (is left
    as it is with ``partial``). ``live_names``: the model's variables (never taken for idf weights)."""
    if not any(name.endswith("/" + _KEY) for name in state.weights):
        return state, []
    from ckptcompat.resuming.read import keras3_file_paths, through_labels

    lookups = {path for path, layer in live_layers(model) if type(layer).__name__ in LOOKUP_CLASSES}
    file_paths = None if state.model_config is not None else \
        through_labels(keras3_file_paths(model), getattr(state.producer, "path", None), labelled_only=True)
    lookups |= {path for path, live in (file_paths or {}).items() if live in lookups}  # a label the model lacks
    stored, names = _stored(state, live_names(), lookups)
    plan: IdfPlan = []
    misfits = []
    for layer, value in _pairs(model, stored, file_paths, where):
        own = _own(layer)
        if not callable(_loader(layer)):  # tf.keras before 2.12 saves no idf weights by name, nor loads them
            log.warning("%s: %s keeps its own idf weights: this Keras cannot set them by name", where, layer.name)
        elif own is not None and own.size != value.size and not _without_vocabulary(layer):
            misfits.append(f"{layer.name}: idf_weights of {value.size} values, the layer's hold {own.size}")
        elif own is None or own.size != value.size or not np.array_equal(own.ravel(), value.ravel().astype(own.dtype)):
            plan.append((layer, value if own is None or own.size != value.size
                         else value.reshape(own.shape).astype(own.dtype)))
    if misfits and partial:
        log.warning("%s: partial: tf_idf lookup layers keep their own idf weights: %s", where, "; ".join(misfits))
    elif misfits:
        raise IncompatibleStateError(
            f"{where}: the model's tf_idf lookup layers cannot take the checkpoint's idf weights; nothing was "
            "assigned", misfits,
            hint="build those layers with the checkpoint's max_tokens and adapt or set_vocabulary them to its "
                 "vocabulary (idf weights are per token), resume from a .keras file (it carries the vocabulary), "
                 "or pass partial=True to keep the layers' own")
    return state.replace(weights={n: v for n, v in state.weights.items() if n not in names}), plan


def set_stored_idf(model: Any, plan: IdfPlan, where: str, *, partial: bool = False) -> None:
    """Give each planned layer its idf weights through its own ``load_own_variables``; the model's
    traced functions are dropped (they hold the old idf weights as a constant)."""
    from ckptcompat.runtime._walk import forget_traced

    for layer, value in plan:
        try:
            _loader(layer)({_KEY: value})
        except Exception as exc:  # noqa: BLE001 -- Keras's own refusal, reported typed
            if partial:
                log.warning("%s: partial: %s keeps its own idf weights: %s", where, layer.name, exc)
                continue
            raise IncompatibleStateError(
                f"{where}: {layer.name}: cannot take the checkpoint's idf weights: {exc}",
                hint="build the layer as the checkpoint's (max_tokens, output_mode), or resume from a .keras file "
                     "(it carries the vocabulary)") from exc
        log.info("%s: %s: the checkpoint's tf_idf weights (%d values) set", where, layer.name, value.size)
    if plan:
        forget_traced(model)
