"""Put a read checkpoint into a live model: the optimizer state it can take, matching by name,
else structure, else a whole-file pairing (:mod:`ckptcompat.resuming.file_pairing`), then
:func:`ckptcompat.runtime.apply`; LoRA factors Keras does not save restarted
(:mod:`ckptcompat.resuming.lora`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from ckptcompat._arrays import holds_nothing
from ckptcompat.errors import IncompatibleStateError
from ckptcompat.state import TrainingState

__all__ = ["restore_model_state"]

log = logging.getLogger(__name__)


def _live_shapes(rt: Any, model: Any, state: TrainingState | None = None) -> dict[str, tuple[int, ...]]:
    """The model's variables to match, by name; those holding no element have nothing to take,
    unless ``state`` holds a value with elements under that name."""
    ops = rt._OPS  # noqa: SLF001 -- same package, name -> variable map
    values = state.weights if state is not None else {}
    return {name: tuple(ops.shape(var)) for name, var in ops.variables(model).items()
            if np.size(values.get(name, ())) or not holds_nothing(ops.shape(var), lambda v=var: ops.to_numpy(v))}


def _without_empty(state: TrainingState, live: dict[str, tuple[int, ...]], where: str) -> TrainingState:
    """``state`` without the weights that hold no element and name no variable of the model (an
    unadapted tf-keras ``Discretization``'s ``(2, 0)`` summary, which Keras 3 keeps no variable for)."""
    empty = [name for name, value in state.weights.items() if np.size(value) == 0 and name not in live]
    if not empty:
        return state
    log.info("%s: %d weight(s) holding no element, nothing to restore: %s", where, len(empty), ", ".join(empty))
    return state.replace(weights={n: v for n, v in state.weights.items() if n not in empty})


def restore_model_state(rt: Any, state: TrainingState, model: Any, where: str, *, partial: bool,
                         optimizer: str, learning_rate: float | None) -> Any:
    """Apply weights and optimizer state to ``model`` (matched by name, else structure), then
    the ``learning_rate`` override; returns the apply report."""
    from ckptcompat.resuming.adapted_bins import plan_adapted_bins, set_adapted_bins
    from ckptcompat.resuming.adapted_vocab import plan_vocabularies, set_vocabularies, without_lookup_weights
    from ckptcompat.resuming.lookup_idf import plan_stored_idf, set_stored_idf

    state, idf = plan_stored_idf(model, state, lambda: set(rt._OPS.variables(model)), where,  # noqa: SLF001
                                 partial=partial)
    state, bins = plan_adapted_bins(model, without_lookup_weights(state, model, where))
    vocabularies = plan_vocabularies(model, state, where)
    state = _without_empty(state, _live_shapes(rt, model, state), where)
    to_apply = _state_to_apply(rt, state, model, where, optimizer=optimizer)
    placed = getattr(state.optimizer, "class_name", None) == "Unknown" and to_apply.optimizer is not None \
        and to_apply.optimizer.class_name != "Unknown"  # slots placed by position: keyed by live names
    report = _apply_matched(rt, to_apply, model, partial=partial, where=where, live_slots=placed)
    set_adapted_bins(model, bins, where)
    set_vocabularies(model, vocabularies, where)
    set_stored_idf(model, idf, where, partial=partial)
    if optimizer == "reset":
        report = dataclasses.replace(report, optimizer_reset=True)
    if learning_rate is not None:
        old = rt.set_learning_rate(model, float(learning_rate))
        log.info("learning rate overridden: %s -> %s", old, learning_rate)
    return report


def _state_to_apply(rt: Any, state: TrainingState, model: Any, where: str, *,
                    optimizer: str) -> TrainingState:
    """``state`` with the optimizer state the model can take (none when uncompiled, reset,
    class/hypers only or unordered); positional variables placed where count and shapes allow."""
    to_apply = state
    if getattr(model, "optimizer", None) is None and state.optimizer is not None:
        log.warning("%s: the model is not compiled; the checkpoint's optimizer state is not restored",
                    where)
        to_apply = state.replace(optimizer=None)
    if (to_apply.optimizer is not None and to_apply.optimizer.class_name == "Unknown"
            and optimizer != "reset"):
        from ckptcompat.runtime._engine import place_positional

        placed = place_positional(rt._OPS, to_apply, model)  # noqa: SLF001 -- same package
        if placed is not None:
            log.info("%s: optimizer variables stored without class or config placed by position "
                     "onto the model's %s (count and every shape verified)", where, placed.class_name)
            to_apply = to_apply.replace(optimizer=placed)
    if to_apply.optimizer is not None and to_apply.optimizer.class_name == "Unknown":
        # scalars only and a step counter at 0: an optimizer never built, no slots yet
        if optimizer != "reset" and not _never_built(to_apply.optimizer.extra):
            raise IncompatibleStateError(
                f"the file's {len(to_apply.optimizer.extra)} optimizer variables, stored by position without "
                "an optimizer config, do not fit the model's optimizer (count or shapes differ: another "
                "optimizer, another model, or LoRA on one side only); nothing was assigned",
                [f"{name}: shape {tuple(getattr(a, 'shape', ()))}" for name, a in to_apply.optimizer.extra.items()],
                path=where, hint='pass optimizer="reset" to restore the weights and the progress with a fresh '
                                 "optimizer, or compile the model with the optimizer of the run that wrote the file")
        to_apply = to_apply.replace(optimizer=None)
    hypers_only = to_apply.optimizer is not None and not to_apply.optimizer.slots \
        and to_apply.optimizer.iterations is None
    if hypers_only:
        to_apply = to_apply.replace(optimizer=None)  # class/hypers only (legacy sidecar): used to compile
    if (state.optimizer is None or hypers_only) and getattr(model, "optimizer", None) is not None \
            and optimizer != "reset":
        log.warning("%s: the checkpoint holds no optimizer state: the weights and the progress are restored, "
                    "the model's optimizer is not (a freshly compiled one starts again from no slots and "
                    "step 0); resume from a full checkpoint of the run to continue it exactly", where)
    if to_apply.optimizer is not None and to_apply.optimizer.iterations is None and optimizer != "reset":
        log.warning("%s: the file holds the %s slots but no step counter (Keras <= 2.2 RMSprop/Adagrad/"
                    "Adadelta do not save `iterations`, a Keras 1 SGD without decay never advances it); the "
                    "optimizer's iterations restart at 0, which changes only a `decay` schedule",
                    where, to_apply.optimizer.class_name)
    if optimizer == "reset" and to_apply.optimizer is not None:
        log.warning("%s: optimizer=\"reset\": weights and progress restored, the %s optimizer "
                    "state (slots, iterations, learning rate) is not; the model's optimizer starts "
                    "fresh", where, to_apply.optimizer.class_name)
        to_apply = to_apply.replace(optimizer=None)
    return to_apply


def _apply_matched(rt: Any, state: TrainingState, model: Any, *, partial: bool, where: str,
                   paired: bool = False, live_slots: bool = False, restart: Any = None) -> Any:
    """Match ``state`` to ``model`` (name, else structure), apply it; the report says how (``live_slots``: kept)."""
    from ckptcompat.resuming import file_pairing, lora
    from ckptcompat.resuming.match import live_layers, match_state
    from ckptcompat.resuming.read import keras3_file_paths, remap_by_structure

    live = _live_shapes(rt, model, state)
    named = rt._OPS.variables(model)  # noqa: SLF001 -- same package
    keras = rt._OPS.keras  # noqa: SLF001 -- same package
    layers = live_layers(model, lambda layer: isinstance(layer, keras.Model))
    paths = [keras3_file_paths(model), keras3_file_paths(model, twice=True)]

    def matched(st: TrainingState, shapes: dict[str, tuple[int, ...]]) -> Any:
        return match_state(st, shapes, layers, remap=lambda s: remap_by_structure(s, shapes, paths))

    if not paired:
        if lora.holds_factors(state):  # exact factors only for the live LoRA layers they match
            found = matched(state, live)
            names = None if found.misfits else dict(zip(state.weights, found.state.weights))
            state = lora.exact_or_merged(state, model, named, names)
        state, restart = lora.plan_restart(state, model, named)
    if restart is not None:  # factors the file cannot hold: not matched, restarted
        live = {name: shape for name, shape in live.items() if name not in restart.names}
    through = None if paired else file_pairing.before_names(state, model, named, live)
    if through is not None:
        return _apply_paired(rt, state, through, model, partial=partial, where=where, live_slots=live_slots,
                             restart=restart)
    found = matched(state, live)
    through = None if paired or not found.misfits else \
        file_pairing.after_misfits(state, model, named, live)
    if through is not None:
        return _apply_paired(rt, state, through, model, partial=partial, where=where, live_slots=live_slots,
                             restart=restart)
    mapping = dict(found.mapping)
    if found.method == "name":  # name-level renames (nested-bundle suffixes, Keras 3 file paths)
        mapping = {a: b for a, b in zip(state.weights, found.state.weights) if a != b}
    method = "structure" if mapping else "name"
    to_apply = found.state.replace(optimizer=state.optimizer) if live_slots else found.state
    if restart is not None:
        to_apply = lora.with_factors(to_apply, restart, rt._OPS, model, named)  # noqa: SLF001
    try:
        report = rt.apply(to_apply, model, partial=partial)
    except IncompatibleStateError as exc:
        if not found.misfits:
            raise
        raise IncompatibleStateError(
            "the checkpoint fits the model neither by name nor by structure; nothing was assigned",
            [*exc.mismatches, *found.misfits],
            path=where, hint=exc.hint) from exc
    if method == "structure":
        log.info("%s: matched by structure (%d variable(s) renamed)", where, len(mapping))
    if restart is not None:
        if report.restored_slots:  # slots placed by position held the old factors' moments
            lora.zero_factor_slots(restart, rt._OPS, model, named)  # noqa: SLF001
        report = dataclasses.replace(report, lora_restarted=restart.names)
    return dataclasses.replace(report, matching=method, by_structure=tuple(mapping.items()))


def _apply_paired(rt: Any, state: TrainingState, through: Any, model: Any, *, partial: bool, where: str,
                  live_slots: bool, restart: Any) -> Any:
    """Apply a whole-file pairing (:mod:`ckptcompat.resuming.file_pairing`); slots placed by
    position (``live_slots``) are keyed by live names already and keep them."""
    log.info("%s: %s; every shape verified", where, through.how)
    paired_state = through.state.replace(optimizer=state.optimizer) if live_slots else through.state
    report = _apply_matched(rt, paired_state, model, partial=partial, where=where, paired=True, restart=restart)
    return dataclasses.replace(report, matching="structure" if through.renamed else "name",
                               by_structure=tuple(through.renamed.items()))


def _never_built(extra: dict[str, Any]) -> bool:
    """Whether positional optimizer variables are a never-built optimizer's: scalars only, the
    integer step counter 0 (a trained SGD without momentum keeps scalars only too, its counter > 0)."""
    arrays = [np.asarray(a) for key, a in extra.items() if key.startswith("vars/")]
    return all(a.ndim == 0 for a in arrays) and not any(a.dtype.kind in "iu" and int(a) for a in arrays)
