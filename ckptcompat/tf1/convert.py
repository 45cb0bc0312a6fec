"""TF1 Saver checkpoints <-> live Keras 2 / Keras 3 models, with Adam optimizer state.

:func:`tf1_to_keras` assigns a TF1 checkpoint of a ``tf.layers`` / variable-scope graph
(``layer_conv1/kernel``, ``layer_conv1/kernel/Adam``, ``.../Adam_1``, ``beta1_power``,
``global_step``) to a Keras model of the same architecture that the user built: weights by
scope name and shape, Adam ``m``/``v``, ``iterations`` and (when given) the learning rate.
:func:`keras_to_tf1` writes a Keras model (weights + Adam state) as a TF1 bundle that
``tf.compat.v1.train.Saver.restore`` accepts in a graph with the same variable names.

TF1 ``AdamOptimizer`` and Keras ``Adam`` (TF 2.11+ / tf-keras / Keras 3) compute the same
update: ``alpha = lr*sqrt(1-b2^t)/(1-b1^t)``, ``m += (g-m)(1-b1)``, ``v += (g^2-v)(1-b2)``,
``w -= alpha*m/(sqrt(v)+eps)`` (epsilon outside the square root, no bias-corrected v).
They differ in: the default epsilon (TF1 1e-8, Keras 1e-7: compile Keras with
``epsilon=1e-8``); the beta powers (TF1 keeps ``beta1_power`` variables multiplied by beta
after every step, Keras recomputes ``beta**(iterations+1)``: equal up to float32 rounding);
and the kernel (one fused ``ApplyAdam`` op vs separate ops: float32 rounding differs).
So next-step updates agree to float32 tolerance, not bit for bit. See docs/tf1.md.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.state import OptimizerState, Progress, TrainingState

__all__ = ["match_names", "tf1_state_for_keras", "tf1_to_keras", "keras_to_tf1", "tf1_iterations",
           "tf1_float32_hyperparameters"]

log = logging.getLogger(__name__)


def match_names(source: Mapping[str, tuple[int, ...]], target: Mapping[str, tuple[int, ...]],
                name_map: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Pair source names with target names: ``name_map`` first, then the same name, then a
    unique scope suffix (``net/layer_fc1/kernel`` <-> ``layer_fc1/kernel``); shapes must agree.

    Returns ``({source: target}, problems)``; every unpaired or misshaped name is a problem.
    """
    pairs: dict[str, str] = {}
    problems: list[str] = []
    for src, dst in (name_map or {}).items():
        if src not in source:
            problems.append(f"{src}: name_map names a variable the checkpoint does not have")
        elif dst not in target:
            problems.append(f"{src}: name_map target {dst!r} is not a variable of the model")
        else:
            pairs[src] = dst
    taken = set(pairs.values())
    for src in source:
        if src in pairs:
            continue
        if src in target and src not in taken:
            pairs[src] = src
            taken.add(src)
    for src in source:
        if src in pairs:
            continue
        cands = [t for t in target if t not in taken
                 and (src.endswith("/" + t) or t.endswith("/" + src))]
        if len(cands) == 1:
            pairs[src] = cands[0]
            taken.add(cands[0])
        elif len(cands) > 1:
            problems.append(f"{src}: ambiguous, could be {sorted(cands)}; pass name_map")
        else:
            problems.append(f"{src} {tuple(source[src])}: no variable of that name in the model")
    for src, dst in pairs.items():
        if tuple(source[src]) != tuple(target[dst]):
            problems.append(f"{src} -> {dst}: shape differs: checkpoint {tuple(source[src])}, "
                            f"model {tuple(target[dst])}")
    for dst in target:
        if dst not in taken:
            problems.append(f"{dst} {tuple(target[dst])}: model variable has no value in the checkpoint")
    return pairs, problems


