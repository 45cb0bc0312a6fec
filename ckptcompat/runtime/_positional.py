"""Optimizer variables a file stored by position only (``optimizer/vars/<i>``, no config).

A Keras 3 (or tf.keras 2.11+) weights file without the optimizer's config keeps its variables
as a list. They are placed onto the live optimizer's slots in the order that optimizer stores
them, when count and every shape agree. An optimizer with no such order of its own (Keras 2's
``OptimizerV2``, the only kind before tf.keras 2.11) gets the order a Keras 3 optimizer of the
same class and flags creates, from the generated layout tables
(:func:`ckptcompat.names.optimizer_layouts.slot_groups`). What only one generation keeps among
the variables (Keras 3's learning rate and Nadam product, Keras 3 Adafactor's scalar placeholders,
tf-keras SGD's momentum at 0) is taken out before the pairing, or named for translation by meaning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ckptcompat.names.optimizer_layouts import non_slot_attributes, slot_groups, slot_shape
from ckptcompat.names.slot_meaning import NON_SLOT_ATTRS, is_inert_for_shape, placeholder_slots
from ckptcompat.runtime._flavour_ops import FlavourOps
from ckptcompat.state import OptimizerState, TrainingState

__all__ = ["place_positional", "slots_from_positions", "trainable_ids"]

logger = logging.getLogger(__name__)


def place_positional(ops: FlavourOps, state: TrainingState, model: Any) -> OptimizerState | None:
    """The optimizer state of a file that stored its optimizer variables by position only and
    without a class (``vars/<i>``), read as the model's own optimizer would load them: its class,
    slots placed in order; None when the model has no optimizer or count and shapes disagree."""
    import dataclasses

    opt = ops.optimizer_of(model)
    st = state.optimizer
    if opt is None or st is None:
        return None
    ops.build_optimizer(opt, model)
    named = ops.variables(model)
    placed = slots_from_positions(ops, opt, ops.live_slots(opt, named), st, named, trainable_ids(model))
    if placed is st:
        return None
    return dataclasses.replace(placed, class_name=ops.optimizer_class(opt))


def trainable_ids(model: Any) -> frozenset[int] | None:
    """The ids of ``model``'s trainable variables (a frozen layer's variables keep ``trainable``
    True in Keras 2); None when the model does not list them."""
    found = getattr(model, "trainable_variables", None)
    return None if found is None else frozenset(id(v) for v in found)


def slots_from_positions(ops: FlavourOps, opt: Any, live: dict[str, dict[str, Any]],
                         st: OptimizerState, named: Mapping[str, Any],
                         trainable: frozenset[int] | None = None) -> OptimizerState:
    """Slots of a file that kept its optimizer variables by position only (``vars/<i>``: a
    weights file without optimizer config), placed the way the framework loads them: onto
    the live optimizer's variables in order, when count and every shape agree. ``trainable``:
    the ids of the model's trainable variables (:func:`trainable_ids`)."""
    import dataclasses

    count = sum(1 for key in st.extra if re.fullmatch(r"vars/\d+", key))  # not a wrapper's loss-scale keys
    arrays = [st.extra.get(f"vars/{i}") for i in range(count)]
    if st.slots or not arrays or any(a is None for a in arrays):
        return st
    ordered = ops.ordered_optimizer_variables(opt)
    if ordered is None:
        ordered = _in_table_order(ops, st, opt, live, named)
    if ordered is None:
        return st
    cls = ops.optimizer_class(opt)
    product = _keeps_non_slot_product(st.class_name, cls)
    where = {id(var): (name, slot) for name, per in live.items() for slot, var in per.items()}
    values = [np.asarray(a) for a in arrays]  # read once for every reading
    readings = _placeholder_readings(ops, cls, ordered, where, named)
    if st.class_name in (cls, "Unknown"):  # exactly the count: those generations keep no rate variable
        readings += [order for order in _file_only_readings(ops, opt, cls, ordered[0], live, named, trainable)
                     if len(order) == len(values)]
    found = [r for r in (_reconcile(ops, opt, order, values, product) for order in readings) if r is not None]
    if len(found) != 1:
        return st
    (ordered, arrays, u_product, u_at), = found
    hyper = st.hyperparameters
    if u_at == 1 and "learning_rate" in hyper and np.float32(hyper["learning_rate"]) == np.float32(u_product):
        # a scheduled Keras 3.0-3.9 Nadam stores its product second: the read took it for the rate
        hyper = {k: v for k, v in hyper.items() if k != "learning_rate"}
    slots: dict[str, dict[str, np.ndarray]] = {}
    iterations = st.iterations
    for var, array in zip(ordered, arrays):
        array = np.asarray(array)
        if var is _ABSENT_HERE:  # a placeholder the live optimizer does not keep: zero, or not this reading
            if array.shape != () or np.any(array):
                return st
            continue
        if _shape(ops, var) != array.shape:
            return st
        if isinstance(var, _FileOnly):  # a slot kind the live optimizer does not keep: translated by meaning
            slots.setdefault(var.name, {})[var.slot] = array
        elif id(var) in where:
            name, slot = where[id(var)]
            slots.setdefault(name, {})[slot] = array
        elif array.shape == () and array.dtype.kind in "iu" and iterations is None:
            iterations = int(array)
    unplaced = [(slot, var) for name, per in live.items() for slot, var in per.items()
                if slot not in slots.get(name, {})]
    if any(not is_inert_for_shape(cls, slot, ops.shape(var)) for slot, var in unplaced):
        return st  # only a placeholder the file's generation does not keep stays as it is
    logger.info("optimizer variables stored by position only: %d slot(s) placed in the order "
                "the optimizer stores them (every shape verified)", sum(len(v) for v in slots.values()))
    extra = st.extra if u_product is None else {**st.extra, "u_product": u_product}
    return dataclasses.replace(st, slots=slots, iterations=iterations, extra=extra, hyperparameters=hyper)


