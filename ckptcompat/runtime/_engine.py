"""Capture/apply logic shared by the live flavours (keras2, keras3).

A flavour supplies a :class:`FlavourOps` subclass (defined in ``_flavour_ops``, re-exported
here) with the handful of operations that differ between generations (variable names, slot lookup,
optimizer build, learning-rate storage); naming, checking, reporting live here, never TF or Keras.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, List, Tuple

import numpy as np

from ckptcompat._arrays import holds_nothing, shape_fits
from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.lr_decay import decays_by_product, is_decay_schedule, live_decay, saved_decay
from ckptcompat.names.slot_meaning import (KERAS3_NADAM_SCHEDULE, NON_SLOT_ATTRS, describe_nadam_schedule,
                                           nadam_schedule, nadam_u_product, translate_slots)
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.runtime import VIEWS, _loss_scale
from ckptcompat.runtime._flavour_ops import ApplyReport, FlavourOps, codes_and_floats, dtype_name, raise_misfits
from ckptcompat.runtime._positional import place_positional, slots_from_positions, trainable_ids
from ckptcompat.runtime._slots import is_variable as _is_variable, list_slots, raw_slot_name, settle_frozen_slots
from ckptcompat.runtime._walk import finalize_assigned, json_safe_or_none, model_config_of
from ckptcompat.state import OptimizerState, TrainingState

__all__ = ["ApplyReport", "FlavourOps", "capture", "apply", "learning_rate", "place_positional",
           "set_learning_rate", "list_slots", "raw_slot_name"]

logger = logging.getLogger(__name__)

#: Config keys that are not hyper-parameters.
_NOT_HYPER = {"name", "is_legacy_optimizer", "jit_compile"}

#: (name, live variable, value to assign) triples of an apply plan
_Plan = List[Tuple[str, Any, np.ndarray]]
#: records one misfit: ``problem(name, reason)``
_Problem = Callable[[str, str], None]


def _learning_rate(ops: FlavourOps, opt: Any) -> tuple[float | None, dict[str, Any] | None]:
    """(float learning rate, None) or (None, schedule config) of a live optimizer."""
    raw = ops.stored_learning_rate(opt)
    if ops.is_variable(raw):
        return float(np.asarray(ops.to_numpy(raw))), None
    if ops.is_schedule(raw) or (callable(raw) and not hasattr(raw, "numpy")):
        return None, ops.serialize_schedule(raw)
    if hasattr(raw, "numpy"):  # a tensor: read the way the flavour reads variables
        return float(np.asarray(ops.to_numpy(raw))), None
    return float(raw), None


def _owned(value: Any) -> np.ndarray:
    """``value`` as an array that shares no memory: the fresh copy a flavour's ``to_numpy``
    returns is kept as it is, anything else (a view, a read-only buffer) is copied."""
    array = np.asarray(value)
    if array.flags.owndata and array.flags.writeable and array.flags.c_contiguous:
        return array
    return np.array(array, copy=True, order="C")


def _copy_of(ops: FlavourOps, var: Any, buffer: Any, read: dict[int, np.ndarray]) -> np.ndarray:
    """``var``'s value in ``buffer`` when that is a writeable array of its shape and dtype
    (no new memory), a view of the framework's buffer when ``buffer`` is :data:`VIEWS`, else
    in a new array; ``read``: fresh copies already read together (:meth:`FlavourOps.read_all`), by id."""
    value = read.get(id(var))
    if value is None and buffer is VIEWS:
        return np.asarray(ops.read_view(var))
    if isinstance(buffer, np.ndarray) and buffer.flags.writeable and buffer.flags.c_contiguous:
        view = ops.read_view(var) if value is None else value
        if view.shape == buffer.shape and view.dtype == buffer.dtype:
            np.copyto(buffer, view)
            return buffer
    return _owned(ops.to_numpy(var) if value is None else value)


def capture(ops: FlavourOps, model: Any, *, include_optimizer: bool = True,
            into: TrainingState | None = None) -> TrainingState:
    """Copy the model's weights and optimizer state into a :class:`TrainingState`.

    Every array is the state's own copy (one copy per tensor), so later training steps never
    change it: it can be handed to a background writer as it is. ``into``: an earlier
    capture of the same model whose arrays are overwritten and reused (no new memory; the
    earlier state must no longer be in use). ``into=VIEWS``: no copy at all, the arrays may be
    views of the live variables, valid only until the next training step changes them (a
    synchronous save that writes them before training goes on).
    """
    named = ops.variables(model)
    views = into is VIEWS
    if views:
        into = None
    old_weights = into.weights if into is not None else {}
    old_slots = into.optimizer.slots if into is not None and into.optimizer is not None else {}

    def buffer(old: Any) -> Any:
        return VIEWS if views else old

    opt = ops.optimizer_of(model) if include_optimizer else None
    live_slots = ops.live_slots(opt, named) if opt is not None else {}
    together = [*named.values(), *(v for per in live_slots.values() for v in per.values())]
    read = dict(zip(map(id, together), ops.read_all(together) or []))
    weights = {name: _copy_of(ops, var, buffer(old_weights.get(name)), read) for name, var in named.items()}
    opt_state = None
    if opt is not None:
        cls = ops.optimizer_class(opt)
        config = _optimizer_config(ops, opt)
        hyper: dict[str, Any] = {}
        for key, value in (config or {}).items():
            if key not in _NOT_HYPER and isinstance(value, (bool, int, float)):
                hyper["learning_rate" if key == "lr" else key] = value
        lr, schedule = _learning_rate(ops, opt)
        hyper["learning_rate"] = lr
        if schedule is not None:
            hyper["learning_rate_schedule"] = schedule
        slots = {var: {slot: _copy_of(ops, v, buffer(old_slots.get(var, {}).get(slot)), read)
                       for slot, v in per.items()}
                 for var, per in live_slots.items()}
        extra = {canonical: _owned(ops.to_numpy(getattr(opt, attr)))
                 for attr, canonical in NON_SLOT_ATTRS.items()
                 if _is_variable(getattr(opt, attr, None))}
        extra.update(_loss_scale.capture(getattr(model, "optimizer", None), ops.to_numpy))
        opt_state = OptimizerState(class_name=cls, hyperparameters=hyper,
                                   iterations=ops.read_iterations(opt), slots=slots, config=config,
                                   extra=extra)
    return TrainingState(weights=weights, optimizer=opt_state, producer=ops.producer(),
                         model_config=model_config_of(model))


def _optimizer_config(ops: FlavourOps, opt: Any) -> dict[str, Any] | None:
    try:
        config = ops.optimizer_config(opt)
    except (NotImplementedError, TypeError, ValueError, AttributeError) as exc:
        logger.warning("optimizer %s has no usable get_config(): %s", type(opt).__name__, exc)
        return None
    return json_safe_or_none(config, "optimizer config")


def apply(ops: FlavourOps, state: TrainingState, model: Any, *, partial: bool = False) -> ApplyReport:
    """Check everything first, then assign weights, slots, iterations and learning rate."""
    named = ops.variables(model)
    problems: list[str] = []
    skipped: list[tuple[str, str]] = []

    def problem(name: str, reason: str) -> None:
        problems.append(f"{name}: {reason}")
        skipped.append((name, reason))

    weight_plan = _plan_pairs(ops, "weight", dict(state.weights), named, problem)
    weight_problems = len(problems)
    _loss_scale.build_outer(model)  # a Keras 3 wrapper's own variables appear when it is built
    opt = ops.optimizer_of(model)
    plan = _plan_optimizer(ops, state.optimizer, opt, model, named, problem)
    if problems and not partial:
        raise_misfits(problems, weights_fit=not weight_problems)
    if weight_problems:  # partial: no optimizer moments for a weight left as it was
        left = set(named) - {n for n, _, _ in weight_plan}
        skipped += [(n, "its weight was not restored, so neither is this slot") for n, _, _ in plan.slots
                    if n.rpartition("/")[0] in left]
        plan.slots = [item for item in plan.slots if item[0].rpartition("/")[0] not in left]
    ops.assign_all([(var, value) for _, var, value in weight_plan + plan.slots])
    finalize_assigned(model, [var for _, var, _ in weight_plan])  # as Keras's own loading does
    iterations = _restore_optimizer_scalars(ops, opt, plan) if plan.ok else None
    if plan.ok and plan.state is not None:
        _loss_scale.restore(ops.assign, model, plan.state.extra)
    _log_outcome(skipped, plan.translated)
    return ApplyReport(restored_weights=tuple(n for n, _, _ in weight_plan),
                       restored_slots=tuple(n for n, _, _ in plan.slots),
                       skipped=tuple(skipped), iterations=iterations, learning_rate=plan.learning_rate,
                       translated=tuple(plan.translated))


@dataclass
class _OptimizerPlan:
    """What :func:`apply` will restore of the optimizer, decided before anything is assigned."""

    ok: bool = False                   # the live optimizer is of the checkpoint's class
    state: OptimizerState | None = None  # the checkpoint's optimizer state (slots placed)
    slots: _Plan = field(default_factory=list)
    translated: list[str] = field(default_factory=list)
    learning_rate: float | None = None


def _plan_optimizer(ops: FlavourOps, st: OptimizerState | None, opt: Any, model: Any,
                    named: dict[str, Any], problem: _Problem) -> _OptimizerPlan:
    """Check the checkpoint's optimizer state against the live optimizer and plan its slots,
    non-slot variables and learning rate; every misfit goes to ``problem``."""
    if st is None:
        return _OptimizerPlan()
    if opt is None:
        problem("optimizer", f"the checkpoint holds {st.class_name} state but the model has no "
                "optimizer (compile it first)")
        return _OptimizerPlan(state=st)
    live_cls = ops.optimizer_class(opt)
    want = canonical_optimizer_class(st.class_name)
    if want != live_cls:
        problem("optimizer", f"class differs: checkpoint {want}, model {live_cls}")
        return _OptimizerPlan(state=st)
    ops.build_optimizer(opt, model)
    live = ops.live_slots(opt, named)
    st = slots_from_positions(ops, opt, live, st, named, trainable_ids(model))
    if st.fits and not st.slots:
        problem("optimizer", f"the file keeps its {len(st.extra)} {want} variables by position "
                f"without the optimizer's config; they fit {' or '.join(st.fits)}, the model's "
                "optimizer does not: compile the model with the optimizer the run used and pass it as model=")
        return _OptimizerPlan(state=st)
    if not st.slots and "vars/0" in st.extra and any(np.ndim(a) for a in st.extra.values()):
        # slots by position (more than a never-built optimizer's scalars) that do not fit the live optimizer
        problem("optimizer", f"the file keeps its {len(st.extra)} {want} variables by position without the "
                f"optimizer's config; the model's {live_cls} does not fit their count and shapes (another "
                "model or LoRA on one side only)")
        return _OptimizerPlan(state=st)
    flat_live = {f"{v}/{s}": var for v, per in live.items() for s, var in per.items()}
    flat_state = {f"{v}/{s}": val for v, per in st.slots.items() for s, val in per.items()}
    flat_state, translated = _translate(ops, opt, st, live_cls, flat_state, flat_live)
    translated += settle_frozen_slots(model, named, flat_state, flat_live)
    slot_plan = _plan_pairs(ops, "optimizer slot", flat_state, flat_live, problem)
    slot_plan += _non_slot_plan(ops, opt, st, live_cls)
    lr_value = _check_learning_rate(ops, opt, st, problem)
    return _OptimizerPlan(ok=True, state=st, slots=slot_plan, translated=translated,
                          learning_rate=lr_value)


def _restore_optimizer_scalars(ops: FlavourOps, opt: Any, plan: _OptimizerPlan) -> int | None:
    """Set iterations and learning rate, then let the optimizer derive its step-count state;
    returns the iterations set, if any."""
    st = plan.state
    if st is None:
        return None
    iterations = None
    if st.iterations is not None:
        iterations = int(st.iterations)
        ops.write_iterations(opt, iterations)
    if plan.learning_rate is not None:
        ops.write_learning_rate(opt, plan.learning_rate)
    after_restore = getattr(opt, "ckptcompat_after_restore", None)
    if callable(after_restore):  # state derived from the step count (tf1_adam's powers)
        after_restore()
    return iterations


def _log_outcome(skipped: list[tuple[str, str]], translated: list[str]) -> None:
    """Log what a partial apply skipped and what was translated by meaning."""
    if skipped:
        logger.warning("partial restore: %d item(s) skipped:\n%s", len(skipped),
                       "\n".join(f"  - {n}: {r}" for n, r in skipped))
    for note in translated:
        logger.info("optimizer state translated by meaning: %s", note)


def _translate(ops: FlavourOps, opt: Any, st: OptimizerState, cls: str, flat_state: dict[str, np.ndarray],
               flat_live: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Slots one generation has and the other has not, translated by meaning (zeros = absent)."""
    live_hyper = _optimizer_config(ops, opt) or {}
    cfg = st.config or {}
    inner = cfg.get("config") if isinstance(cfg.get("config"), Mapping) else cfg
    src_hyper = {**inner, **st.hyperparameters}
    result = translate_slots(cls, src_hyper, live_hyper, flat_state,
                             {k: ops.shape(v) for k, v in flat_live.items()}, st.iterations)
    return result.slots, [f"dropped {d}" for d in result.dropped] + [f"created {c}" for c in result.created]