def tf1_iterations(global_step: int | None, beta1_power: float | None, beta_1: float = 0.9) -> int | None:
    """Adam steps taken: TF1's ``beta1_power`` is ``beta_1**(t+1)`` after ``t`` steps.

    ``global_step`` wins when it agrees with ``beta1_power``; when they disagree (the graph
    counted ``global_step`` elsewhere) the power decides and a warning is logged.
    """
    from_power = None
    if beta1_power is not None and 0.0 < beta1_power < 1.0 and 0.0 < beta_1 < 1.0:
        t = math.log(beta1_power) / math.log(beta_1) - 1.0
        if abs(t - round(t)) < 0.05 and t > -0.5:
            from_power = int(round(t))
    if global_step is not None and (from_power is None or abs(global_step - from_power) <= 1e-3 * global_step):
        return global_step
    if from_power is not None and global_step is not None:
        log.warning("global_step=%d disagrees with beta1_power=%r (%d Adam steps); using %d",
                    global_step, beta1_power, from_power, from_power)
    return from_power


def _keras_targets(model: Any) -> tuple[Any, dict[str, tuple[int, ...]]]:
    from ckptcompat import runtime  # noqa: PLC0415
    rt = runtime.flavour_for(model)
    captured = rt.capture(model, include_optimizer=False)
    return rt, {k: tuple(np.shape(v)) for k, v in captured.weights.items()}


def _optimizer_beta_1(model: Any) -> float:
    opt = getattr(model, "optimizer", None)
    beta = getattr(opt, "beta_1", 0.9)
    try:
        return float(beta() if callable(beta) else np.asarray(beta))
    except (TypeError, ValueError):
        return 0.9


def tf1_state_for_keras(path: str | os.PathLike[str], model: Any, *,
                        name_map: Mapping[str, str] | None = None,
                        learning_rate: float | None = None, iterations: int | None = None,
                        partial: bool = False) -> TrainingState:
    """The TF1 checkpoint at ``path`` as a state named for ``model`` (see :func:`tf1_to_keras`)."""
    from ckptcompat.formats import tf_bundle  # noqa: PLC0415
    from ckptcompat.runtime.tf1 import resolve_checkpoint  # noqa: PLC0415

    prefix = resolve_checkpoint(path)
    src = tf_bundle.read(prefix)
    _, targets = _keras_targets(model)
    shapes = {k: tuple(np.shape(v)) for k, v in src.weights.items()}
    pairs, problems = match_names(shapes, targets, name_map)
    if problems and not partial:
        raise IncompatibleStateError("the TF1 checkpoint does not fit the Keras model; nothing "
                                     "was assigned", problems, path=prefix,
                                     hint="name the Keras layers like the TF1 scopes, or pass "
                                          "name_map={tf1 name: keras name}, or partial=True")
    for p in problems:
        log.warning("%s: %s", prefix, p)
    pairs = {s: d for s, d in pairs.items() if shapes[s] == targets[d]}
    weights = {pairs[s]: src.weights[s] for s in src.weights if s in pairs}
    optimizer = None
    opt = src.optimizer
    has_keras_opt = getattr(model, "optimizer", None) is not None
    if opt is not None and opt.slots and has_keras_opt:
        slots = {pairs[var]: dict(per) for var, per in opt.slots.items() if var in pairs}
        b1p = opt.extra.get("beta1_power")
        b1 = None if b1p is None or np.asarray(b1p).size != 1 else float(np.asarray(b1p).reshape(-1)[0])
        gs = src.progress.global_step
        steps = iterations if iterations is not None else tf1_iterations(gs, b1, _optimizer_beta_1(model))
        powers = {k: np.asarray(opt.extra[k]) for k in ("beta1_power", "beta2_power")
                  if k in opt.extra and np.asarray(opt.extra[k]).size == 1}
        optimizer = OptimizerState(class_name=opt.class_name, slots=slots, iterations=steps,
                                   hyperparameters={"learning_rate": learning_rate}, extra=powers)
    elif opt is not None and opt.slots:
        log.warning("%s: the model is not compiled; the TF1 optimizer state is not applied", prefix)
    return TrainingState(weights=weights, optimizer=optimizer,
                         progress=Progress(global_step=src.progress.global_step),
                         producer=src.producer)


