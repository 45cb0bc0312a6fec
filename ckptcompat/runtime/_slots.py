"""Slots of a live list-style optimizer (tf.keras 2.11+, tf-keras, Keras 3), found from the
optimizer object itself: its list attributes of variables and the slot variables' names.
No per-class table; never imports a framework.
"""

from __future__ import annotations

import logging
from typing import Any

from ckptcompat.names.variables import CANONICAL_SLOTS, canonical_slot

__all__ = ["is_variable", "list_slots", "raw_slot_name", "frozen_slots", "untracked_frozen_slots",
           "settle_frozen_slots"]

log = logging.getLogger(__name__)

#: Optimizer attributes that collect variables of every kind (not one slot kind), or state
#: that is not a slot (EMA copies, gradient accumulators).
_NOT_SLOT_LISTS = frozenset({
    "_variables", "_trainable_variables", "_non_trainable_variables", "_weights", "_layers",
    "_tracked", "_self_tracked_trackables", "_trainable_weights", "_non_trainable_weights",
    "_var_list", "_model_variables_moving_average", "_accumulated_gradients",
    "_trainable_variables_indices"})


def is_variable(obj: Any) -> bool:
    """True for anything variable-like (has a shape and can be assigned)."""
    return hasattr(obj, "shape") and hasattr(obj, "assign")


def _slot_lists(opt: Any) -> list[tuple[str, Any]]:
    """Every list attribute of ``opt`` that holds one kind of per-variable state."""
    out, seen = [], set()
    for attr, value in vars(opt).items():
        if attr in _NOT_SLOT_LISTS or id(value) in seen or isinstance(value, (str, bytes, dict)):
            continue
        if not (isinstance(value, (list, tuple)) or type(value).__name__ in ("ListWrapper", "TrackedList")):
            continue
        items = list(value)
        if items and all(item is None or is_variable(item) for item in items) \
                and any(item is not None for item in items):
            seen.add(id(value))
            out.append((attr, items))
    return out


def _var_path(var: Any) -> str:
    return str(getattr(var, "path", None) or var.name).split(":")[0]


def raw_slot_name(slot_var: Any, model_var: Any, attr: str) -> str:
    """The slot's own name as its optimizer created it, read from the variable's name.

    Keras 3: ``dense_kernel_momentum`` for ``dense/kernel``; tf.keras 2.11+ / tf-keras:
    ``Adam/m/dense/kernel``; a name that does not carry the model variable (Keras 3
    Adafactor's factored ``r``/``c``) falls back to the attribute name without ``_``.
    """
    name = str(slot_var.name).split(":")[0]
    ref = _var_path(model_var)
    flat = ref.replace("/", "_") + "_"
    short = name.rsplit("/", 1)[-1]
    if short.startswith(flat):
        return short[len(flat):]
    before, found, after = f"/{name}/".partition(f"/{ref}/")
    if found and after.strip("/"):
        return after.strip("/")
    if found and before.strip("/"):
        return before.rsplit("/", 1)[-1]
    return attr.lstrip("_")


def list_slots(opt: Any, cls: str, named: dict[str, Any], index_of: Any) -> dict[str, dict[str, Any]]:
    """Slots of a list-style optimizer (tf.keras 2.11+, tf-keras, Keras 3), found from the
    optimizer's own attributes and variable names; ``index_of(var)`` gives the list index."""
    out: dict[str, dict[str, Any]] = {}
    found_in: dict[tuple[str, str], str] = {}  # (variable, slot) -> the list attribute holding it
    for attr, values in _slot_lists(opt):
        for name, var in named.items():
            i = index_of(var)
            if i is None or i >= len(values) or values[i] is None:
                continue
            slot = canonical_slot(cls, raw_slot_name(values[i], var, attr))
            per = out.setdefault(name, {})
            if slot in per and per[slot] is not values[i]:
                # two lists' slots carry one name (tf-keras Adafactor names the ``c`` placeholder of a
                # variable under 2 dimensions ``r/...`` too): each list's attribute tells its slot,
                # where both attributes are distinct slots of the class not yet taken
                mine, theirs = (canonical_slot(cls, a.lstrip("_")) for a in (attr, found_in[(name, slot)]))
                if mine != theirs and {mine, theirs} <= set(CANONICAL_SLOTS.get(cls, ())) \
                        and not ({mine, theirs} - {slot}) & set(per):
                    per[theirs] = per.pop(slot)
                    found_in[(name, theirs)] = found_in[(name, slot)]
                    slot = mine
                else:
                    log.warning("%s: two slots of %s are both named %r (lists %s and %s); keeping the one in %s",
                                cls, name, slot, found_in[(name, slot)], attr, attr)
            per[slot] = values[i]
            found_in[(name, slot)] = attr
    return out


