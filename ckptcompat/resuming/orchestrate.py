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

from ckptcompat.errors import IncompatibleStateError, InvalidArgumentError
from ckptcompat.resuming.assign import restore_model_state
from ckptcompat.resuming.build import typed_rebuild_errors
from ckptcompat.resuming.position import position, restore_data
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


@overload
def resume(path: str | os.PathLike[str], model: Any = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: None = None, optimizer: str = "restore", initial_epoch: int | None = None,
           steps_per_epoch: int | None = None) -> ResumeResult: ...


@overload
def resume(path: str | os.PathLike[str], model: None = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: Any, optimizer: str = "restore", initial_epoch: int | None = None,
           steps_per_epoch: int | None = None) -> TF1Restore: ...


def resume(path: str | os.PathLike[str], model: Any = None, *, which: str = "latest",
           monitor: str | None = None, mode: str | None = None, learning_rate: float | None = None,
           compile: bool = True, custom_objects: Mapping[str, Any] | None = None,  # noqa: A002
           partial: bool = False, data: Any = None, pattern: str | None = None,
           session: Any = None, optimizer: str = "restore", initial_epoch: int | None = None,
           steps_per_epoch: int | None = None) -> ResumeResult | TF1Restore:
    """Resume training from the checkpoint at ``path`` (store, folder, file or bundle prefix).

    With ``session=`` (a ``tf.compat.v1.Session``) every variable of the session's graph is
    restored instead and a :class:`ckptcompat.runtime.tf1.TF1Restore` is returned (global
    step, saved loop state, callback states); see :func:`ckptcompat.runtime.tf1.restore_session`.
    Otherwise a :class:`ResumeResult` for Keras is returned.

    ``which``: ``"latest"`` or ``"best"`` (by ``monitor``/``mode``); ``pattern``: the
    ModelCheckpoint file-path template of a foreign folder. With ``model=None`` the model is rebuilt
    from its config (a weights-only ``.h5``: ``model.json`` beside it) for the running Keras and,
    when ``compile``, compiled with the saved optimizer, loss and metrics. With a model, state is applied
    into it: every variable must match by name and shape (``IncompatibleStateError``
    listing all misfits) unless ``partial=True``. ``learning_rate`` overrides the restored
    rate (logged old -> new). ``data`` (:class:`~ckptcompat.data.ArrayData` /
    ``GeneratorData``) gets the saved data position. Restored callback states are offered
    to the model's ckptcompat callbacks, each taking its own in ``on_train_begin``.

    Matching (``model=``): canonical names first; when they do not fit one to one (layers
    auto-named ``dense_3`` in another process), by structure (layer class and order, weight
    names, every shape verified); ``report.matching`` says which, ``report.by_structure``
    lists every renaming. ``optimizer="reset"`` restores weights and progress exactly and
    leaves the model's optimizer fresh (reported, logged). ``initial_epoch`` sets the epoch
    to resume at; when the checkpoint does not record it, it is inferred from the optimizer's
    iterations and ``steps_per_epoch`` (or ``len(data)``) when both are known, else 0 (warned).
    """
    from ckptcompat import runtime
    from ckptcompat.data.rng import restore_rng

    if session is not None:
        if model is not None:
            raise InvalidArgumentError("give either model= (Keras) or session= (TF1), not both")
        from ckptcompat.runtime.tf1 import restore_session

        return restore_session(path, session, partial=partial)
    _check_arguments(which, optimizer, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch)
    if model is None:
        cand, state, model, rt = _read_and_rebuild(path, which, monitor=monitor, mode=mode,
                                                   pattern=pattern, custom_objects=custom_objects,
                                                   compile=compile, optimizer=optimizer)
        optimizer = _ambiguous_optimizer(state, str(cand.path), optimizer, restoring=compile, partial=partial)
    else:
        cand, state = _read(path, which, monitor=monitor, mode=mode, pattern=pattern, optimizer=optimizer)
        rt = runtime.flavour_for(model)  # after the read: a missing file is told first
    where = str(cand.path)
    report = restore_model_state(rt, state, model, where, partial=partial, optimizer=optimizer,
                                  learning_rate=learning_rate)
    restore_rng(state.rng, model)
    epoch, step, epoch_source, global_step = position(cand, state, initial_epoch=initial_epoch,
                                                       steps_per_epoch=steps_per_epoch, data=data,
                                                       where=where)
    epoch, step, data_restored = restore_data(data, state, epoch, step, where)
    callbacks = _offer_callbacks(model, state, epoch, step)
    return _result(cand, state, model, report, epoch=epoch, step=step, epoch_source=epoch_source,
                   global_step=global_step, callbacks=callbacks, data_restored=data_restored)


