"""An adapted Keras 2 ``Discretization``: its bins from its summary.

tf.keras / tf-keras keep what ``adapt`` saw in a ``(2, n)`` ``summary`` variable (values and
their weights) and derive the bin boundaries from it when the layer is loaded; the config
records no boundaries. So a model rebuilt from that config has no bins yet (a ``multi_hot``
output then has one column, and the next layer's kernel another shape: tf-keras's own
``load_model`` refuses its file), and a Keras 3 ``Discretization`` keeps no variable for it.
The boundaries are computed from the checkpoint's summary as Keras 2 computes them (the
summary's quantiles at ``1 / num_bins`` steps, in float32): written into the config before
the model is rebuilt (:func:`config_with_bins`), and set on a live layer that has no variable
for them (:func:`plan_adapted_bins`, then :func:`set_adapted_bins`, as Keras 3's own
``from_config`` sets adapted bins);
the summary then leaves the state to match. Any other case is left to the matching.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from ckptcompat.resuming.layer_paths import config_entries, live_layers
from ckptcompat.state import TrainingState

__all__ = ["bins_from_summary", "config_with_bins", "plan_adapted_bins", "set_adapted_bins"]

log = logging.getLogger(__name__)

_LEAF = "summary"


def bins_from_summary(summary: Any, num_bins: int) -> list[float]:
    """The bin boundaries Keras 2 derives from an adapted ``summary`` for ``num_bins`` bins."""
    values = np.asarray(summary, dtype=np.float32)
    step = 1.0 / num_bins
    if values.shape[1] * step >= 1:  # more summary points than bins: interpolate their quantiles
        cumulative = values[1].cumsum()  # float32, as Keras 2 sums them
        quantiles = step + np.arange(0.0, 1.0, step)
        edges = np.interp(quantiles, cumulative / cumulative[-1], values[0]).astype(np.float32)
    else:
        edges = values[0]
    return [float(edge) for edge in edges[:-1]]


def _takes_bins(layer: Any) -> bool:
    """A ``Discretization`` without variables (Keras 3's, or one built with its bins)."""
    return type(layer).__name__ == "Discretization" and not list(getattr(layer, "weights", None) or [])


def config_with_bins(model_config: Any, state: TrainingState) -> Any:
    """``model_config`` (a copy where changed) with the bins of every adapted Keras 2
    ``Discretization`` the state holds a summary for, so the model rebuilds with them."""
    summaries = _summaries(state)
    if not summaries or not isinstance(model_config, dict):
        return model_config
    out = copy.deepcopy(model_config)
    for path, entry in config_entries(out):
        cfg, summary = entry["config"], summaries.get(f"{path}/{_LEAF}")
        num_bins = cfg.get("num_bins")
        if entry.get("class_name") != "Discretization" or summary is None or cfg.get("bin_boundaries") is not None \
                or isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            continue
        cfg["bin_boundaries"], cfg["num_bins"] = bins_from_summary(summary, num_bins), None
        log.info("%s: the bins of Keras 2's adapted summary (%d boundaries) written into its config", path,
                 len(cfg["bin_boundaries"]))
    return out


def _summaries(state: TrainingState) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in state.weights.items()
            if name.rpartition("/")[2] == _LEAF and np.ndim(value) == 2 and np.shape(value)[0] == 2
            and np.size(value)}


def _written_bins(state: TrainingState) -> dict[str, int]:
    """Summary name -> ``num_bins`` of the checkpoint's own adapted ``Discretization`` entries (the
    owner must be one: a custom layer's ``summary`` is not taken)."""
    found = {}
    for path, entry in config_entries(state.model_config):
        num_bins = entry["config"].get("num_bins")
        if entry.get("class_name") == "Discretization" and isinstance(num_bins, int) \
                and not isinstance(num_bins, bool) and num_bins >= 1:
            found[f"{path}/{_LEAF}"] = num_bins
    return found


def plan_adapted_bins(model: Any, state: TrainingState) -> tuple[TrainingState, list[tuple[Any, list[float], Any]]]:
    """The state without the Keras 2 summaries a live ``Discretization`` keeps no variable for, and
    ``(layer, bins, summary)`` to set once the rest is assigned (:func:`set_adapted_bins`): by layer
    path, else the one such layer and the one summary. ``num_bins`` is the checkpoint's own; a
    layer rebuilt with the bins :func:`config_with_bins` wrote only drops its summary."""
    summaries, written = _summaries(state), _written_bins(state)
    layers = [(path, layer) for path, layer in live_layers(model) if _takes_bins(layer)]
    if not layers or not summaries or not written:
        return state, []
    pairs = [(f"{path}/{_LEAF}", layer) for path, layer in layers if f"{path}/{_LEAF}" in summaries]
    ours = [name for name in summaries if name in written]
    if not pairs and len(layers) == 1 and len(ours) == 1:
        pairs = [(ours[0], layers[0][1])]  # the names differ, the structure does not
    plan, used = [], set()
    for name, layer in pairs:
        if name not in written:
            continue
        used.add(name)
        bins = bins_from_summary(summaries[name], written[name])
        current = getattr(layer, "bin_boundaries", None)
        if current is None or [float(b) for b in current] != bins:
            plan.append((layer, bins, summaries[name]))
    return state.replace(weights={n: v for n, v in state.weights.items() if n not in used}), plan


def set_adapted_bins(model: Any, plan: list[tuple[Any, list[float], Any]], where: str) -> None:
    """Set the planned bins (after every other value is assigned: nothing changes on a misfit)."""
    from ckptcompat.runtime._walk import forget_traced

    for layer, bins, summary in plan:
        layer.bin_boundaries = bins
        if hasattr(layer, "summary"):  # Keras 3's numpy summary, as it loads a legacy one itself
            layer.summary = np.asarray(summary, dtype=np.float32)
        log.info("%s: %s: %d bin boundaries computed from Keras 2's adapted summary, as Keras does", where,
                 layer.name, len(bins))
    if plan:
        forget_traced(model)
