"""LoRA factors that Keras does not save: restarted so that the model computes what was saved.

A Keras 3 layer with LoRA enabled (``Dense(lora_rank=...)``, ``layer.enable_lora(rank)``;
Dense, EinsumDense, Embedding, Conv) trains two factors in place of its frozen kernel, and its
``save_own_variables`` writes the kernel *merged* with the factors' product, never the factors.
A file of such a model therefore cannot give the factors back. Native ``load_weights`` assigns
the merged kernel and zeros both factors (their optimizer moments still restored), after which
both factors' gradients are zero. Here instead, when the checkpoint holds no LoRA factor at all,
the merged kernel is restored, each ``*_a`` factor keeps the model's own value, each ``*_b``
factor is zeroed (the layer then computes exactly the saved function) and their optimizer slots
start at zero: LoRA training starts afresh on the merged kernel. Reported and logged.
A checkpoint that holds the factors (a ckptcompat store of the live model) restores them as
any other variable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckptcompat.state import TrainingState

__all__ = ["LoraRestart", "plan_restart", "with_factors", "zero_factor_slots", "FACTOR_LEAVES"]

log = logging.getLogger(__name__)

#: the factor variables' names, as ``enable_lora`` creates them (``<stem>_a``, ``<stem>_b``)
FACTOR_LEAVES = frozenset({"lora_kernel_a", "lora_kernel_b", "lora_embeddings_a", "lora_embeddings_b"})


@dataclass(frozen=True)
class LoraRestart:
    """The live model's LoRA factors to restart (live names) and the checkpoint's factor slots
    left out."""

    keep: tuple[str, ...]      # ``*_a``: the model's own values are kept
    zero: tuple[str, ...]      # ``*_b``: zeroed
    dropped: tuple[str, ...]   # the checkpoint's slots of the factors it trained

    @property
    def names(self) -> tuple[str, ...]:
        return self.keep + self.zero


def _leaf(name: str) -> str:
    return name.rpartition("/")[2]


def _live_factors(model: Any, named: Mapping[str, Any]) -> dict[str, str]:
    """Live name -> leaf of every factor of the model's LoRA-enabled layers."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return {}
    names = {id(var): name for name, var in named.items()}
    out: dict[str, str] = {}
    for layer in flatten(include_self=True, recursive=True):
        if getattr(layer, "lora_enabled", False) is not True:
            continue
        for leaf in sorted(FACTOR_LEAVES):
            var = getattr(layer, leaf, None)
            if var is not None and id(var) in names:
                out[names[id(var)]] = leaf
    return out


def plan_restart(state: TrainingState, model: Any, named: Mapping[str, Any]
                 ) -> tuple[TrainingState, LoraRestart | None]:
    """``(state without the slots of factors it does not hold, restart)`` when the model has
    LoRA factors and the checkpoint holds none (a Keras file); ``(state, None)`` otherwise."""
    factors = _live_factors(model, named)
    if not factors or any(_leaf(name) in FACTOR_LEAVES for name in state.weights):
        return state, None
    opt = state.optimizer
    dropped: list[str] = []
    if opt is not None:
        dropped = [f"{var}/{slot}" for var, per in opt.slots.items() if _leaf(var) in FACTOR_LEAVES
                   and var not in state.weights for slot in per]
        if dropped:
            slots = {var: per for var, per in opt.slots.items() if _leaf(var) not in FACTOR_LEAVES}
            state = state.replace(optimizer=dataclasses.replace(opt, slots=slots))
    restart = LoraRestart(keep=tuple(n for n, leaf in factors.items() if leaf.endswith("_a")),
                          zero=tuple(n for n, leaf in factors.items() if leaf.endswith("_b")),
                          dropped=tuple(dropped))
    log.warning("the checkpoint holds no LoRA factor (Keras saves a LoRA layer's kernel merged with its "
                "factors' product, not the factors): the merged kernel is restored, %s keep the model's "
                "values, %s are zeroed (the layers compute what was saved) and their optimizer slots "
                "start at zero%s", ", ".join(restart.keep), ", ".join(restart.zero),
                f"; the checkpoint's {len(dropped)} slot(s) of the old factors are left out" if dropped else "")
    return state, restart


def with_factors(state: TrainingState, restart: LoraRestart, ops: Any, model: Any,
                 named: Mapping[str, Any]) -> TrainingState:
    """``state`` (live names) with the restarted factors' values: ``*_a`` as the model holds
    them, ``*_b`` zeros, and zero slots when the state's slots are named (slots kept by position
    are placed by :func:`ckptcompat.runtime.apply` and zeroed after, :func:`zero_factor_slots`)."""
    weights = dict(state.weights)
    for name in restart.keep:
        weights[name] = ops.to_numpy(named[name])
    for name in restart.zero:
        weights[name] = np.zeros(ops.shape(named[name]), dtype=ops.to_numpy(named[name]).dtype)
    state = state.replace(weights=weights)
    opt, live_opt = state.optimizer, ops.optimizer_of(model)
    if opt is None or not opt.slots or live_opt is None:
        return state
    ops.build_optimizer(live_opt, model)
    live = ops.live_slots(live_opt, dict(named))
    slots = {var: dict(per) for var, per in opt.slots.items()}
    for name in restart.names:
        slots[name] = {slot: np.zeros(ops.shape(var), dtype=ops.to_numpy(var).dtype)
                       for slot, var in live.get(name, {}).items()}
    return state.replace(optimizer=dataclasses.replace(opt, slots=slots))


def zero_factor_slots(restart: LoraRestart, ops: Any, model: Any, named: Mapping[str, Any]) -> None:
    """Zero the restarted factors' optimizer slots (after a restore that placed them by position)."""
    live_opt = ops.optimizer_of(model)
    if live_opt is None or not getattr(live_opt, "built", False):
        return
    live = ops.live_slots(live_opt, dict(named))
    for name in restart.names:
        for var in live.get(name, {}).values():
            ops.assign(var, np.zeros(ops.shape(var), dtype=ops.to_numpy(var).dtype))