def frozen_slots(model: Any, named: dict[str, Any], slots: dict[str, Any], live_slots: dict[str, Any]) -> list[str]:
    """The checkpoint's slots (``"<variable>/<slot>"``) of variables the live model holds but does
    not train, where its optimizer keeps no such slot: a layer frozen after the optimizer was built
    (``trainable=False``: Keras 2 keeps its slots, Keras 3.1+ builds none for it), or a kernel the
    live model trains through LoRA factors. They take no part in a step while so. None unless every
    live slot has a checkpoint value (the LoRA restart's zero slots count) and the model lists its
    ``trainable_weights``."""
    weights = getattr(model, "trainable_weights", None)
    if weights is None or any(key not in slots for key in live_slots):
        return []
    trained = {id(v) for v in weights}
    frozen = {name for name, var in named.items() if id(var) not in trained}
    return [key for key in slots if key not in live_slots and key.rpartition("/")[0] in frozen]


def _frozen_layer_variables(model: Any) -> set[int]:
    """``id`` of every variable of a layer set ``trainable=False`` (nested models walked)."""
    out: set[int] = set()

    def walk(container: Any, depth: int) -> None:
        for layer in list(getattr(container, "layers", None) or []) if depth < 64 else []:
            if getattr(layer, "trainable", True) is False:
                out.update(id(v) for v in getattr(layer, "weights", None) or [])
            walk(layer, depth + 1)

    walk(model, 0)
    return out


def untracked_frozen_slots(model: Any, named: dict[str, Any], slots: dict[str, Any],
                           live_slots: dict[str, Any]) -> list[str]:
    """The live optimizer's slots (``"<variable>/<slot>"``) of variables in frozen layers that the
    checkpoint's optimizer never tracked: Keras 3.0 builds slots for a layer frozen in its
    constructor (its ``trainable_variables`` still list it), where the writer kept none. The live
    optimizer's own initial value is their value."""
    frozen = _frozen_layer_variables(model)
    if not frozen:
        return []
    names = {name for name, var in named.items() if id(var) in frozen}
    return [key for key in live_slots if key not in slots and key.rpartition("/")[0] in names]


def settle_frozen_slots(model: Any, named: dict[str, Any], slots: dict[str, Any], live_slots: dict[str, Any]
                        ) -> list[str]:
    """Slots of frozen variables that only one side has, taken out of ``slots`` / ``live_slots``
    (what is then matched): the checkpoint's, which the live optimizer keeps none of (inert while
    frozen; unfrozen later, those moments start from zero: warned), and the live optimizer's, which the
    checkpoint's never had (left as built). Returns the notes for the report."""
    notes = []
    frozen = frozen_slots(model, named, slots, live_slots)
    if frozen:
        log.warning("%d optimizer slot(s) of variables the model does not train (frozen layers, or kernels "
                    "under LoRA) left out: %s", len(frozen), ", ".join(frozen))
    for key in frozen:
        notes.append(f"dropped {key}: slot of a variable the model does not train (frozen, or under LoRA)")
        del slots[key]
    for key in untracked_frozen_slots(model, named, slots, live_slots):
        notes.append(f"kept {key} as built: a frozen layer's slot, which the checkpoint's optimizer never had")
        del live_slots[key]
    return notes