def live_nadam_schedule(opt: Any) -> tuple[float, int]:
    """The momentum schedule of a live Nadam (see :func:`ckptcompat.names.slot_meaning.nadam_schedule`):
    standalone Keras's ``schedule_decay``, OptimizerV2's ``decay`` (``_initial_decay``), else Keras 3's."""
    decay = getattr(opt, "schedule_decay", None)
    if isinstance(decay, (int, float)):
        return float(np.float32(decay)), 2
    if hasattr(type(opt), "_decayed_lr") and isinstance(getattr(opt, "_initial_decay", None), (int, float)):
        return float(np.float32(opt._initial_decay)), 1  # noqa: SLF001 -- OptimizerV2 keeps it there only
    return KERAS3_NADAM_SCHEDULE


def _non_slot_plan(ops: FlavourOps, opt: Any, st: OptimizerState, cls: str) -> list[tuple[str, Any, np.ndarray]]:
    """Non-slot optimizer variables (Nadam's momentum-cache product): restored from the
    checkpoint when it holds them for the live optimizer's momentum schedule, else recomputed
    from their definition (another schedule's product: warned)."""
    plan = []
    live = live_nadam_schedule(opt) if cls == "Nadam" else KERAS3_NADAM_SCHEDULE
    for attr, canonical in NON_SLOT_ATTRS.items():
        var = getattr(opt, attr, None)
        if var is None or not hasattr(var, "assign") or not hasattr(var, "shape"):
            continue
        value = st.extra.get(canonical)
        saved = nadam_schedule(st.config, st.hyperparameters) if cls == "Nadam" else live
        if value is not None and saved != live:
            value = None  # another schedule's product means another thing
            if st.iterations:
                logger.warning("Nadam: the checkpoint's momentum schedule (%s) is not this optimizer's (%s); "
                               "its momentum-cache product is recomputed for this schedule, so the next "
                               "steps follow this Keras's Nadam", describe_nadam_schedule(saved),
                               describe_nadam_schedule(live))
        if value is None and cls == "Nadam" and st.iterations is not None:
            beta_1 = st.hyperparameters.get("beta_1", 0.9)
            value = nadam_u_product(st.iterations, float(beta_1 if beta_1 is not None else 0.9), schedule=live,
                                    keras3=hasattr(type(opt), "_backend_update_step"))  # Keras 3's base class
            logger.info("Nadam u_product recomputed from iterations=%d", st.iterations)
        if value is not None and tuple(np.shape(value)) == ops.shape(var):
            plan.append((f"optimizer/{canonical}", var, np.asarray(value)))
    return plan


