"""Plot the metric history of a training run, continuous across resumes, to a PNG.

The history comes from what the checkpoints recorded: the ``history`` of ckptcompat's
``state.json`` files and the metrics of a store's manifest (or, for a foreign folder, of
file names and sidecars; see :mod:`ckptcompat.discovery`). Values are keyed by epoch, so
a resumed run continues the same curve; when an epoch was recorded twice (training
resumed from an older checkpoint and redid it) the later commit wins and the resume is
marked. Needs matplotlib (``pip install 'ckptcompat[plot]'``); uses the Agg canvas only::

    from ckptcompat.cli.plot import load_history, plot_history
    history = load_history("runs/a")      # History(metrics={"loss": {1: 0.9, 2: 0.7}, ...})
    plot_history("runs/a", "history.png")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptcompat._compat import removeprefix
from ckptcompat._atomic import atomic_path
from ckptcompat.errors import CheckpointNotFoundError, InvalidArgumentError
from ckptcompat.names.metrics import canonical_metric

__all__ = ["History", "load_history", "plot_history"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class History:
    """Per-epoch values by canonical metric name (``metrics[name][epoch]``) and resume epochs."""

    path: str
    metrics: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
    resumes: tuple[int, ...] = ()

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """Epochs (ascending) and values of one metric (any alias spelling)."""
        points = self.metrics.get(canonical_metric(name), {})
        epochs = sorted(points)
        return epochs, [points[e] for e in epochs]


def _put(out: dict[str, dict[int, float]], name: str, epoch: int, value: Any) -> None:
    try:
        out.setdefault(canonical_metric(str(name)), {})[int(epoch)] = float(value)
    except (TypeError, ValueError):
        log.debug("ignoring non-numeric %s=%r at epoch %s", name, value, epoch)


def _add_state_history(out: dict[str, dict[int, float]], state: Any) -> None:
    """``state.history`` lists hold one value per completed epoch, ending at ``progress.epoch``."""
    for name, values in state.history.items():
        values = list(values)
        end = state.progress.epoch
        offset = end - len(values) if end is not None and end >= len(values) else 0
        for i, value in enumerate(values, 1):
            _put(out, name, offset + i, value)


def _read_state(path: Path) -> Any | None:
    from ckptcompat.errors import CkptCompatError
    from ckptcompat import formats

    try:
        if formats.detect(path) == "state_json":
            return formats.read(path, format="state_json")
        from ckptcompat.formats.sidecar import read_legacy_sidecar

        return read_legacy_sidecar(path)
    except CkptCompatError as exc:
        log.warning("%s: history not used: %s", path, exc)
        return None


def _from_store(p: Path) -> tuple[dict[str, dict[int, float]], list[int]]:
    from ckptcompat.store import CheckpointStore

    store = CheckpointStore(p)
    entries = sorted(store.checkpoints(), key=lambda e: e.id)   # commit order
    good = {e.id for e in store.good_checkpoints(deep=False)}
    out: dict[str, dict[int, float]] = {}
    resumes: list[int] = []
    last: tuple[int, int] | None = None
    for entry in entries:
        # progress going backwards between commits = training resumed from an older checkpoint
        # (mid-epoch saves share an epoch, so compare (epoch, step), not the epoch alone)
        key = (entry.epoch, entry.step or 0)
        if last is not None and key <= last:
            resumes.append(entry.epoch)
        last = key
        if entry.id in good:
            for rel in sorted(entry.files):
                if Path(rel).name == "state.json":
                    state = _read_state(entry.path / rel)
                    if state is not None:
                        _add_state_history(out, state)
        for name, value in entry.metrics.items():
            _put(out, name, entry.epoch, value)
    return out, resumes


def _from_folder(p: Path) -> dict[str, dict[int, float]]:
    from ckptcompat.discovery import find_checkpoints

    out: dict[str, dict[int, float]] = {}
    cands = find_checkpoints(p)
    for state_file in sorted({c.state_json for c in cands if c.state_json is not None}):
        state = _read_state(state_file)
        if state is not None:
            _add_state_history(out, state)
    for c in cands:
        if c.epoch is not None:
            for name, value in c.metrics.items():
                _put(out, name, c.epoch, value)
    if p.is_dir() and (p / "state.json").is_file() and not out:
        state = _read_state(p / "state.json")
        if state is not None:
            _add_state_history(out, state)
    return out


def load_history(path: str | os.PathLike[str]) -> History:
    """The metric history recorded at ``path``: a store, a folder, or a ``state.json``/sidecar file.

    Raises :class:`CheckpointNotFoundError` when ``path`` is missing or records no metrics.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError("no such file or folder", path=p, hint="check the path")
    resumes: list[int] = []
    if p.is_dir() and ((p / "ckptcompat.json").exists() or (p / "ckptcompat.json.bak").exists()):
        metrics, resumes = _from_store(p)
    elif p.is_file() and p.suffix.lower() in (".json", ".pkl", ".pickle", ".p"):
        state = _read_state(p)
        metrics = {}
        if state is not None:
            _add_state_history(metrics, state)
    else:
        metrics = _from_folder(p)
    metrics = {k: v for k, v in metrics.items() if v}
    if not metrics:
        raise CheckpointNotFoundError(
            "no metric history found", path=p,
            hint="plot needs metrics recorded by the checkpoints: a store's manifest metrics, "
                 "a state.json history, or metric values in the file names (pass a store or folder)")
    return History(str(p), metrics, tuple(sorted(set(resumes))))


def _groups(names: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in sorted(names, key=lambda n: (removeprefix(n, "val_"), n.startswith("val_"))):
        groups.setdefault(removeprefix(name, "val_"), []).append(name)
    return groups


def plot_history(path: str | os.PathLike[str], output: str | os.PathLike[str] = "history.png", *,
                 metrics: Sequence[str] | None = None) -> Path:
    """Write a PNG of the history at ``path`` (see :func:`load_history`) and return its path.

    One panel per metric (``val_`` variants share the panel of the training metric), epochs
    on the x axis, resumes as dotted lines. ``metrics`` limits the panels (any alias
    spelling). The file is written atomically. Raises :class:`MissingDependencyError`
    without matplotlib and :class:`InvalidArgumentError` for an unknown metric.
    """
    from ckptcompat._lazy import require

    history = load_history(path)
    require("matplotlib", "plot the training history")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    names = list(history.metrics)
    if metrics:
        wanted = [canonical_metric(m) for m in metrics]
        unknown = [m for m, c in zip(metrics, wanted) if c not in history.metrics]
        if unknown:
            raise InvalidArgumentError(f"metric(s) not recorded: {', '.join(unknown)}", path=path,
                                       hint=f"recorded: {', '.join(sorted(names))}")
        names = [n for n in names if n in wanted or removeprefix(n, "val_") in wanted]
    groups = _groups(names)
    fig = Figure(figsize=(8, 2.8 * len(groups)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (group, members) in zip(axes, groups.items()):
        for name in members:
            epochs, values = history.series(name)
            ax.plot(epochs, values, marker="o", markersize=3, label=name)
        for epoch in history.resumes:
            ax.axvline(epoch, linestyle=":", color="grey")
        ax.set_ylabel(group)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("epoch (completed)")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(f"{history.path}" + (f"  (resumed at epoch {', '.join(map(str, history.resumes))})"
                                           if history.resumes else ""), fontsize="small")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    log.info("wrote %s", out)
    return out
