"""Keras 3 ``LossScaleOptimizer`` in ``.keras`` files, read and written the way Keras saves it.

``compile_config.optimizer`` is the wrapper (``class_name`` ``LossScaleOptimizer``, its
``inner_optimizer`` config, ``initial_scale``, ``dynamic_growth_steps``); the inner optimizer's
variables are at ``optimizer/inner_optimizer/vars`` in its own layout, and ``optimizer/vars``
starts with the wrapper's own scalars: ``iterations``, ``learning_rate`` (0), ``step_counter``
(good steps since the last change of the scale) and ``dynamic_scale``, followed by the inner
variables again. The state rides in ``OptimizerState.extra`` under the keys the TF2 readers use
(:data:`~ckptcompat.names.variables.LOSS_SCALE_CURRENT`, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import CorruptCheckpointError
from ckptcompat.formats.keras_zip._io import group_vars
from ckptcompat.names.variables import LOSS_SCALE_CONFIG, LOSS_SCALE_CURRENT, LOSS_SCALE_GOOD_STEPS
from ckptcompat.state import OptimizerState

__all__ = ["INNER_GROUP", "inner_config", "is_wrapped", "read_wrapped", "wrapper_config", "wrapper_arrays"]

INNER_GROUP = "optimizer/inner_optimizer/vars"
CLASS = "LossScaleOptimizer"


def inner_config(opt_cfg: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The inner optimizer's config when ``opt_cfg`` is a Keras 3 loss-scale wrapper, else None."""
    if not isinstance(opt_cfg, Mapping) or opt_cfg.get("class_name") != CLASS:
        return None
    inner = (opt_cfg.get("config") or {}).get("inner_optimizer")
    return inner if isinstance(inner, Mapping) else None


def is_wrapped(h5: Any, opt_cfg: Mapping[str, Any] | None) -> bool:
    """A loss-scale wrapper's file: its config says so, or (``compile`` under a ``mixed_float16``
    policy wraps the optimizer itself and records the user's) ``optimizer/inner_optimizer`` exists."""
    return inner_config(opt_cfg) is not None or INNER_GROUP in h5


def read_wrapped(h5: Any, opt_cfg: Mapping[str, Any] | None, path: Path,
                 read_inner: Callable[[Mapping[str, Any] | None, str], OptimizerState | None]) -> OptimizerState | None:
    """The inner optimizer's state with the wrapper's scale and settings in ``extra``; an
    implicit wrapper (``opt_cfg`` the inner optimizer's) has Keras's default settings."""
    inner_cfg = inner_config(opt_cfg)
    if inner_cfg is None:  # compile() wrapped it: the config is the inner one
        inner_cfg, opt_cfg = opt_cfg, {"class_name": CLASS, "config": {}}
    inner = read_inner(inner_cfg, INNER_GROUP if INNER_GROUP in h5 else "optimizer/vars")
    outer = group_vars(h5, "optimizer/vars", path) or []
    if inner is None or len(outer) < 4:
        return inner  # never built: no scale yet
    counter, scale = np.asarray(outer[2]), np.asarray(outer[3])
    if counter.shape != () or scale.shape != () or counter.dtype.kind not in "iu" or scale.dtype.kind != "f":
        raise CorruptCheckpointError("the LossScaleOptimizer's step_counter / dynamic_scale are not where "
                                     "Keras puts them (optimizer/vars/2 and /3)", path=path,
                                     hint="the file is damaged or written by an unknown Keras")
    cfg = (opt_cfg or {}).get("config") or {}
    extra = {LOSS_SCALE_CURRENT: scale, LOSS_SCALE_GOOD_STEPS: counter,
             LOSS_SCALE_CONFIG + "dynamic": np.asarray(True)}
    for key in ("initial_scale", "dynamic_growth_steps"):
        if isinstance(cfg.get(key), (int, float)):
            extra[LOSS_SCALE_CONFIG + key] = np.asarray(cfg[key])
    return dataclasses.replace(inner, extra={**inner.extra, **extra})


def wrapper_config(inner_cfg: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``compile_config.optimizer`` of a wrapped optimizer (None: the state has no scale)."""
    if LOSS_SCALE_CURRENT not in extra:
        return None

    def setting(key: str, default: Any) -> Any:
        value = extra.get(LOSS_SCALE_CONFIG + key)
        return default if value is None else np.asarray(value).item()

    return {"module": "keras.optimizers", "class_name": CLASS, "registered_name": None,
            "config": {"name": "loss_scale_optimizer", "inner_optimizer": dict(inner_cfg),
                       "initial_scale": float(setting("initial_scale", 2.0 ** 15)),
                       "dynamic_growth_steps": int(setting("dynamic_growth_steps", 2000))}}


def wrapper_arrays(extra: Mapping[str, Any], inner_arrays: list[Any]) -> list[Any]:
    """``optimizer/vars`` of the wrapper: its scalars, then the inner variables again."""
    return [np.asarray(0, dtype=np.int64), np.asarray(0.0, dtype=np.float32),
            np.asarray(extra.get(LOSS_SCALE_GOOD_STEPS, 0), dtype=np.int64),
            np.asarray(extra[LOSS_SCALE_CURRENT], dtype=np.float32), *inner_arrays]
