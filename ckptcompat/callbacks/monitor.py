"""``TrainingMonitor``: a PNG plot and a JSON history that stay continuous across resumes.

The PyImageSearch signature: ``TrainingMonitor(fig_path, json_path=None, start_at=None)``.
The history is a JSON object of lists, one entry per epoch: ``{"epoch": [1, 2, ...],
"loss": [...], "val_loss": [...], ...}`` (``epoch`` 1-based; a key missing in some epoch is
``null`` there). At each epoch end every entry of that epoch or later is dropped first, so a
run resumed at epoch ``e`` -- by ``ckptcompat.resume``, by ``start_at=e`` or just by
``fit(initial_epoch=e)`` -- never duplicates epochs, and an existing JSON is continued, not
overwritten (``start_at=0`` starts a new one). The history is also the callback state, so a
resume restores it exactly as it was at the checkpoint even if the JSON file ran ahead.

The plot (``fig_path``) shows ``loss`` / ``val_loss`` and the monitored metric under any
spelling. It needs matplotlib (Agg backend); without it a single INFO line is logged and
only the JSON is written.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from ckptcompat._compat import removeprefix
from ckptcompat._atomic import atomic_path, atomic_write
from ckptcompat.callbacks._cb_base import LazyCallback, as_float
from ckptcompat.errors import CorruptCheckpointError, InvalidArgumentError
from ckptcompat.names.metrics import normalize_logs

__all__ = ["TrainingMonitor", "trim_history"]


def trim_history(history: Mapping[str, list[Any]], epochs: int) -> dict[str, list[Any]]:
    """``history`` keeping only its entries for epochs ``1 .. epochs`` (1-based ``epoch`` list)."""
    keep = [i for i, e in enumerate(history.get("epoch", [])) if int(e) <= epochs]
    return {key: [values[i] for i in keep if i < len(values)] for key, values in history.items()}


def _json_value(value: Any) -> Any:
    number = as_float(value)
    if number is None:
        return None
    return number if math.isfinite(number) else str(number)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def _paths(fig_path: Any, json_path: Any, log: Any) -> tuple[str | None, str | None]:
    """``(fig_path, json_path)`` checked: JSON never goes to an image path, nor a plot to a
    ``.json``. The unambiguous calls of the earlier order, a ``.json`` path first and no second
    path or an image one (``TrainingMonitor("history.json", "plot.png")``), are still
    understood (a warning is logged)."""
    fig = None if fig_path is None else os.fspath(fig_path)
    js = None if json_path is None else os.fspath(json_path)
    if fig is not None and fig.lower().endswith(".json"):
        if js is not None and not js.lower().endswith(_IMAGE_SUFFIXES):
            raise InvalidArgumentError(f"TrainingMonitor(fig_path={fig!r}): the plot path ends in .json",
                                       hint="TrainingMonitor(fig_path, json_path=None, start_at=None): "
                                            "the PNG plot first, the JSON history second")
        log.warning("TrainingMonitor: %r is a .json path given as the first argument (the plot path, "
                    "PyImageSearch order); writing the history JSON there%s", fig,
                    "" if js is None else f" and the plot to {js!r}")
        fig, js = js, fig
    if js is not None and js.lower().endswith(_IMAGE_SUFFIXES):
        raise InvalidArgumentError(f"TrainingMonitor(json_path={js!r}) is an image path",
                                   hint="pass the plot as fig_path and a .json file as json_path")
    if fig is None and js is None:
        raise InvalidArgumentError("TrainingMonitor needs fig_path and/or json_path",
                                   hint="e.g. TrainingMonitor('output/history.png', "
                                        "json_path='output/history.json')")
    return fig, js


class TrainingMonitor(LazyCallback):
    """Plot the per-epoch history to ``fig_path`` (and write it to ``json_path``) every epoch.

    The PyImageSearch signature: ``TrainingMonitor(fig_path, json_path=None, start_at=None)``.
    ``start_at=None`` (default) continues the existing history: the restored callback state,
    else the JSON at ``json_path`` cut at the epoch ``fit`` resumes at; ``start_at=e`` keeps
    epochs ``1..e`` of the JSON; ``start_at=0`` starts a new history.
    """

    def __init__(self, fig_path: str | os.PathLike[str] | None = None,
                 json_path: str | os.PathLike[str] | None = None, start_at: int | None = None, *,
                 monitor: str | None = None, state_key: str | None = None) -> None:
        self._init_keras()
        self.fig_path, self.json_path = _paths(fig_path, json_path, self._log)
        if start_at is not None and (isinstance(start_at, bool) or not isinstance(start_at, int)
                                     or start_at < 0):
            raise InvalidArgumentError(f"TrainingMonitor(start_at={start_at!r}) must be an int >= 0 or None",
                                       hint="pass monitor= by keyword; start_at is the epoch to continue at")
        self.monitor = monitor
        self.start_at = start_at
        self.state_key = state_key or f"training_monitor:{self.json_path or self.fig_path}"
        self.history: dict[str, list[Any]] = {}
        self._loaded = False

    def state_dict(self) -> dict[str, Any]:
        """The history so far (JSON-safe)."""
        return {"history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the history in ``state``."""
        self.history = {str(k): list(v) for k, v in dict(state.get("history", {})).items()}
        self._loaded = True

    def _read_json(self) -> dict[str, list[Any]]:
        if self.json_path is None:
            return {}
        try:
            with open(self.json_path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CorruptCheckpointError(f"history file is not readable JSON: {exc}", path=self.json_path,
                                         hint="remove it or pass start_at=0 to start a new history") from exc
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise CorruptCheckpointError("history file is not a JSON object of lists", path=self.json_path,
                                         hint="remove it or pass start_at=0 to start a new history")
        if "epoch" not in data:  # a plain Keras History dict: number its entries
            data["epoch"] = list(range(1, max((len(v) for v in data.values()), default=0) + 1))
        return data

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        offered = self._take_state()
        if offered is not None:
            self.load_state_dict(offered)
        elif not self._loaded:
            if self.start_at == 0:
                self.history = {}
            elif self.start_at is not None:
                self.history = trim_history(self._read_json(), self.start_at)
            else:  # continue the JSON; on_epoch_end cuts it at the epoch fit resumes at
                self.history = self._read_json()
                if self.history.get("epoch"):
                    self._log.info("TrainingMonitor: continuing the history of %s (%d epoch(s); later "
                                   "epochs than fit's initial_epoch are replaced)", self.json_path,
                                   len(self.history["epoch"]))
        self._loaded = False

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        history = trim_history(self.history, epoch)
        rows = len(history.get("epoch", []))
        entry = {"epoch": epoch + 1, **{k: _json_value(v) for k, v in (logs or {}).items()}}
        for key, value in entry.items():
            column = history.setdefault(key, [None] * rows)
            column.extend([None] * (rows - len(column)))
            column.append(value)
        for column in history.values():
            column.extend([None] * (rows + 1 - len(column)))
        self.history = history
        if self.json_path is not None:
            self._write_json()
        if self.fig_path is not None:
            self._plot()

    def _write_json(self) -> None:
        assert self.json_path is not None
        folder = os.path.dirname(os.path.abspath(self.json_path))
        os.makedirs(folder, exist_ok=True)
        atomic_write(self.json_path, json.dumps(self.history, indent=1))

    def _series(self) -> list[str]:
        keys = [k for k in ("loss", "val_loss") if k in self.history]
        if self.monitor:
            values = normalize_logs({k: k for k in self.history if k != "epoch"})
            bare = removeprefix(self.monitor, "val_")
            for name in (self.monitor, bare, "val_" + bare):
                key = values.get(name)
                if key is not None and key not in keys:
                    keys.append(key)
        return keys

    def _plot(self) -> None:
        try:
            import matplotlib
        except ImportError:
            self._info_once("matplotlib", "TrainingMonitor: matplotlib is not installed; no plot "
                            "%s (pip install matplotlib)", self.fig_path)
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure = plt.figure()
        try:
            epochs = self.history.get("epoch", [])
            for key in self._series():
                values = [float(v) if v is not None else float("nan") for v in self.history[key]]
                plt.plot(epochs, values, label=key)
            plt.xlabel("epoch")
            plt.title(f"training history ({len(epochs)} epochs)")
            plt.legend()
            assert self.fig_path is not None
            suffix = os.path.splitext(self.fig_path)[1].lower().lstrip(".")
            with atomic_path(self.fig_path) as tmp:
                figure.savefig(tmp, format=suffix if f".{suffix}" in _IMAGE_SUFFIXES else "png")
        finally:
            plt.close(figure)
