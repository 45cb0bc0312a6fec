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
A checkpoint that holds the factors (a ckptcompat store) restores them as any other variable
when its LoRA layers are the live model's (rank, scale ``lora_alpha / lora_rank``, shapes);
otherwise its merged kernels are restored and the live factors restart as above
(:func:`exact_or_merged`). A model rebuilt from the config gets the file's ``lora_alpha`` back
(Keras's ``build`` enables LoRA without it: :func:`align_rebuilt`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckptcompat.state import TrainingState

__all__ = ["LoraRestart", "plan_restart", "with_factors", "zero_factor_slots", "exact_or_merged",
           "holds_factors", "align_rebuilt", "FACTOR_LEAVES"]

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


def _live_lora(model: Any, named: Mapping[str, Any]) -> list[tuple[Any, str, str, str]]:
    """``(layer, stem, live name of *_a, live name of *_b)`` of every LoRA-enabled layer."""
    names = {id(var): name for name, var in named.items()}
    out = []
    for layer in getattr(model, "_flatten_layers", lambda **_: [])(include_self=True, recursive=True):
        if getattr(layer, "lora_enabled", False) is not True:
            continue
        for stem in _STEMS:
            a, b = getattr(layer, f"{stem}_a", None), getattr(layer, f"{stem}_b", None)
            if a is not None and b is not None and id(a) in names and id(b) in names:
                out.append((layer, stem, names[id(a)], names[id(b)]))
    return out


def plan_restart(state: TrainingState, model: Any, named: Mapping[str, Any]
                 ) -> tuple[TrainingState, LoraRestart | None]:
    """``(state without the slots of factors it does not hold, restart)`` when the model has
    LoRA factors and the checkpoint holds none (a Keras file); ``(state, None)`` otherwise."""
    live = _live_lora(model, named)
    if not live or any(_leaf(name) in FACTOR_LEAVES for name in state.weights):
        return state, None
    opt = state.optimizer
    dropped: list[str] = []
    if opt is not None:
        dropped = [f"{var}/{slot}" for var, per in opt.slots.items() if _leaf(var) in FACTOR_LEAVES
                   and var not in state.weights for slot in per]
        if dropped:
            slots = {var: per for var, per in opt.slots.items() if _leaf(var) not in FACTOR_LEAVES}
            state = state.replace(optimizer=dataclasses.replace(opt, slots=slots))
    restart = LoraRestart(keep=tuple(a for _, _, a, _ in live), zero=tuple(b for _, _, _, b in live),
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


#: the stems of the factor names and the variable each one's layer freezes
_STEMS = {"lora_kernel": "kernel", "lora_embeddings": "embeddings"}


def _live_signatures(model: Any, named: Mapping[str, Any]
                     ) -> dict[str, tuple[int, float, tuple[int, ...], tuple[int, ...]]]:
    """Live name of each LoRA-enabled layer's ``*_a`` factor -> (rank, scale, a shape, b shape)."""
    from ckptcompat.formats.keras_zip._lora import lora_scale

    out = {}
    for layer, _, a, b in _live_lora(model, named):
        shape_a, shape_b = tuple(named[a].shape), tuple(named[b].shape)
        rank = int(shape_a[-1])
        out[a] = (rank, lora_scale(rank, getattr(layer, "lora_alpha", None)), shape_a, shape_b)
    return out


def _file_layers(state: TrainingState) -> list[tuple[str, str, int, float]]:
    """(layer prefix, factor stem, rank, scale) of every LoRA layer whose factors the state holds."""
    from ckptcompat.formats.keras_zip._lora import lora_scale

    configs: dict[str, Mapping[str, Any]] = {}
    if isinstance(state.model_config, Mapping):
        from ckptcompat.formats.keras_zip._layout import walk_model_config

        try:
            configs = {slot.prefix: slot.config for slot in walk_model_config(state.model_config)}
        except (ValueError, TypeError, AttributeError):
            configs = {}
    out = []
    for name, value in state.weights.items():
        prefix, _, leaf = name.rpartition("/")
        stem = leaf[:-2] if leaf.endswith("_a") else ""
        if stem in _STEMS and f"{prefix}/{stem}_b" in state.weights and f"{prefix}/{_STEMS[stem]}" in state.weights:
            rank = int(np.shape(value)[-1])
            out.append((prefix, stem, rank, lora_scale(rank, configs.get(prefix, {}).get("lora_alpha"))))
    return out


def holds_factors(state: TrainingState) -> bool:
    """Whether the state holds a LoRA layer's factors (a ckptcompat store of a LoRA model)."""
    return bool(_file_layers(state))


def exact_or_merged(state: TrainingState, model: Any, named: Mapping[str, Any],
                    matched: Mapping[str, str] | None) -> TrainingState:
    """``state`` as read when each of its LoRA layers (with their factors) is, through ``matched``
    (checkpoint name -> live name, None when names and structure did not fit), a live LoRA layer of
    the same rank, scale and shapes, and every live LoRA layer is one of them; else with each such
    layer's kernel merged as Keras saves it, its factors and their slots left out (the live factors
    then restart: :func:`plan_restart`)."""
    layers = _file_layers(state)
    if not layers:
        return state
    live = _live_signatures(model, named)
    held = {(matched or {}).get(f"{p}/{stem}_a"): (rank, scale, tuple(np.shape(state.weights[f"{p}/{stem}_a"])),
                                                   tuple(np.shape(state.weights[f"{p}/{stem}_b"])))
            for p, stem, rank, scale in layers}
    if matched is not None and held == live:
        return state
    from ckptcompat.formats.keras_zip._lora import merged

    weights = dict(state.weights)
    for prefix, stem, rank, scale in layers:
        frozen = f"{prefix}/{_STEMS[stem]}"
        a, b = weights.pop(f"{prefix}/{stem}_a"), weights.pop(f"{prefix}/{stem}_b")
        weights[frozen] = merged(weights[frozen], a, b, scale)
    log.warning("the checkpoint's LoRA layers (rank, scale, shapes by live name: %s) are not the model's (%s): "
                "their merged kernels are restored, as Keras saves them, and the checkpoint's factors are left "
                "out", held, live)
    state = state.replace(weights=weights)
    opt = state.optimizer
    if opt is not None and opt.slots:
        slots = {var: per for var, per in opt.slots.items() if var in weights}
        state = state.replace(optimizer=dataclasses.replace(opt, slots=slots))
    return state


def align_rebuilt(model: Any, state: TrainingState) -> None:
    """A model rebuilt from ``state``'s config: give each LoRA layer the config's ``lora_alpha``
    (Keras's ``build`` calls ``enable_lora(rank)`` without it, so the layer would scale by 1)."""
    wanted: dict[str, Any] = {}

    def visit(node: Any, depth: int = 0) -> None:
        if depth > 64:
            return
        if isinstance(node, Mapping):
            cfg = node.get("config")
            if isinstance(cfg, Mapping) and cfg.get("lora_rank") and "lora_alpha" in cfg and "name" in cfg:
                name = str(cfg["name"])
                wanted[name] = cfg["lora_alpha"] if wanted.get(name, cfg["lora_alpha"]) == cfg["lora_alpha"] else None
            for value in node.values():
                visit(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                visit(value, depth + 1)

    visit(state.model_config)
    for layer in getattr(model, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True):
        alpha = wanted.get(str(getattr(layer, "name", "")))
        if getattr(layer, "lora_enabled", False) is True and alpha is not None \
                and getattr(layer, "lora_alpha", alpha) != alpha:
            log.info("%s: lora_alpha %s from the config (Keras rebuilt it with %s)", layer.name, alpha,
                     layer.lora_alpha)
            layer.lora_alpha = alpha

