"""Plausible ranges for what a checkpoint claims, and configs that would run code.

A reader turns bytes into numbers; this module decides whether those numbers can be used:
an epoch of ``10**400``, ``iterations`` of ``inf`` or ``1e300``, a learning rate of ``nan``
are damage (or hostility), never silently passed on to Keras. Also here: finding Lambda
byte-code in a model config (which ``migrate`` refuses to copy unless told to) and refusing
optimizer/schedule configs that name something other than a Keras class. Pure Python.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

from ckptcompat.errors import CorruptCheckpointError, UnsafeCheckpointError
from ckptcompat.names.lr_decay import BUILT_IN_SCHEDULES

__all__ = ["MAX_EPOCH", "MAX_COUNT", "MAX_LEARNING_RATE", "count_problem", "progress_problems",
           "state_problems", "check_state", "lambda_bytecode", "check_no_lambda",
           "check_optimizer_config"]

#: Largest epoch accepted (Keras passes epochs as Python/32-bit ints).
MAX_EPOCH = 2**31 - 1
#: Largest step, global step or optimizer iteration count (exact in int64 and float64).
MAX_COUNT = 2**53
#: Largest learning rate accepted (anything beyond is a damaged value, not a setting).
MAX_LEARNING_RATE = 1e6

#: a schedule config may name a built-in schedule or the base class
_SCHEDULES = BUILT_IN_SCHEDULES | {"LearningRateSchedule"}
#: module-level callables of keras.optimizers that are no optimizer class
_NOT_OPTIMIZERS = frozenset({"deserialize", "serialize", "get", "schedules", "legacy",
                             "experimental", "Optimizer"})


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def count_problem(value: Any, what: str, top: int = MAX_COUNT) -> str | None:
    """Why ``value`` is not a usable count in ``0..top`` (``None`` when it is, or is absent)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"{what} is a boolean ({value!r})"
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return f"{what} is {value!r}, not a whole number"
        value = int(value)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return f"{what} is {_show(value)}, not a number"
    if not 0 <= number <= top:
        return f"{what} is {_show(number)}, outside the plausible range 0..{top}"
    return None


def progress_problems(epoch: Any, step: Any = None, global_step: Any = None) -> list[str]:
    """Problems of an (epoch, step, global_step) triple; ``[]`` when all are usable."""
    found = [count_problem(epoch, "epoch", MAX_EPOCH), count_problem(step, "step"),
             count_problem(global_step, "global_step")]
    return [p for p in found if p]


def _learning_rate_problem(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, str)):
        return None  # a schedule config (checked when built) or a name
    try:
        lr = float(value)
    except (TypeError, ValueError, OverflowError):
        return None if not isinstance(value, (int, float)) else f"learning_rate is {_show(value)}"
    if not math.isfinite(lr) or not 0 <= lr <= MAX_LEARNING_RATE:
        return f"learning_rate is {lr!r}, outside the plausible range 0..{MAX_LEARNING_RATE:g}"
    return None


def state_problems(state: Any) -> list[str]:
    """Implausible numbers of a :class:`~ckptcompat.state.TrainingState` (one line each)."""
    progress = state.progress
    found = progress_problems(progress.epoch, progress.step, progress.global_step)
    opt = state.optimizer
    if opt is not None:
        found += [p for p in (count_problem(opt.iterations, "optimizer iterations"),
                              _learning_rate_problem(opt.hyperparameters.get("learning_rate")))
                  if p]
    return found


def check_state(state: Any, path: str | os.PathLike[str] | None) -> Any:
    """``state`` unchanged, or :class:`CorruptCheckpointError` listing its implausible numbers."""
    found = state_problems(state)
    if found:
        raise CorruptCheckpointError(
            "implausible values: " + "; ".join(found), path=path,
            hint="the checkpoint is damaged or was edited; use an older one, or fix the value")
    return state


def _walk(config: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside ``config``, without recursion (configs may nest deeply)."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def lambda_bytecode(config: Any) -> list[str]:
    """Names of the Lambda layers in ``config`` that carry marshalled Python byte-code."""
    found = []
    for node in _walk(config):
        if node.get("class_name") != "Lambda" or not isinstance(node.get("config"), Mapping):
            continue
        cfg = node["config"]
        function = cfg.get("function")
        inline = (cfg.get("function_type") == "lambda" or isinstance(function, (list, tuple))
                  or (isinstance(function, Mapping) and function.get("class_name") == "__lambda__"))
        if inline:
            found.append(str(cfg.get("name") or node.get("name") or "?"))
    return found


def check_no_lambda(state: Any, path: str | os.PathLike[str] | None) -> None:
    """Refuse a state whose model config holds Lambda byte-code (:class:`UnsafeCheckpointError`)."""
    names = lambda_bytecode(state.model_config) if state.model_config else []
    if names:
        raise UnsafeCheckpointError(
            f"the model has Lambda layer(s) with marshalled Python byte-code: {', '.join(names)}; "
            "copying them would carry code that runs when the new file is loaded", path=path,
            hint="pass --allow-unsafe (safe_mode=False) if you trust the file, or migrate the "
                 "weights only (--no-optimizer does not help; replace the Lambda by a named layer)")


def check_optimizer_config(opt: Any, path: str | os.PathLike[str] | None) -> None:
    """Refuse an optimizer whose class or learning-rate schedule is no Keras class.

    :class:`UnsafeCheckpointError` for a name that would call something else
    (``deserialize``, a builtin, a dotted or non-identifier name, a non-Keras module);
    :class:`IncompatibleStateError` (via the caller) stays for classes this Keras lacks.
    """
    name = str(opt.class_name or "")
    short = name.split(">")[-1].rsplit(".", 1)[-1]
    if not short.isidentifier() or short in _NOT_OPTIMIZERS or short.startswith("_"):
        raise UnsafeCheckpointError(
            f"the optimizer config names {name!r}, which is no optimizer class", path=path,
            hint="the checkpoint is damaged or hostile; compile the model yourself and pass it "
                 "as model=")
    schedule = opt.hyperparameters.get("learning_rate_schedule")
    lr = opt.hyperparameters.get("learning_rate")
    for value in (schedule, lr):
        if isinstance(value, Mapping):
            _check_schedule(value, path)
    problem = _learning_rate_problem(lr)
    if problem:
        raise CorruptCheckpointError(problem, path=path,
                                     hint="the checkpoint is damaged or was edited; use an older one")


def _check_schedule(schedule: Mapping[str, Any], path: str | os.PathLike[str] | None) -> None:
    cls = schedule.get("class_name")
    module = schedule.get("module")
    registered = schedule.get("registered_name")
    keras_module = module is None or (isinstance(module, str)
                                      and module.split(".")[0] in ("keras", "tf_keras", "tensorflow"))
    if (not isinstance(cls, str) or cls not in _SCHEDULES or not keras_module
            or registered not in (None, cls)):
        raise UnsafeCheckpointError(
            f"the learning-rate schedule names {cls!r} (module {module!r}), which is no Keras "
            "schedule", path=path,
            hint="only the built-in Keras schedules are rebuilt from a checkpoint; compile the "
                 "model yourself (with your schedule) and pass it as model=")
