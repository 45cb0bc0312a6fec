"""Pairings of a whole file with a live model that Keras itself would use, around name matching.

Before names are tried: a subclassed model's Keras 3 file by attribute path, a ``.weights.h5``
without config through the live model's own config, a Keras 1 ``save_weights`` file through the
live layers' classes (:mod:`ckptcompat.resuming.keras1_pairing`). After names and structure failed: any Keras 3
file by the datasets the live model's own save walk reads (a layer class the reader does not know,
whose variables it could only call ``var_<i>``). Each returns the state under the live names, the
renames and a sentence for the log, or None.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from ckptcompat.state import TrainingState

__all__ = ["Paired", "before_names", "after_misfits"]

log = logging.getLogger(__name__)


class Paired(NamedTuple):
    """A pairing: the state under live names, file name -> live name, how it was found."""

    state: TrainingState
    renamed: dict[str, str]
    how: str


def before_names(state: TrainingState, model: Any, live_vars: Mapping[str, Any],
                 live: Mapping[str, tuple[int, ...]]) -> Paired | None:
    """The pairing Keras itself uses where names cannot work: a subclassed model's file
    (attribute paths), a ``.weights.h5`` that records no config (named through the model's), a
    Keras 1 weights file (converted through the live classes, as Keras 2.0-2.3 did)."""
    from ckptcompat.resuming.attribute_paths import through_attributes
    from ckptcompat.resuming.read import through_model_config

    through = through_attributes(state, model, live_vars, live)
    if through is not None:
        return Paired(*through, "saved under the model's attribute paths (a subclassed model), "
                                "paired as Keras 3 loads them")
    if not set(live) <= set(state.weights):
        through = through_model_config(state, model, live)
        if through is not None:
            return Paired(*through, "a weights file without config, named through the model's own config "
                                    "(as Keras's load_weights does)")
        from ckptcompat.resuming.keras1_pairing import through_live_classes

        through = through_live_classes(state, model, live)
        if through is not None:
            return Paired(*through, "a Keras 1 weights file without config, converted through the live layers' "
                                    "classes in order (as Keras 2's load_weights did)")
    return None


def after_misfits(state: TrainingState, model: Any, live_vars: Mapping[str, Any],
                  live: Mapping[str, tuple[int, ...]]) -> Paired | None:
    """A Keras 3 file neither names nor structure fit (a layer class the reader does not know):
    paired by the datasets the live model's own save walk reads, as Keras 3's loader does. Those
    paths name a layer by class and counter, not place: where the file's config lists its layers,
    the classes of the top-level layers holding variables must come in the live model's order, else
    two layers swapped in the code would be paired across, and the optimizer variables Keras 3 keeps
    by position would follow the live order, not the pairing."""
    from ckptcompat.resuming.attribute_paths import through_save_walk

    listed = _weighted_config_classes(state)
    weighted = [layer for layer in getattr(model, "layers", None) or [] if getattr(layer, "weights", None)]
    if listed is not None and not _same_classes(listed, [type(layer) for layer in weighted]):
        log.debug("%s: the file's layer classes are not in the live order; not paired by path", state.producer.path)
        return None
    through = through_save_walk(state, model, live_vars, live)
    if through is None:
        return None
    return Paired(*through, "paired by the file's dataset paths, as Keras 3 loads them (names and "
                            "structure did not fit)")


def _same_classes(listed: list[tuple[str | None, str | None]], live: list[type]) -> bool:
    """Whether the file's (class, registered name) pairs are the live classes, in order. Registered
    names (``package>Affine``) are compared only for a class name two live classes share: a class
    registered under a renamed package still pairs where its name alone is unambiguous."""
    if [cls for cls, _ in listed] != [c.__name__ for c in live]:
        return False
    shared = {c.__name__ for c in live if len({d for d in live if d.__name__ == c.__name__}) > 1}
    return all(registered is None or cls not in shared or registered == _registered_name(c)
               for (cls, registered), c in zip(listed, live))


def _registered_name(cls: type) -> str | None:
    from ckptcompat import runtime

    saving = getattr(runtime.keras_module(), "saving", None)
    try:
        return saving.get_registered_name(cls) if saving is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _weighted_config_classes(state: TrainingState) -> list[tuple[str | None, str | None]] | None:
    """The classes of the top-level layers the file's config lists that hold variables (a weight
    named under the layer's name), in config order, as the running Keras names them, each with its
    registered name where the config records one; None where the config lists no layers or a
    layer without a name (nothing to compare)."""
    config = state.model_config.get("config") if isinstance(state.model_config, Mapping) else None
    entries = config.get("layers") if isinstance(config, Mapping) else None
    if not isinstance(entries, list) or not entries:
        return None
    from ckptcompat.formats.keras_zip._layout import snake_case as _snake

    holders = {weight.split("/", 1)[0] for weight in state.weights}
    counters: dict[str, int] = {}
    out: list[str | None] = []
    for entry in entries:
        inner = entry.get("config") if isinstance(entry, Mapping) else None
        name = (inner.get("name") if isinstance(inner, Mapping) else None) or \
            (entry.get("name") if isinstance(entry, Mapping) else None)
        if not name:
            return None
        cls = str(entry.get("class_name") or "")
        base = _snake(cls)  # the group Keras saves it under: class and counter (a group no config layer claims)
        count = counters[base] = counters.get(base, -1) + 1
        if name in holders or (f"{base}_{count}" if count else base) in holders:
            registered = entry.get("registered_name")
            out.append((_class_name(cls or None), registered if isinstance(registered, str) else None))
    return out


def _class_name(name: str | None) -> str | None:
    """A config's class name as the running Keras names that class (``GroupQueryAttention`` is
    ``GroupedQueryAttention``); a class it does not have keeps its name."""
    from ckptcompat import runtime

    found = getattr(getattr(runtime.keras_module(), "layers", None), name or "", None)
    return getattr(found, "__name__", name) if isinstance(found, type) else name
