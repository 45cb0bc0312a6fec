"""``resume()``: find a checkpoint (ours or foreign), read it, and restore training exactly.

::

    run = ckptcompat.resume("checkpoints/")              # model rebuilt + compiled from the file
    run.model.fit(x, y, epochs=50, **run.fit_kwargs())   # fit(initial_epoch=run.initial_epoch)

store / folder -> :mod:`ckptcompat.discovery` -> :mod:`ckptcompat.formats` -> TrainingState ->
:mod:`ckptcompat.runtime` ``apply``. ``docs/resume.md`` has every rule.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

from ckptcompat.errors import InvalidArgumentError
from ckptcompat.state import TrainingState

if TYPE_CHECKING:  # pragma: no cover
    from ckptcompat.runtime.tf1 import TF1Restore

__all__ = ["ResumeResult", "ResumeSource", "resume", "CHECKPOINT_STATE_KEY"]

log = logging.getLogger(__name__)

#: the state key of :class:`ckptcompat.callbacks.Checkpoint` in ``state.callbacks``
CHECKPOINT_STATE_KEY = "ckptcompat.checkpoint"


@dataclass(frozen=True)
class ResumeSource:
    """Where the state came from: path, registry format, producer, and how the epoch was found."""

    path: str
    format: str | None
    producer: Mapping[str, Any]
    epoch_source: str
    ambiguous: str | None = None


@dataclass(frozen=True)
class ResumeResult:
    """What :func:`resume` restored. ``fit_kwargs()`` gives the arguments for ``model.fit``."""

    model: Any
    initial_epoch: int
    initial_step: int
    global_step: int | None
    history: Mapping[str, list[float]]
    callback_states: Mapping[str, Mapping[str, Any]]
    source: ResumeSource
    report: Any
    state: TrainingState = field(repr=False, default_factory=TrainingState)
    data_restored: bool = False

    def fit_kwargs(self) -> dict[str, Any]:
        """``{"initial_epoch": ...}``, plus ``shuffle=False`` when a data object was restored.

        For a mid-epoch checkpoint ``initial_epoch`` is the interrupted epoch: the restored
        :class:`~ckptcompat.data.ArrayData` serves only its remaining batches.
        """
        out: dict[str, Any] = {"initial_epoch": self.initial_epoch}
        if self.data_restored:
            out["shuffle"] = False
        return out


def _history(raw: Mapping[str, Any]) -> dict[str, list[float]]:
    from ckptcompat.names.metrics import canonical_metric

    out = {k: [float(v) for v in vals] for k, vals in raw.items()}
    for key, vals in list(out.items()):
        out.setdefault(canonical_metric(key), list(vals))
    return out


def _live_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    from ckptcompat import runtime

    ops = runtime.flavour()._OPS  # noqa: SLF001 -- same package, name -> variable map
    return {name: tuple(ops.shape(var)) for name, var in ops.variables(model).items()}


@overload
def resume(path: str | os.PathLike[str], model: Any = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: None = None) -> ResumeResult: ...


@overload
def resume(path: str | os.PathLike[str], model: None = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: Any) -> TF1Restore: ...


def resume(path: str | os.PathLike[str], model: Any = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: Any = None) -> ResumeResult | TF1Restore:
    """Resume training from the checkpoint at ``path`` (store, folder, file or bundle prefix).

    With ``session=`` (a ``tf.compat.v1.Session``) every variable of the session's graph is
    restored instead and a :class:`ckptcompat.runtime.tf1.TF1Restore` is returned (global
    step, saved loop state, callback states); see :func:`ckptcompat.runtime.tf1.restore_session`.
    Otherwise a :class:`ResumeResult` for Keras is returned.

    ``which``: ``"latest"`` or ``"best"`` (by ``monitor``/``mode``); ``pattern``: the
    ModelCheckpoint file-path template of a foreign folder. With ``model=None`` the model
    is rebuilt from the checkpoint's config for the running Keras and, when ``compile``,
    compiled with the saved optimizer, loss and metrics. With a model, state is applied
    into it: every variable must match by name and shape (``IncompatibleStateError``
    listing all misfits) unless ``partial=True``. ``learning_rate`` overrides the restored
    rate (logged old -> new). ``data`` (:class:`~ckptcompat.data.ArrayData` /
    ``GeneratorData``) gets the saved data position. Restored callback states are offered
    to the model's ckptcompat callbacks, each taking its own in ``on_train_begin``.
    """
    from ckptcompat import runtime
    from ckptcompat.resuming.build import build_model, compile_model
    from ckptcompat.resuming.read import keras3_file_paths, pick_and_read, remap_by_structure
    from ckptcompat.data.rng import restore_rng
    from ckptcompat.callbacks._state import offer_states

    if session is not None:
        if model is not None:
            raise InvalidArgumentError("give either model= (Keras) or session= (TF1), not both")
        from ckptcompat.runtime.tf1 import restore_session

        return restore_session(path, session, partial=partial)
    if which not in ("latest", "best"):
        raise InvalidArgumentError(f"which={which!r} is not 'latest' or 'best'")
    cand, state = pick_and_read(path, which, monitor=monitor, mode=mode, pattern=pattern)
    where = str(cand.path)
    flavour = runtime.detect()
    rt = runtime.flavour(flavour)
    own_saved = dict(state.callbacks.get(CHECKPOINT_STATE_KEY, {}))
    if isinstance(own_saved.get("training_config"), Mapping):
        state = state.replace(training_config=own_saved["training_config"])
    if model is None:
        model = build_model(state, flavour, rt.keras_module(), custom_objects, where)
        if compile:
            compile_model(model, state, rt.keras_module(), flavour, where)
    to_apply = state
    if getattr(model, "optimizer", None) is None and state.optimizer is not None:
        log.warning("%s: the model is not compiled; the checkpoint's optimizer state is not restored",
                    where)
        to_apply = state.replace(optimizer=None)
    if to_apply.optimizer is not None and to_apply.optimizer.class_name == "Unknown":
        log.warning("%s: optimizer variables without an optimizer config cannot be ordered; "
                    "optimizer state not restored", where)
        to_apply = to_apply.replace(optimizer=None)
    if to_apply.optimizer is not None and not to_apply.optimizer.slots and to_apply.optimizer.iterations is None:
        to_apply = to_apply.replace(optimizer=None)  # class/hypers only (legacy sidecar): used to compile
    to_apply = remap_by_structure(to_apply, _live_shapes(model), keras3_file_paths(model))
    report = rt.apply(to_apply, model, partial=partial)
    if learning_rate is not None:
        old = rt.set_learning_rate(model, float(learning_rate))
        log.info("learning rate overridden: %s -> %s", old, learning_rate)
    restore_rng(state.rng)

    epoch = cand.epoch if cand.epoch is not None else state.progress.epoch
    if epoch is None:
        log.warning("%s: the epoch is not recorded (no store, attributes, file name or sidecar "
                    "tells it); resuming from epoch 0", where)
        epoch = 0
    step = cand.step if cand.step is not None else (state.progress.step or 0)
    global_step = cand.global_step if cand.global_step is not None else state.progress.global_step
    if global_step is None and state.optimizer is not None:
        global_step = state.optimizer.iterations

    data_state = state.rng.get("data")
    data_restored = False
    if data is not None:
        if isinstance(data_state, Mapping):
            data.load_state_dict(dict(data_state))
            data_restored = True
            epoch, step = int(data.state_dict()["epoch"]), int(data.state_dict()["position"])
        else:
            log.warning("%s: the checkpoint holds no data state; the data object starts at epoch %d",
                        where, epoch)
    if data is None:
        from ckptcompat.data.rng import note_unreplayable_order

        note_unreplayable_order()
    if data is None and step:
        log.warning("%s: mid-epoch checkpoint (epoch %d, step %d) without a data object: the "
                    "interrupted epoch restarts from its first batch", where, epoch, step)

    callbacks = {k: dict(v) for k, v in state.callbacks.items()}
    own = dict(callbacks.get(CHECKPOINT_STATE_KEY, {}))
    own.update({"history": {k: list(v) for k, v in state.history.items()},
                "resume_epoch": int(epoch), "resume_step": int(step)})
    offered = {**callbacks, CHECKPOINT_STATE_KEY: own}
    offer_states(model, offered)

    producer = {"framework": state.producer.framework, "versions": dict(state.producer.versions)}
    source = ResumeSource(path=str(cand.file or cand.path), format=cand.format,
                          producer=MappingProxyType(producer), epoch_source=cand.source,
                          ambiguous=cand.ambiguous)
    log.info("resumed %s (%s, %s) at epoch %d step %d", source.path, cand.format,
             state.producer.framework, epoch, step)
    return ResumeResult(model=model, initial_epoch=int(epoch), initial_step=int(step),
                        global_step=None if global_step is None else int(global_step),
                        history=MappingProxyType(_history(state.history)),
                        callback_states=MappingProxyType(callbacks), source=source, report=report,
                        state=state, data_restored=data_restored)
