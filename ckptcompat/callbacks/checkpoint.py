"""``Checkpoint``: save everything needed for an exact resume into a ckptcompat store, and
continue from it when the same script runs again.

::

    from ckptcompat.callbacks import Checkpoint
    data = ArrayData(x, y, batch_size=32, seed=0)
    model.fit(data, epochs=10, shuffle=False, callbacks=[Checkpoint("runs/a", save_freq=8, data=data)])
    # run the unchanged script again: it continues from the newest good checkpoint

The restore happens when Keras attaches the callback to the model (``set_model``, before any
``on_train_begin``; see :mod:`ckptcompat.callbacks._cb_restore`); SIGTERM / SIGINT during
``fit`` finish the batch, commit and stop (:mod:`ckptcompat.callbacks._signals`).

Each save writes, through :class:`ckptcompat.store.CheckpointStore` (atomic commit), the
model file of the running flavour with OUR writers -- ``model.keras`` (``keras_zip``) on
Keras 3, ``model.h5`` (``keras_h5``) on Keras 2; subclassed models without a config get a
weights-only ``weights.h5`` (``keras_h5``: resume then needs ``model=``) -- plus
``state.json`` (progress, history, RNG, data position, every registered callback state).
Saving reads the model only: no variable, optimizer or compile setting changes."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from ckptcompat.callbacks._async_choice import async_pays
from ckptcompat.callbacks._cb_base import bind_callback
from ckptcompat.callbacks._compile_config import compile_config
from ckptcompat.callbacks._signals import SignalCatcher, exit_code
from ckptcompat.callbacks._stop_agreement import StopAgreement
from ckptcompat.callbacks._state import collect_states, is_offered, register, take_state
from ckptcompat.callbacks._workers import SINGLE, remove_scratch, role_of, scratch_directory
from ckptcompat.errors import InvalidArgumentError

__all__ = ["Checkpoint"]

log = logging.getLogger(__name__)
STATE_KEY = "ckptcompat.checkpoint"
#: ``on_signal`` values: commit then exit the process, commit then return from ``fit``, or off
ON_SIGNAL = ("save", "stop", None, False)


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


class Checkpoint:
    """Keras callback saving weights, optimizer, progress, history, RNG, data and callback states.

    ``save_freq``: ``"epoch"`` (every ``save_every_epochs`` epochs) or an int: every that many
    optimizer steps (``iterations``), mid-epoch saves recording the batch position; the end
    of the last epoch (or of the epoch at which training is stopped) is always saved too, so a
    finished run's store holds its final weights and complete history.
    ``keep_last`` / ``keep_best`` (by ``monitor``/``mode``): retention of the store.
    ``data``: an :class:`~ckptcompat.data.ArrayData` / ``GeneratorData`` whose position is saved.
    ``async_save``: True captures on the training thread (host copies, into two host buffers
    used in turn) and commits on a background
    :class:`~ckptcompat.callbacks.async_writer.AsyncWriter` thread, flushed at ``on_train_end``;
    False writes before training goes on (no copy). None (default): asynchronous when the
    model's weights take at least :data:`ASYNC_FROM_BYTES` (there the write's stall dominates;
    below it a save takes milliseconds either way) and training is not multi-worker.
    ``restore`` (default True): at the first ``fit`` of the process, continue from the newest
    good checkpoint of ``directory`` (none yet: start from the beginning); ``False`` starts
    over. ``learning_rate``: the rate to continue with (applied on restore, logged).
    ``on_signal``: ``"save"`` (SIGTERM / SIGINT finish the batch, commit, stop, then exit the
    process with status 128 + signal), ``"stop"`` (the same, but ``fit`` returns; see
    :attr:`interrupted`) or None / False (signals left alone).
    """

    state_key = STATE_KEY

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(bind_callback(cls))

    def __init__(self, directory: str | os.PathLike[str], save_freq: str | int = "epoch", *,
                 keep_last: int | None = None, keep_best: int | None = None,
                 monitor: str | None = None, mode: str | None = None, data: Any = None,
                 save_every_epochs: int = 1, async_save: bool | None = None, restore: bool = True,
                 learning_rate: float | None = None, on_signal: str | bool | None = "save") -> None:
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise InvalidArgumentError(f"save_freq={save_freq!r}: use 'epoch' or a positive int (batches)")
        if on_signal is True or on_signal not in ON_SIGNAL:
            raise InvalidArgumentError(f"on_signal={on_signal!r}: use 'save', 'stop' or None")
        if learning_rate is not None and not (_number(learning_rate) or 0) > 0:
            raise InvalidArgumentError(f"learning_rate={learning_rate!r} is not a positive number")
        if keep_best is not None and monitor is None:
            raise InvalidArgumentError("keep_best needs monitor=<metric name>")
        from ckptcompat.store.urls import check_available, is_remote, location

        self.directory = location(directory)  # an fsspec URL stays a URL string
        if is_remote(self.directory):  # a missing package fails here, before any training step
            check_available(str(self.directory))
        self.save_freq = save_freq
        self.keep_last, self.keep_best = keep_last, keep_best
        self.monitor, self.mode = monitor, mode
        self.data = data
        self.save_every_epochs = int(save_every_epochs)
        #: what was asked (None: decided at the first save, see :attr:`saves_async`)
        self.async_save = None if async_save is None else bool(async_save)
        #: whether saves are asynchronous (None until the first save decides it)
        self.saves_async: bool | None = self.async_save
        self._writer: Any = None
        self._buffers: list[Any] = [None, None]
        self.history: dict[str, list[float]] = {}
        self.saves = 0
        self._store: Any = None
        self._epoch = 0
        self._offset = 0
        self._resume: tuple[int, int] | None = None
        self._training_config: Any = None
        self.restore = bool(restore)
        self.learning_rate = None if learning_rate is None else float(learning_rate)
        self.on_signal = on_signal or None
        #: the signal (``signal.SIGTERM`` / ``SIGINT``) that stopped the last ``fit``, else None
        self.interrupted: int | None = None
        self._signals = SignalCatcher()
        self._restore_done = False
        self._stopped = False       # the saved run was stopped (early stopping), not interrupted
        self._we_stopped = False    # this callback set model.stop_training (signal)
        self._signal_saved = False  # the signal's checkpoint is committed
        self._last_step = 0
        self._metrics_now: Any = None   # the epoch's metric accumulators at a mid-epoch save
        self._metrics_saved: Any = None  # ... of the restored save: added after the first batch
        self._tracker = data.tracker() if data is not None else None
        self._role = SINGLE  # which worker of a multi-worker run (only the chief commits)
        self._scratch: str | None = None  # a non-chief worker's private store, removed after fit
        self._agreement: StopAgreement | None = None  # which step a signal stops at (multi-worker)

    # ------------------------------------------------------------ state protocol
    def state_dict(self) -> dict[str, Any]:
        out = {"saves": self.saves, "training_config": self._training_config, "stopped": self._stopped}
        if self._metrics_now:
            out["metric_accumulators"] = self._metrics_now
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.saves = int(state.get("saves", 0))
        self._stopped = bool(state.get("stopped", False))
        self.history = {k: [float(v) for v in vals] for k, vals in dict(state.get("history", {})).items()}
        if state.get("resume_epoch") is not None:
            self._resume = (int(state["resume_epoch"]), int(state.get("resume_step", 0)))
        saved = state.get("metric_accumulators")
        self._metrics_saved = dict(saved) if isinstance(saved, Mapping) and self._resume and self._resume[1] else None

    def set_model(self, model: Any) -> None:
        super().set_model(model)  # type: ignore[misc]
        register(model, self)  # type: ignore[arg-type]
        if self._tracker is not None:
            self._tracker.set_model(model)
        if self.restore and not self._restore_done:
            self._restore_done = True  # once per instance: the first fit of the process
            if is_offered(model, self.state_key):
                log.debug("%s: state already restored by resume(); not restored again", self.directory)
            else:
                from ckptcompat.callbacks._cb_restore import restore_live

                restore_live(self.directory, model, data=self.data, learning_rate=self.learning_rate)

    def set_params(self, params: Any) -> None:
        super().set_params(params)  # type: ignore[misc]
        if self._tracker is not None:
            self._tracker.set_params(params)

    # ------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs: Any = None) -> None:
        from ckptcompat.store import CheckpointStore, Retention

        self._stopped = self._we_stopped = self._signal_saved = False
        self.interrupted = None
        offered = take_state(self.model, self.state_key)  # type: ignore[attr-defined]
        if offered is not None:
            self.load_state_dict(offered)
            self._start_at_restored_epoch()
        retention = Retention(keep_last=self.keep_last, keep_best=self.keep_best,
                              monitor=self.monitor, mode=self.mode)
        self._role = role_of(self.model)  # type: ignore[attr-defined]
        target = self.directory
        if not self._role.chief:  # saves like the chief (same collectives), commits privately
            target = self._scratch = scratch_directory(self._role, self.directory)
        self._store = CheckpointStore(target, write=True, retention=retention,
                                      monitor=self.monitor, mode=self.mode)
        self._agreement = StopAgreement(self._role, self.directory, self._iterations())
        self._training_config = compile_config(self.model)  # type: ignore[attr-defined]
        if self.data is None:
            from ckptcompat.data.rng import note_unreplayable_order

            note_unreplayable_order()
        if self.on_signal is not None:
            self._signals.install()

    def _start_at_restored_epoch(self) -> None:
        """Tell ``fit`` where the restored run stands: its epoch, or the end when it had stopped."""
        from ckptcompat import runtime

        if self._resume is None:
            return
        epoch, step = self._resume
        epochs = (getattr(self, "params", None) or {}).get("epochs")
        if self._stopped and epochs is not None:
            log.info("%s: the run had stopped (early stopping); nothing more is trained", self.directory)
            epoch, step = max(epoch, int(epochs)), 0
        rt = runtime.flavour_for(self.model)  # type: ignore[attr-defined]
        if step and self.data is not None and rt.epoch_length_fixed(self.model):  # type: ignore[attr-defined]
            self.data.count_batches_from_epoch_start()  # fit itself starts at the saved batch
        else:
            step = 0  # the data object serves only the rest of the epoch
        if not rt.start_fit_at(self.model, epoch, step):  # type: ignore[attr-defined]
            log.warning("this Keras has no hook for the first epoch of fit; pass "
                        "fit(initial_epoch=%d) yourself", epoch)

    def on_train_end(self, logs: Any = None) -> None:
        from ckptcompat import runtime

        if self.interrupted is None and not self._role.distributed:  # no batch was left to train
            self.interrupted = self._signals.received
        self._signals.uninstall()
        if self._agreement is not None:
            self._agreement.close()
        runtime.flavour_for(self.model).clear_fit_start(self.model)  # type: ignore[attr-defined]
        self._buffers = [None, None]
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()  # waits for the last commit; re-raises a failed one
        if self._store is not None:
            self._store.close()
            self._store = None
        remove_scratch(self._scratch)
        self._scratch = None
        if self.interrupted is not None:
            import signal

            name = signal.Signals(self.interrupted).name
            log.warning("%s: training stopped at epoch %d batch %d, checkpoint saved in %s; run "
                        "the same script again to continue", name, self._epoch + 1,
                        self._last_step, self.directory)
            if self.on_signal == "save":
                raise SystemExit(exit_code(self.interrupted))

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if self._tracker is not None:
            self._tracker.on_epoch_begin(epoch, logs)
        self._epoch = int(epoch)
        self._offset = 0
        if self._resume is not None:
            if self._resume[0] == epoch:
                self._offset = self._resume[1]
            else:
                self._metrics_saved = None
            self._resume = None

    def _steps_per_epoch(self) -> int | None:
        if self.data is not None:
            return int(self.data.batches_per_epoch)
        steps = (getattr(self, "params", None) or {}).get("steps")
        return None if steps is None else int(steps)

    def _iterations(self) -> int:
        from ckptcompat import runtime

        it = getattr(getattr(self.model, "optimizer", None), "iterations", None)  # type: ignore[attr-defined]
        return 0 if it is None else int(runtime.read_variable(it, self.model))  # type: ignore[attr-defined]

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self._metrics_saved is not None:  # the first batch of a resumed epoch ran
            from ckptcompat.callbacks._metric_state import add_back

            add_back(self.model, self._metrics_saved)  # type: ignore[attr-defined]
            self._metrics_saved = None
        if self._tracker is not None:
            self._tracker.on_train_batch_end(batch, logs)
            step = int(self.data.position)
        else:
            step = self._offset + int(batch) + 1
        self._last_step = step
        if self._signal_saved:
            return
        signum = self._stop_signal()
        per_epoch = self._steps_per_epoch()
        if per_epoch is not None and step >= per_epoch:
            if signum is not None:
                self._stop_for_signal(signum)  # the epoch-end save commits it (with validation logs)
            return  # the epoch-end save covers it (with validation logs)
        if signum is not None:
            self._save(self._epoch, step, {})
            self._stop_for_signal(signum)
            self._signal_saved = True
        elif isinstance(self.save_freq, int) and self._iterations() % self.save_freq == 0:
            self._save(self._epoch, step, {})

    def _stop_signal(self) -> int | None:
        """The signal to stop for now: this process's own, or under multi-worker training the
        one the chief decided on for this step (:mod:`ckptcompat.callbacks._stop_agreement`)."""
        if self._agreement is None or not self._role.distributed:
            return self._signals.received
        return self._agreement.stop_signal(self._signals.received, self._iterations())

    def _stop_for_signal(self, signum: int) -> None:
        self.interrupted = signum
        if not self.model.stop_training:  # type: ignore[attr-defined]
            self._we_stopped = True
            self.model.stop_training = True  # type: ignore[attr-defined]

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self._tracker is not None:
            self._tracker.on_epoch_end(epoch, logs)
        if self._signal_saved:
            return  # interrupted mid-epoch: committed at that batch; this epoch is not over
        for key, value in dict(logs or {}).items():
            number = _number(value)
            if number is not None:
                self.history.setdefault(str(key), []).append(number)
        signum = self._stop_signal()
        if signum is not None:
            self._stop_for_signal(signum)
        if self.save_freq == "epoch":
            due = (epoch + 1) % self.save_every_epochs == 0 or self.interrupted is not None
        else:
            due = self._iterations() % int(self.save_freq) == 0 or self._last_epoch(epoch)
        self._stopped = bool(self.model.stop_training) and not self._we_stopped  # type: ignore[attr-defined]
        if due:
            self._save(int(epoch) + 1, 0, dict(logs or {}))
            self._signal_saved = self.interrupted is not None

    def _last_epoch(self, epoch: int) -> bool:
        """True at the end of the final epoch of ``fit`` or when training was told to stop."""
        epochs = (getattr(self, "params", None) or {}).get("epochs")
        if epochs is not None and int(epoch) + 1 >= int(epochs):
            return True
        return bool(getattr(self.model, "stop_training", False))  # type: ignore[attr-defined]

    # ------------------------------------------------------------ saving
    def _save(self, epoch: int, step: int, logs: Mapping[str, Any]) -> None:
        from ckptcompat import runtime
        from ckptcompat.callbacks._metric_state import capture as capture_metrics
        from ckptcompat.data.rng import capture_rng
        from ckptcompat.state import Progress

        model = self.model  # type: ignore[attr-defined]
        self.saves += 1
        # a sync save writes the live variables' buffers before training goes on (no copy);
        # async saves copy into two host buffers used in turn, since the write of save k-2
        # has finished when save k is captured (submitting save k-1 waited for it)
        if self.saves_async is None:
            self.saves_async = async_pays(model, self._role.distributed)
        if self.saves_async:
            slot = self.saves % 2
            state = runtime.capture(model, into=self._buffers[slot])
            self._buffers[slot] = state
        else:
            state = runtime.capture(model, into=runtime.VIEWS)
        iterations = state.optimizer.iterations if state.optimizer is not None else None
        rng = capture_rng(model)
        self._metrics_now = capture_metrics(model) if step else None
        if self.data is not None:
            rng["data"] = self.data.state_dict()
        metrics = {k: v for k, v in ((k, _number(v)) for k, v in logs.items())
                   if v is not None and not math.isnan(v)}
        state = state.replace(progress=Progress(epoch=epoch, step=step, global_step=iterations),
                              history={k: list(v) for k, v in self.history.items()},
                              callbacks=collect_states(model), rng=rng,
                              training_config=self._training_config,
                              metric_names=tuple(self.history))
        if state.model_config is None:
            name, fmt = "weights.h5", "keras_h5"
            log.info("subclassed model without a config: saving weights only (resume needs model=)")
        else:
            rt = runtime.flavour_for(model)
            name, fmt = rt.NATIVE_FILE, rt.NATIVE_FORMAT
        state = state.replace(producer=state.producer.__class__(
            framework=state.producer.framework, versions=dict(state.producer.versions), format=fmt))
        assert self._store is not None, "Checkpoint used outside fit()"
        store = self._store

        def commit() -> None:
            with store.begin(epoch=epoch, step=step, global_step=iterations, metrics=metrics,
                             format=fmt, producer=state.producer) as pending:
                pending.write_state(name, state, format=fmt)
            log.info("checkpoint saved: epoch %d step %d (%s)", epoch, step, self.directory)

        if not self.saves_async:
            commit()
            return
        from ckptcompat.callbacks.async_writer import AsyncWriter, snapshot

        # runtime.capture's arrays are already host copies; the rest is copied here
        state = snapshot(state, copy_tensors=False)
        if self._writer is None:
            # with on_signal, SIGTERM is this callback's: it commits and flushes at the end of fit
            self._writer = AsyncWriter(name="ckptcompat-checkpoint",
                                       handle_sigterm=self.on_signal is None)
        self._writer.submit(commit)
