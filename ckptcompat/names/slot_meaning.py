"""Optimizer state whose presence differs between generations, translated by its meaning.

Which slots an optimizer creates is the framework's business (derived from the live
optimizer, or from the generated tables in :mod:`ckptcompat.names.optimizer_layouts`).
What they *mean* decides what crosses a generation gap:

* a slot is **inert** when the optimizer's hyper-parameters make its value irrelevant:
  tf.keras 2.11+ / tf-keras ``SGD`` keeps ``m = -lr * g`` even at ``momentum=0`` (the next
  step multiplies it by 0), while Keras 3 and OptimizerV2 create no slot at all;
  ``vhat`` without ``amsgrad``, ``mg`` without ``centered``, RMSprop ``momentum`` at 0;
* an all-zero slot equals an absent one (every optimizer starts its slots at zero);
* Nadam's momentum-cache product (``u_product``; ``momentum_cache`` in OptimizerV2) is a
  function of the step count, ``beta_1`` and the generation's momentum schedule
  (:func:`nadam_schedule`), so it is recomputed when a generation did not store it or
  stored another schedule's product.

Pure numpy; no framework import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["SlotTranslation", "is_inert", "is_undecided", "is_inert_for_shape", "placeholder_slots", "translate_slots",
           "nadam_u_product", "NON_SLOT_ATTRS",
           "nadam_schedule", "describe_nadam_schedule", "KERAS3_NADAM_SCHEDULE"]

_Hyper = Mapping[str, Any]


def _off(key: str) -> Callable[[_Hyper], bool | None]:
    def check(h: _Hyper) -> bool | None:
        value = h.get(key)
        return None if value is None else not bool(value)
    return check


def _zero(key: str) -> Callable[[_Hyper], bool | None]:
    def check(h: _Hyper) -> bool | None:
        value = h.get(key)
        if value is None:
            return None
        try:
            return float(value) == 0.0
        except (TypeError, ValueError):
            return None
    return check


#: canonical class -> canonical slot -> "is this slot inert under these hyper-parameters"
#: (``None`` = cannot tell from what the config holds).
_INERT: dict[str, dict[str, Callable[[_Hyper], bool | None]]] = {
    "SGD": {"momentum": _zero("momentum")},
    "RMSprop": {"momentum": _zero("momentum"), "mg": _off("centered")},
    "Adam": {"vhat": _off("amsgrad")},
    "AdamW": {"vhat": _off("amsgrad")},
}

#: optimizer attribute holding a non-slot variable -> canonical name (live optimizers)
NON_SLOT_ATTRS: dict[str, str] = {"_u_product": "u_product", "_m_cache": "u_product",
                                   "m_schedule": "u_product"}  # standalone Keras <= 2.3


#: (class, slot) that the optimizer never updates for variables of fewer than 2 dimensions
#: (Keras 3 Adafactor keeps scalar r/c placeholders there; tf-keras creates none)
_UNFACTORED = {("Adafactor", "r"), ("Adafactor", "c")}


def placeholder_slots(cls: str) -> frozenset[str]:
    """Slots of ``cls`` that are scalar placeholders for variables of fewer than 2 dimensions in
    one generation (Keras 3 Adafactor ``r``/``c``) and absent in the other (tf-keras)."""
    return frozenset(slot for c, slot in _UNFACTORED if c == cls)


def is_inert_for_shape(cls: str, slot: str, var_shape: tuple[int, ...]) -> bool:
    """True when ``slot`` is a placeholder for a variable of this (slot) shape."""
    return (cls, slot) in _UNFACTORED and len(var_shape) == 0


def is_undecided(cls: str, slot: str, hyper: _Hyper) -> bool:
    """True when ``slot`` is one Keras creates only when ``hyper`` uses it (:data:`_INERT`) and
    ``hyper`` does not record the value that decides (a ``.keras`` without optimizer config)."""
    check = _INERT.get(cls, {}).get(slot)
    return check is not None and check(hyper) is None


def is_inert(cls: str, slot: str, hyper: _Hyper) -> bool:
    """True when ``slot`` of optimizer ``cls`` carries no state under ``hyper``."""
    check = _INERT.get(cls, {}).get(slot)
    return bool(check(hyper)) if check is not None else False


@dataclass
class SlotTranslation:
    """Slots after translation, plus what was dropped / created and why."""

    slots: dict[str, np.ndarray]                       # flat "<var>/<slot>" -> value
    dropped: list[str] = field(default_factory=list)   # "<var>/<slot>: reason"
    created: list[str] = field(default_factory=list)


def translate_slots(cls: str, src_hyper: _Hyper, live_hyper: _Hyper, src: Mapping[str, np.ndarray],
                    live: Mapping[str, tuple[int, ...]], iterations: int | None) -> SlotTranslation:
    """Make the checkpoint's flat slots (``<var>/<slot>``) fit the live optimizer's slots.

    A checkpoint slot the live optimizer lacks is dropped when it is inert under the
    checkpoint's hyper-parameters (or the live optimizer's) or all zero; a live slot the
    checkpoint lacks is created as zeros when it was inert for the producer, when the
    producer never had that slot kind and it is inert for the consumer, or when the
    optimizer had not taken a step (``iterations`` 0: "no slots yet"). Everything else is
    left for the caller to report as a misfit.
    """
    out = SlotTranslation(slots={})
    src_kinds = {key.rsplit("/", 1)[1] for key in src}
    for key, value in src.items():
        slot = key.rsplit("/", 1)[1]
        if key in live:
            out.slots[key] = value
            continue
        array = np.asarray(value)
        live_kinds = {k.rsplit("/", 1)[1] for k in live}
        if slot not in live_kinds and is_inert(cls, slot, src_hyper):
            out.dropped.append(f"{key}: inert in the checkpoint's {cls} (hyper-parameters make it unused)")
        elif slot not in live_kinds and is_inert(cls, slot, live_hyper):
            out.dropped.append(f"{key}: unused by the model's {cls} configuration")
        elif not np.any(array):
            out.dropped.append(f"{key}: all zero, the same as absent")
        else:
            out.slots[key] = value  # a real misfit: the caller reports it
    for key, shape in live.items():
        if key in src:
            continue
        slot = key.rsplit("/", 1)[1]
        reason = None
        if slot not in src_kinds and is_inert(cls, slot, src_hyper):
            reason = "inert in the checkpoint's configuration, starts at zero"
        elif slot not in src_kinds and is_inert(cls, slot, live_hyper):
            reason = "unused by the model's configuration, starts at zero"
        elif is_inert_for_shape(cls, slot, shape):
            reason = f"{cls} keeps no {slot!r} for a variable of shape {shape}, starts at zero"
        elif not src and not iterations:
            reason = "the checkpoint's optimizer had no slots yet (never stepped)"
        elif slot not in src_kinds and iterations and is_undecided(cls, slot, src_hyper):
            # every Keras that writes a stepped optimizer without this slot kind creates it
            # only when its hyper-parameter uses it (Keras 3, OptimizerV2)
            reason = (f"no {slot!r} in a stepped {cls} whose configuration the checkpoint does not "
                      "record: created only when used, starts at zero")
        if reason is not None:
            out.slots[key] = np.zeros(shape, dtype=np.float32)
            out.created.append(f"{key}: {reason}")
    return out


#: Keras 3's and tf.keras 2.11+'s Nadam momentum schedule: ``0.96 ** t`` for t = 1, 2, ...
KERAS3_NADAM_SCHEDULE: tuple[float, int] = (1.0, 1)


def nadam_u_product(iterations: int, beta_1: float, dtype: Any = np.float32,
                    schedule: tuple[float, int] = KERAS3_NADAM_SCHEDULE, keras3: bool = False) -> np.ndarray:
    """Nadam's momentum-cache product after ``iterations`` steps, as the optimizer computes it:
    ``prod_t beta_1 * (1 - 0.5 * 0.96 ** (scale * t))`` accumulated step by step in ``dtype``,
    ``schedule = (scale, first)`` (:func:`nadam_schedule`): t runs from ``first`` on.

    ``keras3``: Keras 3's order of operations, ``(product * beta_1) * (1 - ...)``; tf.keras,
    OptimizerV2 and standalone Keras multiply the product by ``beta_1 * (1 - ...)``. The power
    is the correctly rounded one (pow in double, rounded once), what TensorFlow's ``pow`` gives
    (numpy's float32 power differs between releases). Standalone Keras 2.3 reads its counter
    after the increment (measured on TF 1.15), so its t runs from 2 to n + 1; Keras 2.2 leaves
    that order to the graph, and its files do not store ``m_schedule``."""
    dt = np.dtype(dtype)
    product = dt.type(1.0)
    beta = dt.type(beta_1)
    scale, first = schedule
    for t in range(first, int(iterations) + first):
        power = float(dt.type(dt.type(t) * dt.type(scale)))
        factor = dt.type(1.0) - dt.type(0.5) * dt.type(float(dt.type(0.96)) ** power)
        product = dt.type(dt.type(product * beta) * factor) if keras3 else dt.type(product * dt.type(beta * factor))
    return np.asarray(product, dtype=dt)


def nadam_schedule(config: Mapping[str, Any] | None, hyperparameters: Mapping[str, Any]) -> tuple[float, int]:
    """``(scale, first)`` of a saved Nadam's momentum schedule ``0.96 ** (scale * t)``: standalone
    Keras <= 2.3 ``(schedule_decay, 2)``; OptimizerV2 (tf.keras <= 2.10, ``optimizers.legacy``)
    ``(decay, 1)``, its ``decay`` (0.004 by default) scaling the schedule, not the learning rate;
    Keras 3 and tf.keras 2.11+ :data:`KERAS3_NADAM_SCHEDULE` (no ``decay`` in their config)."""
    cfg = config or {}
    inner = cfg.get("config") if isinstance(cfg.get("config"), Mapping) else cfg
    merged = {**inner, **hyperparameters}
    if merged.get("schedule_decay") is not None:  # float32 in the optimizer: compared as such
        return float(np.float32(merged["schedule_decay"])), 2
    if merged.get("decay") is not None:
        return float(np.float32(merged["decay"])), 1
    return KERAS3_NADAM_SCHEDULE


def describe_nadam_schedule(schedule: tuple[float, int]) -> str:
    """``0.96 ** (0.004 * t), t from 1`` for messages."""
    scale, first = schedule
    return f"0.96 ** t, t from {first}" if scale == 1.0 else f"0.96 ** ({scale:g} * t), t from {first}"
