"""Private helper: a monitored metric with one meaning of ``mode="auto"`` on every version."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ckptcompat.callbacks._cb_base import as_float
from ckptcompat.errors import InvalidArgumentError
from ckptcompat.names.metrics import aliases, canonical_metric, metric_direction, normalize_logs

__all__ = ["Monitor"]


class Monitor:
    """``monitor`` looked up under any spelling (``val_acc`` / ``val_accuracy``, ``auc`` / ``auc_1``).

    ``mode="auto"`` is :func:`ckptcompat.names.metrics.metric_direction` (``loss``, errors ->
    min; accuracy, AUC, precision ... -> max); unknown metric -> :class:`InvalidArgumentError`
    asking for an explicit mode. ``min_delta`` counts in the improving direction.
    """

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0, *,
                 owner: str = "callback", required: bool = True) -> None:
        if mode not in ("auto", "min", "max"):
            raise InvalidArgumentError(f"{owner}(mode={mode!r}) is not one of 'auto', 'min', 'max'",
                                       hint="pass mode='min' or mode='max'")
        self.monitor = monitor
        self.direction: str | None = mode if mode != "auto" else metric_direction(monitor)
        if self.direction is None and required:
            raise InvalidArgumentError(
                f"{owner}(monitor={monitor!r}, mode='auto'): the direction of {monitor!r} is unknown",
                hint="pass mode='min' or mode='max' explicitly")
        self.min_delta = abs(float(min_delta))
        self._names = [monitor] + sorted(aliases(monitor) - {monitor})
        self._canonical = canonical_metric(monitor)

    def value(self, logs: Mapping[str, Any] | None) -> float | None:
        """The monitored value in ``logs`` under any alias, or None when absent."""
        if not logs:
            return None
        if self.monitor in logs:
            return as_float(logs[self.monitor])
        values = normalize_logs(logs)
        for name in self._names:
            if name in values:
                return as_float(values[name])
        for key, val in values.items():  # e.g. monitor "val_auc" with only val_auc_1 logged
            if canonical_metric(key) == self._canonical:
                return as_float(val)
        return None

    def better(self, current: float, reference: float | None, min_delta: float | None = None) -> bool:
        """Whether ``current`` improves on ``reference`` by more than ``min_delta``."""
        if math.isnan(current):
            return False
        if reference is None:
            return True
        delta = self.min_delta if min_delta is None else abs(min_delta)
        if self.direction == "max":
            return current - delta > reference
        return current + delta < reference

    def describe_missing(self, logs: Mapping[str, Any] | None) -> str:
        return (f"monitored metric {self.monitor!r} is not in the logs (available: "
                f"{', '.join(sorted(logs or {})) or 'none'})")