def _keeps_non_slot_product(*classes: str) -> bool:
    """True when a generation's layout table lists, for one of ``classes``, a non-slot variable
    besides the counter and the rate (Nadam's momentum-cache product, :data:`NON_SLOT_ATTRS`)."""
    return any(attr in NON_SLOT_ATTRS for cls in classes if cls and cls != "Unknown"
               for generation in ("keras3", "keras2") for attr in non_slot_attributes(cls, {}, generation) or [])


class _FileOnly:
    """In a reading: the slot ``slot`` of model variable ``name`` that the file's generation keeps
    and the live optimizer does not (its layout table says where; its shape follows the variable's)."""

    def __init__(self, name: str, slot: str, shape: tuple[int, ...]) -> None:
        self.name, self.slot, self.shape = name, slot, shape


def _file_only_readings(ops: FlavourOps, opt: Any, cls: str, iterations: Any, live: dict[str, dict[str, Any]],
                        named: Mapping[str, Any], trainable: frozenset[int] | None) -> list[list[Any]]:
    """Orders of a file whose generation keeps slot kinds the live optimizer does not create under
    the same configuration (tf.keras 2.11+ / tf-keras ``SGD`` keeps ``momentum`` even at 0, Keras 3
    creates none): ``[iterations, slots...]`` in the creation order that generation's layout table
    gives for the live class and configuration, its extra slots as :class:`_FileOnly`. The engine
    translates those by meaning (inert under the live hyper-parameters or zero: dropped and reported;
    anything else: refused). Empty when no table names a kind the live optimizer lacks."""
    try:
        config = ops.optimizer_config(opt)  # the flavour's reader: one session run under graph execution
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return []
    config = config if isinstance(config, Mapping) else {}
    trained = [(name, var) for name, var in named.items() if name in live or (
        id(var) in trainable if trainable is not None else getattr(var, "trainable", True))]
    kinds = {slot for per in live.values() for slot in per}
    readings: list[list[Any]] = []
    seen: list[list[Any]] = []
    for generation in ("keras2", "keras3"):
        groups = slot_groups(cls, config, generation) or []
        table_kinds = {slot for group in groups for slot in group}
        if not table_kinds - kinds or not kinds <= table_kinds:
            continue  # nothing the live optimizer lacks, or live kinds this table does not place
        order: list[Any] = [iterations]
        for group in groups:
            for name, var in trained:
                for slot in group:
                    held = live.get(name, {}).get(slot)
                    shape = slot_shape(cls, slot, ops.shape(var))
                    order.append(held if held is not None else _FileOnly(name, slot, shape))
        key = [(v.name, v.slot) if isinstance(v, _FileOnly) else id(v) for v in order]
        if key not in seen:  # both generations' tables can give the same order
            seen.append(key)
            readings.append(order)
    return readings


#: in a live order: a placeholder slot the file's generation keeps and the live optimizer does not
_ABSENT_HERE = object()


