"""Learning-rate forms across generations: Keras 2's ``decay`` argument, and a schedule held in
place of the rate.

A saved optimizer's rate is a float ``learning_rate`` or a serialized schedule: Keras writes the
schedule *as* ``learning_rate`` in its configs; ckptcompat's state keeps it apart
(``learning_rate`` None, ``learning_rate_schedule``): :func:`rate_and_schedule` (readers) and
:func:`schedule_as_rate` (writers) convert.

OptimizerV2 (tf.keras <= 2.10 and ``optimizers.legacy``) decays the learning rate as
``lr / (1 + decay * iterations)``, standalone Keras as ``lr * (1 / (1 + decay * iterations))``.
tf.keras 2.11+ and Keras 3 optimizers have no ``decay``: the rate is
``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)`` (equal in float32 to OptimizerV2's).
Standalone Keras's product can differ from it in the last bit at some steps: resume continues it as
an ``InverseTimeDecay`` that computes the product (:func:`decays_by_product`,
:mod:`ckptcompat.runtime.product_decay`). Nadam is the exception: its ``decay`` scales the momentum
schedule (:func:`ckptcompat.names.slot_meaning.nadam_schedule`), never the rate.

Pure Python; no framework import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["BUILT_IN_SCHEDULES", "PRODUCT_DECAY_NAME", "decays_by_product", "saved_decay", "decay_on_schedule",
           "decay_schedule_config", "is_decay_schedule", "takes_decay", "live_decay", "rate_and_schedule",
           "schedule_as_rate"]


#: the learning-rate schedule classes Keras ships (tf.keras 2.x and Keras 3 alike)
BUILT_IN_SCHEDULES = frozenset({"ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
                                "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts"})


def _named(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule config without tf.keras's ``"name": None`` (Keras 3 fails on it at the first step)."""
    out = dict(schedule)
    if isinstance(out.get("config"), Mapping) and "name" in out["config"] and out["config"]["name"] is None:
        out["config"] = {k: v for k, v in out["config"].items() if k != "name"}
    return out


def rate_and_schedule(hyper: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters with a serialized schedule in ``learning_rate`` moved to
    ``learning_rate_schedule`` (``learning_rate`` None), as a capture records it."""
    out = dict(hyper)
    if isinstance(out.get("learning_rate"), Mapping):
        out["learning_rate_schedule"] = dict(out["learning_rate"])
        out["learning_rate"] = None
    if isinstance(out.get("learning_rate_schedule"), Mapping):
        out["learning_rate_schedule"] = _named(out["learning_rate_schedule"])
    return out


def schedule_as_rate(hyper: Mapping[str, Any]) -> dict[str, Any]:
    """The reverse of :func:`rate_and_schedule`, for a Keras config: the schedule becomes
    ``learning_rate`` (a Keras 2 config loses Keras 3's registration keys in
    :func:`ckptcompat.names.config_downgrade.downgrade_optimizer_config`)."""
    out = dict(hyper)
    schedule = out.pop("learning_rate_schedule", None)
    if out.get("learning_rate") is None and isinstance(schedule, Mapping):
        out["learning_rate"] = _named(schedule)
    return out


def saved_decay(class_name: str, config: Mapping[str, Any] | None, hyperparameters: Mapping[str, Any]) -> float:
    """The learning-rate ``decay`` a saved optimizer applies (0.0: none; always 0.0 for Nadam)."""
    if class_name == "Nadam":
        return 0.0
    cfg = config or {}
    inner = cfg.get("config") if isinstance(cfg.get("config"), Mapping) else cfg
    value = hyperparameters.get("decay", inner.get("decay"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def decay_on_schedule(class_name: str, config: Mapping[str, Any]) -> float:
    """Keras 2's ``decay`` over a schedule-valued ``learning_rate`` in an optimizer's ``config``
    (OptimizerV2 divides the schedule's rate by ``1 + decay * t``): no tf.keras 2.11+ or Keras 3
    optimizer can express it (0.0: none, or a fixed rate, which :func:`decay_schedule_config` can)."""
    decay = saved_decay(class_name, None, config)
    return decay if decay and isinstance(config.get("learning_rate"), Mapping) else 0.0


#: the ``name`` of an ``InverseTimeDecay`` that stands for standalone Keras's ``lr * (1 / (1 + decay * t))``:
#: Keras itself reads it as its ``InverseTimeDecay`` (``lr / (1 + decay * t)``, at most 1 float32 ulp
#: apart); ckptcompat rebuilds the product (:mod:`ckptcompat.runtime.product_decay`)
PRODUCT_DECAY_NAME = "ckptcompat_lr_times_inverse_decay"


def decays_by_product(config: Mapping[str, Any] | None) -> bool:
    """True for a saved optimizer of the multi-backend Keras API (Keras 1 to 2.3, tf.keras of TF 1.4
    to 1.12): its ``decay`` gives ``lr * (1 / (1 + decay * t))``. Its ``get_config`` writes no
    ``name``, which every OptimizerV2 (``lr / (1 + decay * t)``) writes. (Measured exact for TF 1.4's
    tf.keras; standalone Keras 2.3 may read its counter after the step's increment under graph
    execution, which the corpus does not cover.)"""
    cfg = config or {}
    if "class_name" in cfg and not isinstance(cfg.get("config"), Mapping):
        return False  # a class without its arguments: nothing tells
    inner = cfg.get("config") if isinstance(cfg.get("config"), Mapping) else cfg
    return isinstance(inner, Mapping) and bool(inner) and "name" not in inner


def decay_schedule_config(learning_rate: float, decay: float, product: bool = False) -> dict[str, Any]:
    """The ``InverseTimeDecay`` that decays ``learning_rate`` the way ``decay`` did; ``product``: named
    :data:`PRODUCT_DECAY_NAME` (the rate of :func:`decays_by_product`)."""
    config = {"initial_learning_rate": float(learning_rate), "decay_steps": 1, "decay_rate": float(decay),
              "staircase": False}
    return {"class_name": "InverseTimeDecay", "config": {**config, "name": PRODUCT_DECAY_NAME} if product else config}


def _same32(a: Any, b: Any) -> bool:
    try:
        return bool(np.float32(a) == np.float32(b))
    except (TypeError, ValueError):
        return False


def is_decay_schedule(schedule: Mapping[str, Any] | None, learning_rate: float, decay: float) -> bool:
    """True when the serialized ``schedule`` is :func:`decay_schedule_config` of these values."""
    if not isinstance(schedule, Mapping) or schedule.get("class_name") != "InverseTimeDecay":
        return False
    cfg = schedule.get("config") or {}
    return (_same32(cfg.get("initial_learning_rate"), learning_rate) and _same32(cfg.get("decay_rate"), decay)
            and _same32(cfg.get("decay_steps"), 1) and not cfg.get("staircase"))


def takes_decay(optimizer_class: type) -> bool:
    """An optimizer class that decays its learning rate with ``decay=`` itself (OptimizerV2:
    ``_decayed_lr``; standalone Keras: ``get_updates``)."""
    return hasattr(optimizer_class, "_decayed_lr") or hasattr(optimizer_class, "get_updates")


def live_decay(optimizer: Any) -> float | None:
    """The ``decay`` a live optimizer applies to its rate; None when its class has none."""
    if not takes_decay(type(optimizer)):
        return None
    for attr in ("_initial_decay", "initial_decay"):  # OptimizerV2, standalone Keras
        value = getattr(optimizer, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None