def _plan_pairs(ops: FlavourOps, kind: str, values: dict[str, np.ndarray], live: dict[str, Any],
                problem: _Problem) -> _Plan:
    """Match checkpoint values to live variables by name and shape; report every misfit."""
    plan = []
    for name, value in values.items():
        value = np.asarray(value)
        var = live.get(name)
        if var is None:
            problem(name, f"unexpected {kind} {value.shape}: the model has no such variable")
        elif not shape_fits(value.shape, ops.shape(var)):
            problem(name, f"{kind} shape differs: checkpoint {value.shape}, model {ops.shape(var)}")
        elif codes_and_floats(value, var):
            problem(name, f"{kind} dtype differs: checkpoint {value.dtype}, model {dtype_name(var)} (quantized)")
        else:
            plan.append((name, var, value))
    for name, var in live.items():  # a variable holding no element has nothing to miss
        if name not in values and not holds_nothing(ops.shape(var), lambda v=var: ops.to_numpy(v)):
            problem(name, f"missing {kind} {ops.shape(var)}: the checkpoint has no value for it")
    return plan


def _check_learning_rate(ops: FlavourOps, opt: Any, st: OptimizerState, problem: _Problem) -> float | None:
    """The float learning rate to set, or None; schedule/float conflicts are problems."""
    want = st.learning_rate
    want_schedule = st.hyperparameters.get("learning_rate_schedule")
    live_lr, live_schedule = _learning_rate(ops, opt)
    decay = saved_decay(st.class_name, st.config, st.hyperparameters)
    if want is not None:
        if live_schedule is not None and decay and is_decay_schedule(live_schedule, want, decay):
            return None  # the saved decay, continued as an equal InverseTimeDecay
        if live_schedule is not None:
            problem("learning_rate", f"checkpoint has learning rate {want} but the model's "
                    "optimizer uses a schedule")
            return None
        if decay and np.float32(live_decay(opt) or 0.0) != np.float32(decay):
            logger.warning("the checkpoint's %s decays its learning rate (decay=%s: %s), the model's "
                           "optimizer %s; compile it with decay= (Keras 2 "
                           "optimizers.legacy, standalone Keras) or learning_rate=InverseTimeDecay(%s, "
                           "decay_steps=1, decay_rate=%s) to continue that rate",
                           st.class_name, decay, "lr * (1 / (1 + decay * iterations))" if decays_by_product(st.config)
                           else "lr / (1 + decay * iterations)", "does not" if live_decay(opt) is None else
                           f"with decay={live_decay(opt)}", want, decay)
        return want
    if want_schedule is not None and live_schedule is None:
        problem("learning_rate", f"checkpoint uses a schedule ({want_schedule.get('class_name')}) "
                f"but the model's optimizer has the fixed learning rate {live_lr}")
    elif want_schedule is not None and not _same_schedule(want_schedule, live_schedule):
        logger.warning("learning-rate schedule differs: checkpoint %s, model %s",
                       want_schedule, live_schedule)
    return None


