"""``ModelCheckpoint`` with the same arguments and one meaning on every Keras version.

* ``period=N`` (Keras <= 2.3) and ``save_every_epochs=N`` save every N epochs on every
  version (``period`` becomes ``save_every_epochs`` through
  :func:`ckptcompat.names.arguments.checkpoint_kwargs`); ``save_freq=N`` saves every N batches.
* File-name templates accept any spelling of a logged key: ``{val_acc:.2f}`` works when the
  model logs ``val_accuracy`` and ``{val_auc:.3f}`` when it logs ``val_auc_1``; ``{epoch}`` is
  1-based (:func:`ckptcompat.names.metrics.format_filepath`).
* ``save_best_only``: the monitored key missing -> one warning and no save (every version);
  ``mode="auto"`` is :func:`ckptcompat.names.metrics.metric_direction`.
* The best value survives a resume (``state_dict``).
* Files are written by the running Keras' own ``model.save`` / ``save_weights`` (to a
  temporary name, then renamed into place). On Keras 3 a path that Keras would refuse gets
  the suffix that works (``.keras`` for models, ``.weights.h5`` for weights); this is
  logged once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from ckptcompat import runtime
from ckptcompat._atomic import atomic_path
from ckptcompat.callbacks._cb_base import LazyCallback
from ckptcompat.callbacks._cb_monitor import Monitor
from ckptcompat.errors import InvalidArgumentError
from ckptcompat.names.arguments import checkpoint_kwargs, log_notes
from ckptcompat.names.metrics import format_filepath

__all__ = ["ModelCheckpoint", "keras_path"]


def keras_path(path: str, *, weights_only: bool, major: int) -> str:
    """``path`` with a suffix the running Keras accepts (Keras 3 rules; Keras 2: unchanged)."""
    if major < 3:
        return path
    if weights_only:
        if path.endswith(".weights.h5"):
            return path
        if path.endswith((".h5", ".hdf5")):
            return path.rsplit(".", 1)[0] + ".weights.h5"
        return path + ".weights.h5"
    if path.endswith((".keras", ".h5", ".hdf5")):
        return path
    return path + ".keras"


def _five(value: float | None, watch: Monitor) -> str:
    """A value as Keras prints it (``%0.5f``; no value yet: ``inf`` / ``-inf`` by direction)."""
    if value is None:
        return "-inf" if watch.direction == "max" else "inf"
    return f"{value:0.5f}"


class ModelCheckpoint(LazyCallback):
    """Save the model (or its weights) during ``fit``; see the module docstring and docs/callbacks.md."""

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", period: int | None = None,
                 save_every_epochs: int | None = None, initial_value_threshold: float | None = None,
                 state_key: str | None = None, **kwargs: Any) -> None:
        self._init_keras()
        given: dict[str, Any] = dict(kwargs)
        if period is not None:
            given["period"] = period
        if save_freq != "epoch":
            given["save_freq"] = save_freq
        self._major = runtime.flavour().KERAS_MAJOR
        translation = checkpoint_kwargs(keras_major=self._major, **given)
        log_notes(translation, self._log)
        kw = translation.kwargs
        every = kw.pop("save_every_epochs", None)
        if every is not None and save_every_epochs is not None and every != save_every_epochs:
            raise InvalidArgumentError(f"period={every} and save_every_epochs={save_every_epochs} conflict",
                                       hint="pass only save_every_epochs")
        self.save_every_epochs = int(save_every_epochs or every or 1)
        self.save_freq: str | int = kw.pop("save_freq", "epoch")
        kw.pop("options", None)
        kw.pop("load_weights_on_restart", None)
        if kw:
            raise InvalidArgumentError(f"ModelCheckpoint got unexpected arguments {sorted(kw)}",
                                       hint="see docs/callbacks.md for the accepted arguments")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.watch = Monitor(monitor, mode, 0.0, owner="ModelCheckpoint", required=self.save_best_only)
        self.initial_value_threshold = (None if initial_value_threshold is None
                                        else float(initial_value_threshold))
        self.state_key = state_key or f"model_checkpoint:{self.filepath}"
        self._loaded = False
        self._epoch = 0
        self._reset()

    # -- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.best: float | None = self.initial_value_threshold
        self.epochs_since_last_save = 0
        self.batches_since_last_save = 0
        self.last_saved: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """Best value, save counters and the last file written (JSON-safe)."""
        return {"best": self.best, "epochs_since_last_save": self.epochs_since_last_save,
                "batches_since_last_save": self.batches_since_last_save,
                "last_saved": self.last_saved, "monitor": self.monitor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (what :meth:`state_dict` returned)."""
        self._reset()
        if state.get("best") is not None:
            self.best = float(state["best"])
        self.epochs_since_last_save = int(state.get("epochs_since_last_save", 0))
        self.batches_since_last_save = int(state.get("batches_since_last_save", 0))
        self.last_saved = state.get("last_saved")
        self._loaded = True

    # -- Keras hooks ------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self.batches_since_last_save += 1
        if self.batches_since_last_save >= int(self.save_freq):
            self.batches_since_last_save = 0
            self._save(self._epoch, logs, batch=batch)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.save_freq != "epoch":
            return
        self.epochs_since_last_save += 1
        if self.epochs_since_last_save >= self.save_every_epochs:
            self.epochs_since_last_save = 0
            self._save(epoch, logs)

    # -- saving -----------------------------------------------------------------------------------
    def _save(self, epoch: int, logs: Mapping[str, Any] | None, batch: int | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            current = self.watch.value(logs)
            if current is None:
                self._warn_once("missing", "ModelCheckpoint: %s; can save best only with it available, "
                                "not saving", self.watch.describe_missing(logs))
                return
            if not self.watch.better(current, self.best):
                self._say(epoch, "%s did not improve from %s", self.monitor, _five(self.best, self.watch))
                return
            improved = (self.monitor, _five(self.best, self.watch), _five(current, self.watch))
            self.best = current
        path = self._target(epoch, logs, batch)
        if self.save_best_only:
            self._say(epoch, "%s improved from %s to %s, saving model to %s", *improved, path)
        else:
            self._say(epoch, "saving model to %s", path)
        self._write(path)
        self.last_saved = path

    def _target(self, epoch: int, logs: Mapping[str, Any], batch: int | None) -> str:
        rendered = format_filepath(self.filepath, epoch, logs, batch=batch)
        fixed = keras_path(rendered, weights_only=self.save_weights_only, major=self._major)
        if fixed != rendered:
            self._warn_once("suffix", "ModelCheckpoint: Keras 3 refuses %r for %s; writing %r instead",
                            rendered, "save_weights" if self.save_weights_only else "model.save", fixed)
        return fixed

    def _write(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save = self.model.save_weights if self.save_weights_only else self.model.save
        if self.save_weights_only and not path.endswith((".h5", ".hdf5")):
            save(path)  # Keras 2 TF-format weights: several files + 'checkpoint', written by TF
            return
        with atomic_path(path, create=False) as tmp:  # Keras may write a file or a folder
            save(str(tmp))
            if os.path.isdir(tmp) and os.path.isdir(path):
                shutil.rmtree(path)  # a folder cannot be replaced in one step