def _check_arguments(which: str, optimizer: str, *, initial_epoch: int | None,
                     steps_per_epoch: int | None) -> None:
    """:class:`InvalidArgumentError` for a ``which``, ``optimizer`` or epoch argument out of range."""
    if which not in ("latest", "best"):
        raise InvalidArgumentError(f"which={which!r} is not 'latest' or 'best'")
    if optimizer not in ("restore", "reset"):
        raise InvalidArgumentError(f"optimizer={optimizer!r} is not 'restore' or 'reset'")
    for arg, value in (("initial_epoch", initial_epoch), ("steps_per_epoch", steps_per_epoch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0
                                  or (arg == "steps_per_epoch" and value == 0)):
            raise InvalidArgumentError(f"{arg}={value!r} is not a {'positive' if arg == 'steps_per_epoch' else 'non-negative'} int")


def _read(path: str | os.PathLike[str], which: str, *, monitor: str | None, mode: str | None,
          pattern: str | None, optimizer: str = "restore") -> tuple[Any, TrainingState]:
    """(the chosen candidate, its state), the training config the Checkpoint callback saved
    taking the place of the file's."""
    from ckptcompat.resuming.read import pick_and_read

    cand, state = pick_and_read(path, which, monitor=monitor, mode=mode, pattern=pattern, optimizer=optimizer)
    own_saved = dict(state.callbacks.get(CHECKPOINT_STATE_KEY, {}))
    if isinstance(own_saved.get("training_config"), Mapping):
        state = state.replace(training_config=own_saved["training_config"])
    return cand, state


def _read_and_rebuild(path: str | os.PathLike[str], which: str, *, monitor: str | None,
                      mode: str | None, pattern: str | None,
                      custom_objects: Mapping[str, Any] | None,
                      compile: bool, optimizer: str) -> tuple[Any, TrainingState, Any, Any]:  # noqa: A002
    """(candidate, state, rebuilt model, flavour module): the tensors are read on a second
    thread while the model is rebuilt (:mod:`ckptcompat.resuming.prefetch`); when that read
    fails, the checkpoint is read again the eager way, whose errors and fallbacks are the
    reference."""
    from ckptcompat import runtime
    from ckptcompat.formats._headers import lazy_tensors
    from ckptcompat.resuming.prefetch import TensorPrefetch

    with lazy_tensors():  # the files stay open until every tensor is loaded
        cand, state = _read(path, which, monitor=monitor, mode=mode, pattern=pattern, optimizer=optimizer)
        flavour = runtime.detect()  # after the read: a missing file is told first
        rt = runtime.flavour(flavour)
        loader = TensorPrefetch(state)
        try:
            model = _rebuild(state, flavour, rt, custom_objects, str(cand.path), compile=compile)
        finally:
            loader.stop_and_join()  # also on an interrupt: no read outlives the open files
    loaded = loader.result()
    if loaded is not None:
        return cand, loaded, model, rt
    first = cand.path
    cand, state = _read(path, which, monitor=monitor, mode=mode, pattern=pattern, optimizer=optimizer)
    if cand.path != first:  # fell back to another checkpoint: its own config
        model = _rebuild(state, flavour, rt, custom_objects, str(cand.path), compile=compile)
    return cand, state, model, rt


def _ambiguous_optimizer(state: TrainingState, where: str, optimizer: str, *, restoring: bool,
                         partial: bool) -> str:
    """The ``optimizer`` mode for a rebuilt model whose optimizer variables fit several
    configurations (``fits``): a default-built optimizer must not take them even where they fit
    (tf.keras 2.11+'s Adam has no rate variable, like Keras 3's under a schedule). ``restoring``
    is refused (:class:`IncompatibleStateError`); ``partial=True`` resets the optimizer (warned)."""
    fits = state.optimizer.fits if state.optimizer is not None else ()
    if not fits or optimizer == "reset" or not restoring:
        return optimizer
    what = (f"its {state.optimizer.class_name} variables by position without the optimizer's config; "
            f"they fit {' or '.join(fits)}")
    if partial:
        log.warning("%s: the file keeps %s; partial=True: the optimizer starts fresh (weights and progress "
                    "are restored)", where, what)
        return "reset"
    raise IncompatibleStateError(
        f"the file keeps {what}: the optimizer cannot be rebuilt from the file", path=where,
        hint="compile the model with the optimizer the run used and pass it as model=; "
             "or optimizer=\"reset\" (weights and progress, a fresh optimizer) or partial=True")


def _rebuild(state: TrainingState, flavour: str, rt: Any, custom_objects: Mapping[str, Any] | None,
             where: str, *, compile: bool) -> Any:  # noqa: A002
    """The model rebuilt from the checkpoint's config and, when ``compile``, compiled with the
    saved optimizer, loss and metrics; framework errors as :class:`UnsupportedFormatError`."""
    from ckptcompat.resuming.build import build_model, compile_model

    with typed_rebuild_errors("rebuild the model from the checkpoint's config", where,
                              "build the model yourself and pass it as model="):
        model = build_model(state, flavour, rt.keras_module(), custom_objects, where)
    from ckptcompat.resuming.lora import align_rebuilt

    align_rebuilt(model, state)
    if compile:
        with typed_rebuild_errors("compile the rebuilt model with the saved optimizer, loss and metrics",
                                  where, "pass compile=False and compile it yourself, or pass model="):
            compile_model(model, state, rt.keras_module(), flavour, where)
    return model


def _offer_callbacks(model: Any, state: TrainingState, epoch: int, step: int) -> dict[str, dict[str, Any]]:
    """Offer the saved callback states (the Checkpoint callback's with history and resume
    position) to the model's ckptcompat callbacks; returns the saved states."""
    from ckptcompat.callbacks._state import offer_states

    callbacks = {k: dict(v) for k, v in state.callbacks.items()}
    own = dict(callbacks.get(CHECKPOINT_STATE_KEY, {}))
    own.update({"history": {k: list(v) for k, v in state.history.items()},
                "resume_epoch": int(epoch), "resume_step": int(step)})
    offer_states(model, {**callbacks, CHECKPOINT_STATE_KEY: own})
    return callbacks


def _result(cand: Any, state: TrainingState, model: Any, report: Any, *, epoch: int, step: int,
            epoch_source: str, global_step: int | None, callbacks: dict[str, dict[str, Any]],
            data_restored: bool) -> ResumeResult:
    """The :class:`ResumeResult` of a finished resume (logged)."""
    producer = {"framework": state.producer.framework, "versions": dict(state.producer.versions)}
    source = ResumeSource(path=str(cand.file or cand.path), format=cand.format,
                          producer=MappingProxyType(producer), epoch_source=epoch_source,
                          ambiguous=cand.ambiguous)
    log.info("resumed %s (%s, %s) at epoch %d step %d", source.path, cand.format,
             state.producer.framework, epoch, step)
    return ResumeResult(model=model, initial_epoch=int(epoch), initial_step=int(step),
                        global_step=None if global_step is None else int(global_step),
                        history=MappingProxyType(_history(state.history)),
                        callback_states=MappingProxyType(callbacks), source=source, report=report,
                        state=state, data_restored=data_restored)
