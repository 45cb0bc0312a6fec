"""Iteration-based early stopping for hand-written ``tf.compat.v1`` session loops.

Replaces the tutorial pattern "evaluate every 100 iterations, save to ``best_validation``
on improvement, stop after 1000 iterations without one" whose counters lived in Python
globals. Every evaluation commits a checkpoint (TF1 bundle + ``state.json``) to a
:class:`~ckptcompat.store.CheckpointStore`; the counters travel in that checkpoint, so a
process killed at any moment resumes with :meth:`IterationEarlyStopping.resume` and stops at
the same iteration as an uninterrupted run. Not a Keras callback.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ckptcompat.errors import CheckpointNotFoundError, IncompatibleStateError, InvalidArgumentError

__all__ = ["IterationEarlyStopping"]

log = logging.getLogger(__name__)


class IterationEarlyStopping:
    """Evaluate every ``evaluate_every`` iterations; stop after ``patience`` without improvement.

    ``step`` everywhere is the number of completed training iterations (TF1 ``global_step``).
    An evaluation improves when ``value > best + min_delta`` (``mode="max"``) or
    ``value < best - min_delta`` (``"min"``); the first evaluation always improves.
    ``store`` is the checkpoint directory; ``keep_last`` checkpoints are kept besides the best.
    """

    KEY = "iteration_early_stopping"

    def __init__(self, evaluate_every: int = 100, patience: int = 1000, mode: str = "max",
                 min_delta: float = 0.0, store: str | os.PathLike[str] = "checkpoints",
                 *, monitor: str = "val_accuracy", keep_last: int = 1,
                 var_list: Iterable[Any] | Mapping[str, Any] | None = None) -> None:
        if mode not in ("min", "max"):
            raise InvalidArgumentError(f"mode must be 'min' or 'max', not {mode!r}")
        if int(evaluate_every) < 1 or int(patience) < 0 or int(keep_last) < 1:
            raise InvalidArgumentError("evaluate_every and keep_last must be >= 1, patience >= 0")
        self.evaluate_every = int(evaluate_every)
        self.patience = int(patience)
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.directory = Path(store)
        self.monitor = monitor
        self.keep_last = int(keep_last)
        self.var_list = var_list
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_improvement_step: int | None = None
        self.last_evaluated_step: int | None = None
        self.loop_state: dict[str, Any] = {}
        self._store: Any = None

    # -- counters --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The counters and settings, plain JSON data."""
        return {"best": self.best, "best_step": self.best_step,
                "last_improvement_step": self.last_improvement_step,
                "last_evaluated_step": self.last_evaluated_step, "mode": self.mode,
                "min_delta": self.min_delta, "patience": self.patience,
                "evaluate_every": self.evaluate_every, "monitor": self.monitor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue counting from ``state`` (a :meth:`state_dict`); the mode must agree."""
        if state.get("mode", self.mode) != self.mode:
            raise IncompatibleStateError("early stopping state of another mode",
                                         [f"mode: saved {state.get('mode')!r}, now {self.mode!r}"])
        best = state.get("best")
        self.best = None if best is None else float(best)
        for attr in ("best_step", "last_improvement_step", "last_evaluated_step"):
            value = state.get(attr)
            setattr(self, attr, None if value is None else int(value))

    @property
    def _best_key(self) -> str:
        return f"best_{self.monitor}"

    def _open(self) -> Any:
        if self._store is None:
            from ckptcompat.store import CheckpointStore, Retention  # noqa: PLC0415
            self._store = CheckpointStore(self.directory, write=True, monitor=self._best_key,
                                          mode=self.mode, retention=Retention(keep_last=self.keep_last))
        return self._store

    def close(self) -> None:
        """Release the store's write lock (also done at interpreter exit by the OS)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> IterationEarlyStopping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop --------------------------------------------------------------------------
    def resume(self, session: Any) -> int:
        """Restore the newest intact checkpoint into ``session`` and the counters; returns the
        step to continue after (0 when the store is empty or absent)."""
        from ckptcompat.runtime.tf1 import restore_session  # noqa: PLC0415
        from ckptcompat.store import CheckpointStore  # noqa: PLC0415

        if not (self.directory / "ckptcompat.json").is_file():
            return 0
        entry = CheckpointStore(self.directory).latest_good()
        if entry is None:
            return 0
        result = restore_session(entry.path, session, var_list=self.var_list)
        self.load_state_dict(result.callbacks.get(self.KEY) or {})
        self.loop_state = dict(result.loop_state)
        step = result.global_step if result.global_step is not None else entry.global_step
        log.info("resumed from %s at step %s (best %s at step %s)", entry.name, step,
                 self.best, self.best_step)
        return int(step or 0)

    def should_evaluate(self, step: int) -> bool:
        """True every ``evaluate_every`` completed iterations (and at step 0)."""
        return int(step) % self.evaluate_every == 0

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, step: int, value: float, session: Any) -> bool:
        """Record the evaluation at ``step`` and commit a checkpoint; True if it improved."""
        from ckptcompat.runtime.tf1 import save_session  # noqa: PLC0415

        step, value = int(step), float(value)
        improved = self._improves(value)
        if improved:
            self.best, self.best_step, self.last_improvement_step = value, step, step
        self.last_evaluated_step = step
        metrics = {self.monitor: value}
        if improved:
            metrics[self._best_key] = value
        save_session(self._open(), session, global_step=step, loop_state=self.loop_state,
                     callbacks={self.KEY: self.state_dict()}, metrics=metrics,
                     tags=("improved",) if improved else (), var_list=self.var_list)
        log.info("step %d: %s=%s%s", step, self.monitor, value, " (improved)" if improved else "")
        return improved

    def should_stop(self, step: int) -> bool:
        """True when ``patience`` iterations have passed since the last improvement."""
        if self.last_improvement_step is None:
            return False
        return int(step) - self.last_improvement_step >= self.patience

    def best_checkpoint(self) -> Any:
        """The store entry of the best evaluation (checksums verified)."""
        from ckptcompat.store import CheckpointStore  # noqa: PLC0415

        if self.best_step is None or not (self.directory / "ckptcompat.json").is_file():
            raise CheckpointNotFoundError("no best checkpoint yet", path=self.directory,
                                          hint="call update() at least once")
        store = CheckpointStore(self.directory)
        for entry in store.good_checkpoints():
            if entry.global_step == self.best_step and self._best_key in entry.metrics:
                return entry
        raise CheckpointNotFoundError(f"the best checkpoint (step {self.best_step}) is missing or "
                                      "damaged", path=self.directory, hint="see store.verify()")

    def restore_best(self, session: Any) -> int:
        """Assign the best checkpoint's variables to ``session``; returns its step."""
        from ckptcompat.runtime.tf1 import restore_session  # noqa: PLC0415

        entry = self.best_checkpoint()
        restore_session(entry.path, session, var_list=self.var_list)
        return int(entry.global_step)