def _placeholder_readings(ops: FlavourOps, cls: str, ordered: list[Any], where: Mapping[int, tuple[str, str]],
                          named: Mapping[str, Any]) -> list[list[Any]]:
    """The live order as it is and, for a class that keeps scalar placeholder slots in one
    generation only (Keras 3 Adafactor ``r``/``c`` of variables under 2 dimensions; tf-keras keeps
    none among its variables): without the live placeholders (a tf-keras file), or with the
    file's placeholders (:data:`_ABSENT_HERE`) before each such variable's first slot (a Keras 3 file)."""
    kinds = sorted(placeholder_slots(cls))
    if not kinds:
        return [ordered]

    def flat(var: Any) -> bool:  # a slot of a model variable under 2 dimensions
        name = where.get(id(var), ("",))[0]
        return name in named and len(ops.shape(named[name])) < 2

    own = [var for var in ordered if flat(var) and where[id(var)][1] in kinds and ops.shape(var) == ()]
    if own:
        return [ordered, [var for var in ordered if not any(var is o for o in own)]]
    expanded: list[Any] = []
    seen: set[str] = set()
    for var in ordered:
        name = where.get(id(var), ("",))[0]
        if flat(var) and name not in seen:
            expanded += [_ABSENT_HERE] * len(kinds)
        seen.add(name)
        expanded.append(var)
    return [ordered, expanded] if len(expanded) != len(ordered) else [ordered]


def _shape(ops: FlavourOps, var: Any) -> tuple[int, ...]:
    if isinstance(var, _FileOnly):
        return var.shape
    return () if var is _ABSENT_HERE else ops.shape(var)


def _reconcile(ops: FlavourOps, opt: Any, ordered: list[Any], arrays: list[np.ndarray],
               product: bool) -> tuple[list[Any], list[np.ndarray], np.ndarray | None, int | None] | None:
    """The live variables and the file's values, each without what only one generation keeps among
    them: Keras 3's learning-rate variable (second) and, where ``product`` (the class keeps one:
    :func:`_keeps_non_slot_product`), Nadam's momentum-cache product (``u_product``: after the
    slots, or before them in early 3.x; tf-keras keeps it outside its variables). Returns both
    lists (iterations and slots, paired by position), the file's product and its position (None:
    not stored); None when no reading fits every shape, or two readings differ."""
    rate = getattr(opt, "_learning_rate", None)
    products = [p for p in (getattr(opt, attr, None) for attr in NON_SLOT_ATTRS) if p is not None]
    core = [var for i, var in enumerate(ordered)
            if not any(var is p for p in products) and not (i == 1 and var is rate)]
    extra = len(arrays) - len(core)
    last = len(arrays) - 1
    # positions of the file's [learning rate], [u_product] each reading takes out
    # (a Nadam file's one extra value is its product: Keras 3 under a schedule keeps no rate variable)
    readings = {0: [()], 1: [(None, 1), (None, last)] if product else [(1,)],
                2: [(1, 2), (1, last)] if product else []}.get(extra, [])
    found: dict[tuple[Any, ...], tuple[list[np.ndarray], np.ndarray | None]] = {}
    for reading in readings:
        drop = {i for i in reading if i is not None}
        if len(drop) != extra or not all(0 < i < len(arrays) and arrays[i].shape == () and
                                         arrays[i].dtype.kind == "f" for i in drop):
            continue
        kept = [a for i, a in enumerate(arrays) if i not in drop]
        if all(_shape(ops, var) == a.shape for var, a in zip(core, kept)):
            u_at = reading[1] if len(reading) == 2 else None
            found[(*sorted(drop), u_at)] = (kept, None if u_at is None else arrays[u_at], u_at)
    if len(found) != 1:
        return None  # no reading fits every shape, or two do with other meanings: not placed
    (kept, u_product, u_at), = found.values()
    return core, kept, u_product, u_at


def _in_table_order(ops: FlavourOps, st: OptimizerState, opt: Any, live: dict[str, dict[str, Any]],
                    named: Mapping[str, Any]) -> list[Any] | None:
    """``[iterations, slots...]`` of the live optimizer in a Keras 3 optimizer's creation order
    for its class and flags (read from the live config); None when a table or a slot is missing."""
    try:
        config = opt.get_config()
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None
    cls = ops.optimizer_class(opt) if st.class_name == "Unknown" else st.class_name  # no class in the file
    groups = slot_groups(cls, config if isinstance(config, Mapping) else {}, "keras3")
    iterations = getattr(opt, "iterations", None)
    if groups is None or iterations is None:
        return None
    trainable = [name for name in named if name in live]  # the model's order
    ordered = [iterations]
    for group in groups:
        for name in trainable:
            for slot in group:
                if slot not in live[name]:
                    return None
                ordered.append(live[name][slot])
    if len(ordered) - 1 != sum(len(per) for per in live.values()):
        return None
    logger.info("the live %s keeps no positional order of its own: using a Keras 3 %s's (%s)",
                type(opt).__name__, cls, " then ".join("+".join(g) for g in groups))
    return ordered