def tf1_to_keras(path: str | os.PathLike[str], model: Any, *,
                 name_map: Mapping[str, str] | None = None, learning_rate: float | None = None,
                 iterations: int | None = None, partial: bool = False) -> Any:
    """Assign a TF1 checkpoint (weights + Adam m/v/iterations) to a live Keras 2/3 ``model``.

    Compile ``model`` first (with ``Adam(epsilon=1e-8)`` to reproduce TF1's default) so the
    optimizer state is restored too. ``name_map`` maps TF1 names to Keras canonical names
    (``layer path/short name``). TF1 files do not store the learning rate: pass
    ``learning_rate`` to set it, else the compiled one stays. The optimizer's ``beta_1``,
    ``beta_2`` and ``epsilon`` become their float32 values (see
    :func:`tf1_float32_hyperparameters`). Compiled with :func:`ckptcompat.tf1.adam.TF1Adam`,
    it also takes the file's ``beta1_power``/``beta2_power`` and then continues bit for bit
    as the TF1 graph would (plain Keras Adam: ``m``/``v`` bit for bit, the weights to the
    last bit of the bias correction). Returns the runtime's
    :class:`~ckptcompat.runtime._engine.ApplyReport`.
    """
    state = tf1_state_for_keras(path, model, name_map=name_map, learning_rate=learning_rate,
                                iterations=iterations, partial=partial)
    from ckptcompat import runtime  # noqa: PLC0415
    report = runtime.flavour_for(model).apply(state, model, partial=partial)
    if state.optimizer is not None:
        opt = getattr(model, "optimizer", None)
        tf1_float32_hyperparameters(opt)
        extra = state.optimizer.extra
        if hasattr(opt, "set_beta_powers") and {"beta1_power", "beta2_power"} <= set(extra):
            opt.set_beta_powers(extra["beta1_power"], extra["beta2_power"])  # TF1's own values
    return report


#: Adam-family hyper-parameters a TF1 optimizer holds as float32 tensors.
_TF1_FLOAT32_HYPER = ("beta_1", "beta_2", "epsilon")


def tf1_float32_hyperparameters(optimizer: Any) -> dict[str, float]:
    """Round a Keras optimizer's ``beta_1``/``beta_2``/``epsilon`` to their float32 values.

    TF1's ``AdamOptimizer`` turns them into float32 tensors and computes ``1 - beta1`` in
    float32; Keras computes ``1 - beta_1`` on the Python float, a different float32 constant
    (0.1 vs 0.100000024). With the float32 values both compute the same constants, so the
    moment updates continue bit for bit. Returns ``{name: new value}`` of what changed.
    """
    changed: dict[str, float] = {}
    for name in _TF1_FLOAT32_HYPER:
        value = getattr(optimizer, name, None)
        if isinstance(value, float) and not isinstance(value, bool):
            rounded = float(np.float32(value))
            if rounded != value:
                setattr(optimizer, name, rounded)
                changed[name] = rounded
    if changed:
        log.info("optimizer hyper-parameters set to their float32 values as in TF1: %s", changed)
    return changed


def keras_to_tf1(model: Any, path: str | os.PathLike[str], *,
                 name_map: Mapping[str, str] | None = None, global_step: int | None = None) -> Path:
    """Write ``model`` (weights, and Adam m/v + iterations when built) as a TF1 bundle.

    ``path`` is a bundle prefix (a folder gets ``model.ckpt``); ``name_map`` maps Keras
    canonical names to TF1 graph variable names. ``beta1_power``/``beta2_power`` are written
    as ``beta**(iterations+1)`` and ``global_step`` as ``iterations`` (or ``global_step``).
    Returns the prefix.
    """
    from ckptcompat import runtime  # noqa: PLC0415
    from ckptcompat.formats import tf_bundle  # noqa: PLC0415

    state = runtime.flavour_for(model).capture(model)
    rename = dict(name_map or {})
    unknown = [k for k in rename if k not in state.weights]
    if unknown:
        raise IncompatibleStateError("name_map names variables the model does not have",
                                     [f"{k}: not a model variable" for k in unknown],
                                     hint=f"model variables: {sorted(state.weights)}")
    weights = {rename.get(k, k): v for k, v in state.weights.items()}
    opt = state.optimizer
    if opt is not None:
        slots = {rename.get(k, k): v for k, v in opt.slots.items()}
        opt = OptimizerState(class_name=opt.class_name, hyperparameters=opt.hyperparameters,
                             iterations=opt.iterations if slots else None, slots=slots)
    step = global_step if global_step is not None else (opt.iterations if opt is not None else None)
    p = Path(path)
    prefix = p / "model.ckpt" if p.is_dir() else p
    tf_bundle.write(prefix, TrainingState(weights=weights, optimizer=opt,
                                          progress=Progress(global_step=step)))
    return prefix