def _same_schedule(a: Mapping[str, Any], b: Mapping[str, Any] | None) -> bool:
    """Two serialized schedules of one class and settings (the generated ``name`` aside)."""
    def settings(s: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in dict(s.get("config") or {}).items() if k != "name"}
    return b is not None and a.get("class_name") == b.get("class_name") and settings(a) == settings(b)


def _optimizer(ops: FlavourOps, model_or_optimizer: Any) -> Any:
    """The (unwrapped) optimizer of a model, or the optimizer given."""
    opt = model_or_optimizer
    if hasattr(model_or_optimizer, "layers") or hasattr(model_or_optimizer, "compile"):
        opt = ops.optimizer_of(model_or_optimizer)
        if opt is None:
            raise IncompatibleStateError("the model has no optimizer; compile it first")
        return opt
    inner = getattr(opt, "inner_optimizer", None)
    return inner if inner is not None else opt


def learning_rate(ops: FlavourOps, model_or_optimizer: Any) -> float | None:
    """The optimizer's current fixed learning rate; None when it is a schedule."""
    value, _ = _learning_rate(ops, _optimizer(ops, model_or_optimizer))
    return value


def set_learning_rate(ops: FlavourOps, model_or_optimizer: Any, value: float) -> float:
    """Set the optimizer's learning rate in place; returns the old value."""
    opt = _optimizer(ops, model_or_optimizer)
    old, schedule = _learning_rate(ops, opt)
    if schedule is not None or old is None:
        raise IncompatibleStateError(
            f"the optimizer's learning rate is a schedule ({(schedule or {}).get('class_name')}); "
            "it cannot be overridden with a number",
            hint="compile with a float learning rate, or change the schedule itself")
    ops.write_learning_rate(opt, float(value))
    new, _ = _learning_rate(ops, opt)
    logger.info("learning rate %s -> %s", old, new)
    return old
