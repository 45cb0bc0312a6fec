"""``ReduceLROnPlateau`` whose counters survive a resume, on every Keras version.

The learning rate is changed in place with :func:`ckptcompat.runtime.set_learning_rate`
(no ``optimizer.lr`` / ``K.set_value``, which Keras 3 lacks). The rate used during each
epoch is logged under both ``learning_rate`` (Keras 3) and ``lr`` (Keras 2), so plots and
monitors keyed on either keep working. ``wait``, ``cooldown_counter``, ``best`` and the list
of drops are in ``state_dict()``. ``mode="auto"`` means
:func:`ckptcompat.names.metrics.metric_direction` everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckptcompat.callbacks._cb_base import LazyCallback
from ckptcompat.callbacks._cb_monitor import Monitor
from ckptcompat.errors import InvalidArgumentError

__all__ = ["ReduceLROnPlateau", "current_learning_rate"]


def current_learning_rate(model: Any) -> float:
    """The optimizer's current (fixed) learning rate as a float (:func:`ckptcompat.runtime.learning_rate`)."""
    from ckptcompat import runtime

    result = runtime.learning_rate(model)
    if result is None:
        raise InvalidArgumentError("ReduceLROnPlateau needs a fixed learning rate; the optimizer's "
                                   "is a schedule", hint="do not combine it with a schedule")
    return result


class ReduceLROnPlateau(LazyCallback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0, state_key: str | None = None, **kwargs: Any) -> None:
        self._init_keras()
        if "epsilon" in kwargs:  # Keras <= 2.1 name of min_delta
            min_delta = kwargs.pop("epsilon")
            self._log.warning("ReduceLROnPlateau(epsilon=...) is the old name of min_delta; using min_delta")
        if kwargs:
            raise InvalidArgumentError(f"ReduceLROnPlateau got unexpected arguments {sorted(kwargs)}",
                                       hint="see docs/callbacks.md")
        if not 0 < float(factor) < 1:
            raise InvalidArgumentError(f"ReduceLROnPlateau(factor={factor!r}) must be in (0, 1)",
                                       hint="e.g. factor=0.1 divides the learning rate by 10")
        self.watch = Monitor(monitor, mode, min_delta, owner="ReduceLROnPlateau")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.state_key = state_key or f"reduce_lr_on_plateau:{monitor}"
        self._loaded = False
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best: float | None = None
        self.drops: list[list[float]] = []  # [epoch (0-based), old lr, new lr]

    def state_dict(self) -> dict[str, Any]:
        """Counters, best value and the learning-rate drops so far (JSON-safe)."""
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best,
                "drops": [list(d) for d in self.drops], "monitor": self.monitor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (what :meth:`state_dict` returned)."""
        self._reset()
        self.wait = int(state.get("wait", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))
        self.best = None if state.get("best") is None else float(state["best"])
        self.drops = [[int(d[0]), float(d[1]), float(d[2])] for d in state.get("drops", [])]
        self._loaded = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        lr = current_learning_rate(self.model)
        logs["learning_rate"] = lr
        logs["lr"] = lr
        current = self.watch.value(logs)
        if current is None:
            self._warn_once("missing", "ReduceLROnPlateau: %s; learning rate not changed",
                            self.watch.describe_missing(logs))
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watch.better(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and lr > self.min_lr:
            from ckptcompat import runtime

            new_lr = max(lr * self.factor, self.min_lr)
            runtime.set_learning_rate(self.model, new_lr)
            new_lr = current_learning_rate(self.model)
            self.drops.append([epoch, lr, new_lr])
            self._say(epoch, "ReduceLROnPlateau reducing learning rate to %s (was %s).", new_lr, lr)
            self.cooldown_counter = self.cooldown
            self.wait = 0
