"""A ``tf_idf`` lookup layer's ``idf_weights`` stored by name, for a caller's ``model=``.

Keras (3, and tf-keras 2.13+) saves a ``tf_idf`` ``StringLookup``/``IntegerLookup``/
``TextVectorization``'s idf weights with the layer's own ``save_own_variables``, by name beside
its variables (``vars/idf_weights``); its ``load_weights`` gives them back to the live layer. Where
the checkpoint's config carries the layer's vocabulary, :mod:`ckptcompat.resuming.adapted_vocab`
sets vocabulary and idf together; where it carries none (a ``.weights.h5`` has no config), the
stored idf weights go to the live layer here, as native ``load_weights`` does: paired by layer
path, else by order among the tf_idf lookup layers when both sides have as many; their shape
checked before anything is assigned.
"""

from __future__ import annotations

import logging
import re
from typing import Any, List, Set, Tuple

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.configs.table import LOOKUP_CLASSES
from ckptcompat.resuming.layer_paths import config_entries, live_layers
from ckptcompat.state import TrainingState

__all__ = ["IdfPlan", "plan_stored_idf", "set_stored_idf"]

log = logging.getLogger(__name__)

_KEY = "idf_weights"

#: (live layer, the checkpoint's idf weights as Keras saves them)
IdfPlan = List[Tuple[Any, np.ndarray]]


def _stored(state: TrainingState, live_names: Set[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The checkpoint's idf weights by layer path, and the names they had: ``idf_weights`` stored by
    name that are no variable of the model, nor of a layer whose config carries a vocabulary
    (adapted_vocab sets them with it) or of a layer of another class. A layer's second copy (a
    TextVectorization's inner lookup layer's, under ``_lookup_layer`` or, Keras 3.8+, its own name)
    is left out with it."""
    classes = {path: entry.get("class_name") for path, entry in config_entries(state.model_config)}
    carried = {path for path, entry in config_entries(state.model_config)
               if isinstance(entry["config"].get("vocabulary"), (list, tuple))}
    found: dict[str, np.ndarray] = {}
    names = []
    for name, value in state.weights.items():
        path, _, key = name.rpartition("/")
        if key != _KEY or not path or name in live_names or path in carried or path.rpartition("/")[0] in carried \
                or (path in classes and classes[path] not in LOOKUP_CLASSES):
            continue
        names.append(name)
        found[path] = np.asarray(value)
    outer = {path: value for path, value in found.items() if path.rpartition("/")[0] not in found}
    return outer, names


def _output_mode(layer: Any) -> str:
    mode = getattr(layer, "output_mode", None) or getattr(layer, "_output_mode", None)  # TextVectorization: private
    return str(mode or "")


def _live_tf_idf(model: Any) -> list[tuple[str, Any]]:
    return [(path, layer) for path, layer in live_layers(model)
            if type(layer).__name__ in LOOKUP_CLASSES and _output_mode(layer) in ("tf_idf", "tf-idf")]


def _generated(path: str) -> tuple[str, int]:
    """A generated layer name's base and number (``string_lookup_10`` -> ``("string_lookup", 10)``)."""
    base, _, number = path.rpartition("/")[2].rpartition("_")
    return (base, int(number)) if base and number.isdigit() else (path.rpartition("/")[2], 0)


def _snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def _pairs(live: list[tuple[str, Any]], stored: dict[str, np.ndarray], where: str) -> list[tuple[Any, np.ndarray]]:
    """The live layers with the checkpoint's idf weights: by path; the rest one to one, else per
    class by the order of Keras's generated names (``string_lookup``, ``string_lookup_2`` ...) where
    both sides have as many."""
    pairs = [(layer, stored[path]) for path, layer in live if path in stored]
    rest = [layer for path, layer in live if path not in stored]
    unpaired = sorted((path for path in stored if path not in dict(live)), key=_generated)
    if len(rest) == 1 and len(unpaired) == 1:
        paired = [(rest[0], stored[unpaired[0]])]
    else:
        paired = []
        for cls in sorted({type(layer).__name__ for layer in rest}):
            mine = [layer for layer in rest if type(layer).__name__ == cls]
            theirs = [path for path in unpaired if _generated(path)[0] == _snake(cls)]
            if len(mine) == len(theirs):
                paired += [(layer, stored[path]) for layer, path in zip(mine, theirs)]
    if paired:
        log.info("%s: %d tf_idf lookup layer(s) paired with the checkpoint's idf weights by class and order", where,
                 len(paired))
    if len(paired) < len(unpaired):
        log.warning("%s: the checkpoint's idf weights of %d tf_idf lookup layer(s) fit no layer of the model by "
                    "name, class or order; left out", where, len(unpaired) - len(paired))
    return pairs + paired


def _loader(layer: Any) -> Any:
    return getattr(layer, "load_own_variables", None) or getattr(layer, "_load_own_variables", None)


def _own(layer: Any) -> np.ndarray | None:
    """The live layer's idf weights as Keras saves them, None when it cannot say (none yet: a
    layer never adapted)."""
    for method in ("save_own_variables", "_save_own_variables"):
        if callable(getattr(layer, method, None)):
            store: dict[str, Any] = {}
            try:
                getattr(layer, method)(store)
            except Exception as exc:  # noqa: BLE001 -- Keras 3: no idf_weights_const before adapt
                log.debug("%s: its own idf weights cannot be read: %s", layer.name, exc)
                return None
            if _KEY in store:
                return np.asarray(store[_KEY])
    return None


def plan_stored_idf(model: Any, state: TrainingState, live_names: Set[str], where: str, *,
                    partial: bool = False) -> tuple[TrainingState, IdfPlan]:
    """``state`` without the idf weights stored by name, and those for the model's tf_idf lookup
    layers whose own differ (to set once the rest is assigned: :func:`set_stored_idf`); a layer
    whose idf weights hold another number of values raises before anything is assigned (is left
    as it is with ``partial``). ``live_names``: the model's variables (never taken for idf weights)."""
    stored, names = _stored(state, live_names)
    if not stored:
        return state, []
    plan: IdfPlan = []
    misfits = []
    for layer, value in _pairs(_live_tf_idf(model), stored, where):
        own = _own(layer)
        if not callable(_loader(layer)):  # tf.keras before 2.12 saves no idf weights by name, nor loads them
            log.warning("%s: %s keeps its own idf weights: this Keras cannot set them by name", where, layer.name)
        elif own is not None and own.size != value.size:
            misfits.append(f"{layer.name}: idf_weights of {value.size} values, the layer's hold {own.size}")
        elif own is None or not np.array_equal(own.ravel(), value.ravel().astype(own.dtype)):
            plan.append((layer, value if own is None else value.reshape(own.shape).astype(own.dtype)))
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


def set_stored_idf(model: Any, plan: IdfPlan, where: str) -> None:
    """Give each planned layer its idf weights through its own ``load_own_variables``; the model's
    traced functions are dropped (they hold the old idf weights as a constant)."""
    from ckptcompat.runtime._walk import forget_traced

    for layer, value in plan:
        try:
            _loader(layer)({_KEY: value})
        except Exception as exc:  # noqa: BLE001 -- Keras's own refusal, reported typed
            raise IncompatibleStateError(
                f"{where}: {layer.name}: cannot take the checkpoint's idf weights: {exc}",
                hint="build the layer as the checkpoint's (max_tokens, output_mode), or resume from a .keras file "
                     "(it carries the vocabulary)") from exc
        log.info("%s: %s: the checkpoint's tf_idf weights (%d values) set", where, layer.name, value.size)
    if plan:
        forget_traced(model)
