"""The running epoch's metric accumulators across a mid-epoch save and resume.

Keras resets its metrics (the loss tracker, the compiled metrics) when an epoch begins; each
batch then adds to their accumulators (``total``/``count``, true/false positives, a confusion
matrix). A save in the middle of an epoch records them (:func:`capture`); the resumed run adds
them back right after its first batch (:func:`add_back`) -- a fresh model's compiled metrics
exist only once a batch ran. IEEE addition is commutative, so ``0 + batch`` then
``+ saved`` is bitwise ``saved + batch``: the accumulators, and the epoch's logged loss and
metrics, are those of the uninterrupted run. Only the accumulators Keras's built-in metrics
keep (:data:`ACCUMULATORS`) are added back; any other metric variable is named in a warning
and restarts with the resumed batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["ACCUMULATORS", "capture", "add_back"]

log = logging.getLogger(__name__)

#: metric variable names that only ever grow by addition in Keras's built-in metrics
ACCUMULATORS = frozenset({"total", "count", "true_positives", "false_positives", "true_negatives",
                          "false_negatives", "total_cm", "sum", "squared_sum", "total_mse",
                          "num_samples", "intermediate_weights"})


def _leaves(metric: Any) -> Iterator[Any]:
    """``metric``, or the metrics it holds (Keras 3 ``CompileMetrics`` / ``CompileLoss``)."""
    subs = getattr(metric, "metrics", None)
    if isinstance(subs, (list, tuple)) and subs and all(s is not metric for s in subs):
        for sub in subs:
            yield from _leaves(sub)
    else:
        yield metric


def _short(var: Any) -> str:
    name = str(getattr(var, "name", "") or getattr(var, "path", ""))
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def _variables(model: Any) -> dict[str, Any]:
    """Every metric variable of ``model`` by ``<metric name>/<variable name>``."""
    out: dict[str, Any] = {}
    for metric in list(getattr(model, "metrics", None) or ()):
        for leaf in _leaves(metric):
            for var in list(getattr(leaf, "variables", None) or ()):
                out.setdefault(f"{getattr(leaf, 'name', '?')}/{_short(var)}", var)
    return out


def _to_numpy(var: Any, model: Any) -> np.ndarray:
    from ckptcompat.runtime import flavour_for

    rt = flavour_for(model)
    ops = getattr(rt.keras_module(), "ops", None)  # Keras 3 (any backend); Keras 2 has none
    return np.array(rt.read_variable(var) if ops is None else ops.convert_to_numpy(var), copy=True)


def capture(model: Any) -> dict[str, np.ndarray]:
    """The accumulators of ``model``'s metrics now (empty when it has none yet)."""
    return {key: _to_numpy(var, model) for key, var in _variables(model).items() if key.rsplit("/", 1)[1] in ACCUMULATORS}


def add_back(model: Any, saved: Mapping[str, Any]) -> list[str]:
    """Add the ``saved`` accumulators to ``model``'s live ones (after the resumed epoch's first
    batch); returns the keys added. Saved values with no live counterpart of their shape are
    named in one warning (that metric's epoch value then covers the resumed batches only)."""
    from ckptcompat.runtime import write_variable

    live = _variables(model)
    done: list[str] = []
    left: list[str] = []
    for key, value in saved.items():
        var = live.get(key)
        array = np.asarray(value)
        if var is None or tuple(var.shape) != array.shape:
            left.append(key)
            continue
        current = _to_numpy(var, model)
        write_variable(var, (current + array.astype(current.dtype)).astype(current.dtype), model)
        done.append(key)
    not_saved = [k for k in live if k.rsplit("/", 1)[1] not in ACCUMULATORS]
    if left or not_saved:
        log.warning("metric state not carried over the resumed epoch (its logged value covers the "
                    "resumed batches only): %s", ", ".join(sorted(left + not_saved)))
    return done
