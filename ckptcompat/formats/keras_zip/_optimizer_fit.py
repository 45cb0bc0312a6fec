"""Which optimizer layouts fit the ``optimizer/vars`` of a Keras v3 weights file.

:func:`check` lists how stored variables misfit one layout (count, the integer iteration count,
scalar rate and Nadam product, slot shapes); :func:`guess_layouts` finds, for a file that records
the optimizer's class but no config, the flag combinations (``amsgrad``, ``momentum``,
``centered``, a schedule in place of the rate) and Nadam ``u_product`` places that fit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.formats.keras_zip._optimizer import optimizer_layout
from ckptcompat.names.optimizer_layouts import slot_shape, u_product_first

__all__ = ["check", "guess_layouts"]

log = logging.getLogger(__name__)

#: a schedule in place of the rate (Keras 3 then stores no ``learning_rate`` variable)
_SCHEDULE: Mapping[str, Any] = {"class_name": "LearningRateSchedule", "config": {}}
_GUESS_CONFIGS: tuple[dict[str, Any], ...] = (
    {}, {"momentum": 0.9}, {"amsgrad": True}, {"centered": True}, {"momentum": 0.9, "centered": True})


def guess_layouts(canon: str, generation: str, trainable: list[tuple[str, tuple[int, ...]]],
                   arrays: list[np.ndarray], path: Path, version: str | None = None
                   ) -> tuple[list[Any], dict[str, Any], tuple[str, ...]]:
    """Class known (group attribute) but no config: the layouts of the few flag combinations
    that fit the variable count and shapes, and those flags; when several meanings fit
    equally, no layout but the configurations that fit (``RMSprop(centered=True)``). ``version``: the
    writing Keras release, whose place of Nadam's ``u_product`` is tried first."""
    fits = _fitting_guesses(canon, generation, trainable, arrays, _GUESS_CONFIGS, version)
    if not fits and generation == "keras3":  # no learning_rate variable: the rate was a schedule
        scheduled = _fitting_guesses(canon, generation, trainable, arrays,
                                     tuple({**c, "learning_rate": _SCHEDULE} for c in _GUESS_CONFIGS), version)
        if scheduled:
            log.warning("%s: the %s variables hold no learning rate: the run used a learning-rate schedule, "
                        "which this file does not record", path, canon)
            return [], {}, (f"{canon}(learning_rate=<the run's schedule; the file does not record it>)",)
    meanings = {tuple((k, v, sl) for k, v, sl in x) for x, _ in fits}
    if len(meanings) > 1:  # e.g. RMSprop momentum vs centered: same count, same shapes
        log.warning("%s: %d %s configurations fit the %d optimizer variables equally; the "
                    "file does not say which", path, len(meanings), canon, len(arrays))
        seen: dict[tuple[Any, ...], str] = {}
        for x, c in fits:
            flags = ", ".join(f"{k}>0" if isinstance(v, float) else f"{k}={v}" for k, v in c.items())
            seen.setdefault(tuple((k, v, sl) for k, v, sl in x), f"{canon}({flags})")
        return [], {}, tuple(seen.values())
    if fits and any(isinstance(v, float) for v in fits[0][1].values()):  # momentum > 0, its value unknown
        flags = ", ".join(f"{k}=<a value > 0 the file does not record>" if isinstance(v, float) else f"{k}={v}"
                          for k, v in fits[0][1].items())
        log.warning("%s: the %s variables show %s, whose value this file does not record", path, canon, flags)
        return [], {}, (f"{canon}({flags})",)
    return [x for x, _ in fits], (dict(fits[0][1]) if fits else {}), ()


def _fitting_guesses(canon: str, generation: str, trainable: list[tuple[str, tuple[int, ...]]],
                     arrays: list[np.ndarray], configs: tuple[dict[str, Any], ...],
                     version: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """(layout, config) of each of ``configs`` whose layout every variable fits: with Nadam's
    ``u_product`` where the writing release (``version``) keeps it when any fits so, else anywhere."""
    first = u_product_first(version)
    for places in ((first,), (not first,)) if version else ((False, True),):
        found = [(optimizer_layout(canon, c, generation, trainable, u_first), c) for c in configs for u_first in places]
        fits = [(x, c) for x, c in found if x is not None and not check(tuple(x), arrays, dict(trainable), canon)]
        if fits:
            return fits
    return []


def _want_shape(kind: str, slot: str, var_shape: tuple[int, ...], cls: str) -> tuple[int, ...]:
    return slot_shape(cls, slot, tuple(var_shape)) if kind == "slot" else tuple(var_shape)


def check(layout: tuple[tuple[str, str | None, str], ...], arrays: list[np.ndarray],
          shapes: Mapping[str, tuple[int, ...]], cls: str = "") -> list[str]:
    """Every way ``arrays`` (``optimizer/vars``) misfit ``layout``: count, kinds, shapes; empty when they fit."""
    problems = []
    if len(layout) != len(arrays):
        problems.append(f"expected {len(layout)} optimizer variables, the file has {len(arrays)}")
    for i, ((kind, var, slot), array) in enumerate(zip(layout, arrays)):
        if kind == "iterations" and (array.shape != () or array.dtype.kind not in "iu"):
            problems.append(f"vars/{i}: expected the integer iteration count, got {array.dtype}{array.shape}")
        elif kind in ("learning_rate", "u_product") and array.shape != ():
            problems.append(f"vars/{i}: expected scalar {kind}, got shape {array.shape}")
        elif var is not None and tuple(array.shape) != _want_shape(kind, slot, shapes[var], cls):
            problems.append(f"vars/{i}: {kind} {slot} of {var} should have shape "
                            f"{_want_shape(kind, slot, shapes[var], cls)}, "
                            f"got {tuple(array.shape)}")
    return problems
