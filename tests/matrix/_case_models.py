"""The resume table's model of the case being tabled, built once.

A case's weights-only files (``weights.h5``, TF-format weights, ``tf.train.Checkpoint`` bundles)
carry no config: the table resumes them into the model built from the case's full-model file.
That model is built once per case (or taken from the full-model file's own cell) and, before
every use, has every weight, every optimizer slot and the iterations set to zero, so that what
the next resume restores is what the table then compares (a fresh build from the full-model file
would already hold the file's values, and a resume that restored nothing would pass).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

_FULL = ("model.keras", "model.h5")


class OptimizerSummary(NamedTuple):
    """What the table asks of a full-model file's optimizer before resuming it."""

    class_name: str
    slots: frozenset  # the slot names the file keeps
    hyperparameters: frozenset  # the hyper-parameter names it records
    fits: tuple  # the configurations its variables fit equally (ambiguous layouts)
    has_config: bool  # it records the optimizer's config


@functools.lru_cache(maxsize=None)
def optimizer_summary(path: Path) -> OptimizerSummary | None:
    """The file's optimizer as ``registry.read`` finds it (None: none), read once per file for
    the whole table (the case's base file and its own cell both ask)."""
    from ckptcompat.formats import registry

    opt = registry.read(path).optimizer
    if opt is None:
        return None
    return OptimizerSummary(opt.class_name, frozenset(n for per in opt.slots.values() for n in per),
                            frozenset(opt.hyperparameters), tuple(getattr(opt, "fits", ()) or ()),
                            isinstance(opt.config, dict))


def base_file(case_dir: Path) -> Path | None:
    """The case's full-model file to build + compile the model for a file without config.

    Weights-only files and TF bundles record no optimizer hyper-parameters (a bundle of a
    momentum SGD holds the slots, not the momentum value), and Keras 3.15 ``.keras`` files
    saved after the ``.h5`` (as the generator does) leave the optimizer out of ``compile_config``:
    prefer the file that records them.
    """
    files = [case_dir / n for n in _FULL if (case_dir / n).exists()]
    for path in files:
        opt = optimizer_summary(path)
        if opt is not None and opt.has_config:
            return path
    return files[0] if files else None


def zero_state(model: Any, learning_rate: bool = False) -> Any:
    """``model`` with every weight, optimizer slot and the iterations zero (hyper-parameters and
    non-slot variables kept; the learning rate too unless ``learning_rate``); returns it."""
    from ckptcompat import runtime

    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    ops = runtime.flavour_for(model)._OPS  # noqa: SLF001 -- the flavour's variable access
    opt = ops.optimizer_of(model)
    if opt is None:
        return model
    slots = [var for per in ops.live_slots(opt, ops.variables(model)).values() for var in per.values()]
    rate = ops.stored_learning_rate(opt) if learning_rate else None
    slots += [rate] if rate is not None and ops.is_variable(rate) else []
    ops.assign_all([(var, np.zeros(ops.shape(var))) for var in slots])
    if getattr(opt, "iterations", None) is not None:
        ops.write_iterations(opt, 0)
    return model


def run_optimizer(entry: dict[str, Any]) -> Any:
    """The optimizer of the run that wrote ``entry`` (its manifest class and config, its schedule),
    built in the running Keras with the arguments it takes (no ``ema_*`` in Keras 2): what a user
    compiles the model with when the file does not record it."""
    import inspect

    from ckptcompat import runtime

    keras = runtime.keras_module()
    opt = entry["optimizer"]
    cls = getattr(keras.optimizers, opt["class"])
    accepted = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in opt["config"].items() if k in accepted and k != "name"}
    if opt.get("schedule"):  # the run's schedule, which the caller knows and the file does not keep
        schedule = getattr(keras.optimizers.schedules, opt["schedule"], None) or \
            getattr(keras.experimental, opt["schedule"])  # tf.keras <= 2.4: CosineDecay is experimental
        known = inspect.signature(schedule).parameters
        kwargs["learning_rate"] = schedule(**{k: v for k, v in opt["schedule_config"].items() if k in known})
    return cls(**kwargs)


def compiled_as_run(model: Any, entry: dict[str, Any]) -> Any:
    """``model``, compiled with the run's optimizer (:func:`run_optimizer`) when it has none: the
    case's full-model file recorded no optimizer class (a Keras 3.0 ``.keras`` saved after its
    ``.h5`` failed), and a weights file never records one: the user compiles, as with ``model=``."""
    from ckptcompat import runtime

    if runtime.flavour_for(model)._OPS.optimizer_of(model) is None and entry.get("optimizer"):  # noqa: SLF001
        model.compile(optimizer=run_optimizer(entry), loss="mse")
    return model


class CaseModels:
    """The models of one case at a time (the table visits a case's files one after another): one
    compiled, one not (a file the table reads without its optimizer goes into a model without one,
    as before: a ``.weights.h5`` keeps optimizer variables by position that a compiled model would
    take)."""

    def __init__(self) -> None:
        self._case: Path | None = None
        self._base: Path | None = None
        self._models: dict[bool, Any] = {}

    def _enter(self, case_dir: Path) -> None:
        if case_dir != self._case:
            self._case, self._base, self._models = case_dir, base_file(case_dir), {}

    def base_file(self, case_dir: Path) -> Path | None:
        self._enter(case_dir)
        return self._base

    def remember(self, case_dir: Path, path: Path, model: Any) -> None:
        """The model a full-model cell resumed (compiled) from ``path``: kept when ``path`` is the
        case's base file."""
        self._enter(case_dir)
        if path == self._base:
            self._models[True] = model

    def zeroed(self, case_dir: Path, compile: bool, build: Callable[[Path, bool], Any],  # noqa: A002
               learning_rate: bool = False) -> Any:
        """The case's model (compiled or not), zeroed (:func:`zero_state`); built with
        ``build(base_file, compile)`` when none is kept."""
        self._enter(case_dir)
        if self._base is None:
            raise FileNotFoundError(f"no full-model file in {case_dir}")
        if compile not in self._models:
            self._models[compile] = build(self._base, compile)
        return zero_state(self._models[compile], learning_rate)
