"""The optimizer variables of a ``.keras`` / ``.weights.h5`` being written, in the order Keras 3
creates them (``optimizer/vars/0``, ``1``...): slots translated by meaning, scalars and extra
variables (Nadam's ``u_product``) from the state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import IncompatibleStateError, UnsupportedFormatError
from ckptcompat.formats.keras_zip._optimizer import optimizer_layout, other_nadam_schedule
from ckptcompat.names.optimizer_layouts import refuse_unordered, slot_shape, u_product_first
from ckptcompat.names.slot_meaning import nadam_u_product, translate_slots
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import TrainingState

__all__ = ["optimizer_arrays", "keep"]

log = logging.getLogger(__name__)


def optimizer_arrays(state: TrainingState, opt_cfg: Mapping[str, Any],
                      trainable: list[tuple[str, tuple[int, ...]]], path: Path, version: str) -> list[np.ndarray]:
    opt = state.optimizer
    assert opt is not None
    refuse_unordered(opt, path)
    cfg = opt_cfg["config"]
    layout = optimizer_layout(opt.class_name, cfg, "keras3", trainable,  # Keras 3.0-3.9: Nadam's u_product first
                              nadam_u_first=u_product_first(version))
    if layout is None:
        raise UnsupportedFormatError(f"no Keras 3 variable layout known for optimizer {opt.class_name}",
                                     path=path, hint="write weights only (drop the optimizer state)")
    shapes = dict(trainable)
    src_cfg = opt.config.get("config", opt.config) if isinstance(opt.config, dict) else {}
    translated = translate_slots(
        canonical_optimizer_class(opt.class_name), {**src_cfg, **opt.hyperparameters}, cfg,
        {f"{v}/{s}": val for v, per in opt.slots.items() for s, val in per.items()},
        {f"{v}/{s}": slot_shape(opt.class_name, s, tuple(shapes[str(v)]))
         for kind, v, s in layout if kind == "slot"}, opt.iterations)
    for note in translated.dropped + translated.created:
        log.info("optimizer slot translated by meaning: %s", note)
    slots: dict[str, dict[str, np.ndarray]] = {}
    for key, value in translated.slots.items():
        v, s = key.rsplit("/", 1)
        slots.setdefault(v, {})[s] = value
    placed = {(str(v), s) for kind, v, s in layout if kind == "slot"}
    fresh = not opt.slots and not opt.iterations
    out: list[np.ndarray] = []
    problems: list[str] = [f"{v}/{s}: slot the target optimizer does not have"
                           for v, per in slots.items() for s in per if (v, s) not in placed]
    for kind, var, slot in layout:
        if kind == "iterations":
            out.append(np.asarray(int(opt.iterations or 0), dtype=np.int64))
        elif kind == "learning_rate":
            out.append(np.asarray(cfg.get("learning_rate", 0.001), dtype=np.float32))
        elif kind == "slot":
            value = (slots.get(str(var)) or {}).get(slot)
            shape = slot_shape(opt.class_name, slot, tuple(shapes[str(var)]))
            if value is None and fresh:
                value = np.zeros(shape, dtype=state.weights[str(var)].dtype)
            if value is None:
                problems.append(f"missing slot {slot} of {var}")
                continue
            if tuple(np.shape(value)) != shape:
                problems.append(f"slot {slot} of {var} has shape {np.shape(value)}, variable {shape}")
            out.append(keep(value))
        else:
            key = f"{kind}/{var}" if var else kind
            if key == "u_product" and (key not in opt.extra or other_nadam_schedule(opt)) \
                    and opt.iterations is not None:  # another schedule's product means another thing
                beta_1 = (opt.hyperparameters.get("beta_1") or cfg.get("beta_1") or 0.9)
                out.append(nadam_u_product(int(opt.iterations), float(beta_1), keras3=True))
                continue
            if key not in opt.extra:
                problems.append(f"missing optimizer variable {key}")
                continue
            out.append(np.asarray(opt.extra[key]))
    if problems:
        raise IncompatibleStateError(f"the {opt.class_name} state does not fit the model", problems,
                                     path=path, hint="the slots must match the trainable variables")
    return out


def keep(value: Any) -> Any:
    """``value`` as an array; a :class:`~ckptcompat.formats._headers.LazyTensor` stays lazy
    (read when its dataset is written)."""
    from ckptcompat.formats._headers import LazyTensor

    return value if isinstance(value, LazyTensor) else np.asarray(value)
