"""Retention rules of a checkpoint store and the metric look-ups they need (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ckptcompat.store.manifest import CheckpointEntry
from ckptcompat.names.metrics import canonical_metric

__all__ = ["Retention", "best_entry", "check_mode", "metric_value", "select_kept"]


def check_mode(mode: str | None) -> str | None:
    """Validate a monitor mode (``"min"``, ``"max"`` or ``None``)."""
    if mode not in (None, "min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    return mode


def _check_count(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, not {value!r}")


@dataclass(frozen=True)
class Retention:
    """Which checkpoints to keep after each commit; the union of the rules is kept.

    * ``keep_last``: the ``k`` newest checkpoints (store order: epoch, step, commit id);
    * ``keep_best``: the ``k`` best by ``monitor`` (defaults to the store's monitor) in
      ``mode`` (``"min"``/``"max"``, defaults to the store's mode);
    * ``keep_every_n_epochs``: for every epoch that is a multiple of ``n``, the first
      checkpoint of that epoch (the epoch-boundary one when there is one).

    With no rule set, nothing is ever pruned. The newest checkpoint and the best one (when a
    monitor is known) are never pruned, whatever the rules say.
    """

    keep_last: int | None = None
    keep_best: int | None = None
    monitor: str | None = None
    mode: str | None = None
    keep_every_n_epochs: int | None = None

    def __post_init__(self) -> None:
        _check_count("keep_last", self.keep_last)
        _check_count("keep_best", self.keep_best)
        _check_count("keep_every_n_epochs", self.keep_every_n_epochs)
        check_mode(self.mode)

    @property
    def prunes(self) -> bool:
        """Whether any rule is set (otherwise every checkpoint is kept)."""
        return any(v is not None for v in (self.keep_last, self.keep_best,
                                            self.keep_every_n_epochs))


def metric_value(metrics: Mapping[str, float], name: str) -> float | None:
    """``metrics[name]``, also matching spelling variants (``acc``/``accuracy``); ``None``
    when absent or NaN."""
    value = metrics.get(name)
    if value is None:
        wanted = canonical_metric(name)
        for key, candidate in sorted(metrics.items()):
            if canonical_metric(key) == wanted:
                value = candidate
                break
    if value is None or math.isnan(value):
        return None
    return float(value)


def _ranked(entries: Iterable[CheckpointEntry], monitor: str, mode: str) -> list[CheckpointEntry]:
    """Entries having ``monitor``, best first; ties go to the earlier checkpoint."""
    scored = [(metric_value(e.metrics, monitor), e) for e in entries]
    sign = 1.0 if mode == "min" else -1.0
    return [e for v, e in sorted(((v, e) for v, e in scored if v is not None),
                                 key=lambda ve: (sign * ve[0], ve[1].order_key))]


def best_entry(entries: Iterable[CheckpointEntry], monitor: str,
               mode: str) -> CheckpointEntry | None:
    """The best entry by ``monitor`` in ``mode``, or ``None`` when none logged it."""
    ranked = _ranked(entries, monitor, mode)
    return ranked[0] if ranked else None


def select_kept(entries: Sequence[CheckpointEntry], retention: Retention,
                monitor: str | None, mode: str | None) -> set[int]:
    """Ids of the entries to keep under ``retention`` (entries in store order).

    ``monitor``/``mode`` are the store's defaults for the ``keep_best`` rule and for the
    "never prune the best" guarantee.
    """
    ordered = sorted(entries, key=lambda e: e.order_key)
    if not retention.prunes or not ordered:
        return {e.id for e in ordered}
    monitor = retention.monitor or monitor
    mode = retention.mode or mode or "min"
    keep = {ordered[-1].id}  # the newest, always
    if monitor is not None:
        best = best_entry(ordered, monitor, mode)
        if best is not None:
            keep.add(best.id)
    if retention.keep_last is not None:
        keep.update(e.id for e in ordered[-retention.keep_last:])
    if retention.keep_best is not None:
        if monitor is None:
            raise ValueError("Retention(keep_best=...) needs a monitor (a metric name), "
                             "given to Retention or to the store")
        keep.update(e.id for e in _ranked(ordered, monitor, mode)[:retention.keep_best])
    if retention.keep_every_n_epochs is not None:
        seen: set[int] = set()
        for entry in ordered:
            if entry.epoch % retention.keep_every_n_epochs == 0 and entry.epoch not in seen:
                seen.add(entry.epoch)
                keep.add(entry.id)
    return keep
