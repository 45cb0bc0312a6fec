"""``EarlyStopping`` with one meaning on every Keras version and state that survives a resume.

Epoch-based (the Keras semantics) or iteration-based (``evaluate_every_steps`` +
``patience_steps``: evaluate ``validation_data`` every N training batches inside ``fit`` and
stop after ``patience_steps`` batches without improvement -- the TF1 ``require_improvement``
loop). ``restore_best_weights`` always restores at the end of training, stopped early or not.
Best weights live in a :class:`~ckptcompat.store.CheckpointStore` (``store=``), so they survive
a restart; ``wait``, ``best``, ``best_epoch``, ``stopped_epoch`` ... are in ``state_dict()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptcompat.callbacks._cb_base import LazyCallback, as_float
from ckptcompat.callbacks._cb_best import BestWeights, default_directory
from ckptcompat.callbacks._cb_monitor import Monitor
from ckptcompat.errors import InvalidArgumentError

__all__ = ["EarlyStopping"]

_FIELDS = ("wait", "best", "best_epoch", "stopped_epoch", "step", "best_step", "last_improvement_step",
           "stopped_step", "best_id")


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"EarlyStopping({name}={value!r}) must be an int >= {minimum}",
                                   hint=f"pass {name} as a whole number >= {minimum}")
    return value


class EarlyStopping(LazyCallback):
    """Stop training when ``monitor`` stops improving; see the module docstring and docs/callbacks.md."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0,
                 evaluate_every_steps: int | None = None, patience_steps: int | None = None,
                 validation_data: Any = None, store: str | os.PathLike[str] | None = None,
                 state_key: str | None = None) -> None:
        self._init_keras()
        self.watch = Monitor(monitor, mode, min_delta, owner="EarlyStopping")
        self.monitor = monitor
        self.patience = _whole("patience", patience, 0)
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _whole("start_from_epoch", start_from_epoch, 0)
        self.evaluate_every_steps = (None if evaluate_every_steps is None
                                     else _whole("evaluate_every_steps", evaluate_every_steps, 1))
        if self.evaluate_every_steps is not None:
            if patience_steps is None or validation_data is None:
                raise InvalidArgumentError(
                    "EarlyStopping(evaluate_every_steps=...) also needs patience_steps= and validation_data=",
                    hint="e.g. evaluate_every_steps=100, patience_steps=1000, validation_data=(x_val, y_val)")
            self.patience_steps: int | None = _whole("patience_steps", patience_steps, 1)
        elif patience_steps is not None:
            raise InvalidArgumentError("EarlyStopping(patience_steps=...) needs evaluate_every_steps=",
                                       hint="pass evaluate_every_steps=N (evaluate every N batches)")
        else:
            self.patience_steps = None
        self.validation_data = validation_data
        self.store = None if store is None else Path(store)
        self.state_key = state_key or f"early_stopping:{monitor}"
        self._loaded = False
        self._epoch = 0
        self._reset()

    # -- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.wait = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.step = 0
        self.best_step = 0
        self.last_improvement_step = 0
        self.stopped_step = 0
        self.best_id: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe counters, best value and where the best weights are."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        out["monitor"] = self.monitor
        out["store"] = None if self.store is None else str(self.store)
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (what :meth:`state_dict` returned, possibly via JSON)."""
        self._reset()
        for name in _FIELDS:
            if state.get(name) is not None:
                value = state[name]
                setattr(self, name, float(value) if name == "best" else int(value))
        if self.store is None and state.get("store"):
            self.store = Path(state["store"])
        self._loaded = True

    # -- Keras hooks ------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.evaluate_every_steps is not None:
            return
        current = self.watch.value(logs)
        if current is None:
            self._warn_once("missing", "EarlyStopping: %s; not checked this epoch",
                            self.watch.describe_missing(logs))
            return
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self.watch.better(current, self.best):
            self.best, self.best_epoch = current, epoch
            self._save_best(epoch + 1, 0)
            if self.baseline is None or self.watch.better(current, self.baseline):
                self.wait = 0
            return
        if self.best_id is None and self.restore_best_weights:
            self.best_epoch = epoch  # never improved (NaN): the first weights seen count as best
            self._save_best(epoch + 1, 0)
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.evaluate_every_steps is None:
            return
        self.step += 1
        if self.step % self.evaluate_every_steps:
            return
        current = self._evaluate()
        if current is None:
            return
        if self.watch.better(current, self.best):
            self.best, self.best_step, self.last_improvement_step = current, self.step, self.step
            self.best_epoch = self._epoch
            self._save_best(self._epoch, batch + 1)
        elif self.step - self.last_improvement_step >= (self.patience_steps or 0):
            self.stopped_step, self.stopped_epoch = self.step, self._epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.model.stop_training and (self.stopped_epoch or self.stopped_step):
            step = f" (step {self.stopped_step})" if self.stopped_step else ""
            self._say(self.stopped_epoch, "early stopping%s; best %s = %s at epoch %d", step, self.monitor,
                      self.best, self.best_epoch + 1)
        if self.restore_best_weights and self.best_id is not None:
            assert self.store is not None
            if BestWeights(self.store, self.monitor, self._mode()).load(self.model, self.best_id):
                self._say(None, "Restoring model weights from the end of the best epoch: %d.",
                          self.best_epoch + 1)

    # -- helpers ----------------------------------------------------------------------------------
    def _mode(self) -> str:
        return self.watch.direction or "min"

    def _save_best(self, epoch: int, step: int) -> None:
        if not self.restore_best_weights:
            return
        if self.store is None:
            self.store = default_directory(self.model, self.state_key.replace(":", "-"))
        self.best_id = BestWeights(self.store, self.monitor, self._mode()).save(
            self.model, epoch=epoch, step=step, global_step=self.step or None, value=self.best)

    def _evaluate(self) -> float | None:
        data = self.validation_data
        args = data if isinstance(data, tuple) and len(data) in (2, 3) else (data,)
        try:
            results = self.model.evaluate(*args, verbose=0, return_dict=True)
        except TypeError as exc:  # tf.keras < 2.2 and standalone Keras: a list by metrics_names
            if "return_dict" not in str(exc):
                raise
            values = self.model.evaluate(*args, verbose=0)
            values = values if isinstance(values, (list, tuple)) else [values]
            results = dict(zip(self.model.metrics_names, values))
        results = {k: as_float(v) for k, v in results.items()}
        with_val = {**results, **{f"val_{k}": v for k, v in results.items() if not k.startswith("val_")}}
        current = self.watch.value(with_val)
        if current is None:
            self._warn_once("missing", "EarlyStopping: %s; not checked",
                            self.watch.describe_missing(with_val))
        return current
