"""Loss-scale wrappers (mixed precision): their state into and out of a :class:`TrainingState`.

A dynamic loss scale and its count of good steps are training state: a rerun that starts
again from ``2**15`` scales its gradients differently from the run it continues. Readers put
them in ``OptimizerState.extra`` as ``loss_scale/current_loss_scale`` and
``loss_scale/good_steps`` (the wrapper's settings as ``loss_scale_config/<key>``); this module
finds the same variables on a live wrapper of Keras 3 (``LossScaleOptimizer``:
``dynamic_scale``, ``step_counter``) or Keras 2 (``mixed_precision.LossScaleOptimizer``: its
``_DynamicLossScaleState``), wraps a rebuilt optimizer, and restores them. Framework-free:
the live objects are only inspected by attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ckptcompat.names.variables import LOSS_SCALE_CONFIG, LOSS_SCALE_CURRENT, LOSS_SCALE_GOOD_STEPS

__all__ = ["CURRENT", "GOOD_STEPS", "live_variables", "settings", "wrap", "restore", "build_outer"]

log = logging.getLogger(__name__)

CURRENT = LOSS_SCALE_CURRENT
GOOD_STEPS = LOSS_SCALE_GOOD_STEPS
_CONFIG = LOSS_SCALE_CONFIG


def live_variables(outer: Any) -> dict[str, Any]:
    """Canonical key -> live variable of a loss-scale wrapper (``{}`` for any other optimizer,
    and for a Keras 2 wrapper with a fixed scale, which has no state)."""
    if outer is None or getattr(outer, "inner_optimizer", None) is None:
        return {}
    if hasattr(outer, "dynamic_scale") and hasattr(outer, "step_counter"):  # Keras 3, once built
        return {CURRENT: outer.dynamic_scale, GOOD_STEPS: outer.step_counter}
    state = getattr(outer, "_loss_scale", None)  # tf.keras / tf-keras: _DynamicLossScaleState
    current, counter = getattr(state, "_current_loss_scale", None), getattr(state, "_counter", None)
    return {CURRENT: current, GOOD_STEPS: counter} if current is not None and counter is not None else {}


def settings(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """The wrapper a checkpoint's optimizer ran in (``dynamic``, ``initial_scale``,
    ``growth_steps``), or None when it ran without one. A file that records the wrapper's
    settings but not its scale (a Keras 2 ``.h5``) gets a wrapper whose scale starts afresh."""
    if CURRENT not in extra and _CONFIG + "dynamic" not in extra:
        return None

    def get(key: str, default: Any) -> Any:
        value = extra.get(_CONFIG + key)
        return default if value is None else np.asarray(value).item()

    return {"dynamic": bool(get("dynamic", True)),
            "initial_scale": float(get("initial_scale", np.asarray(extra.get(CURRENT, 2.0 ** 15)).item())),
            "growth_steps": int(get("dynamic_growth_steps", 2000))}


def wrap(keras: Any, inner: Any, keras_major: int, extra: Mapping[str, Any]) -> Any:
    """``inner`` inside the running Keras's loss-scale wrapper when the checkpoint's optimizer
    had one (else ``inner``)."""
    wanted = settings(extra)
    if wanted is None:
        return inner
    if keras_major >= 3:
        if not wanted["dynamic"]:
            log.warning("the checkpoint's optimizer used a fixed loss scale (%s); Keras 3 has only "
                        "the dynamic LossScaleOptimizer, so the optimizer is not wrapped",
                        wanted["initial_scale"])
            return inner
        return keras.optimizers.LossScaleOptimizer(inner, initial_scale=wanted["initial_scale"],
                                                   dynamic_growth_steps=wanted["growth_steps"])
    if not hasattr(keras.mixed_precision, "LossScaleOptimizer"):  # tf.keras < 2.4: experimental only
        from ckptcompat.errors import UnsupportedFormatError

        raise UnsupportedFormatError(
            "the checkpoint's optimizer ran inside a loss-scale wrapper (mixed precision); this "
            f"tf.keras ({getattr(keras, '__version__', '?')}) has only the experimental wrapper, "
            "whose state ckptcompat does not restore",
            hint="resume with TF 2.4 or newer, or compile the model yourself and pass "
                 "resume(path, model=model, partial=True) (the loss scale then starts again)")
    if not wanted["dynamic"]:
        return keras.mixed_precision.LossScaleOptimizer(inner, dynamic=False,
                                                        initial_scale=wanted["initial_scale"])
    return keras.mixed_precision.LossScaleOptimizer(inner, initial_scale=wanted["initial_scale"],
                                                    dynamic_growth_steps=wanted["growth_steps"])


def build_outer(model: Any) -> bool:
    """Build a Keras 3 wrapper that is not built yet (its state variables appear in ``build``);
    True when it did (its inner optimizer is then built too)."""
    outer = getattr(model, "optimizer", None)
    if outer is None or getattr(outer, "inner_optimizer", None) is None or getattr(outer, "built", True):
        return False
    if not hasattr(outer, "step_counter") and hasattr(outer, "build"):
        outer.build(list(model.trainable_variables))
        return True
    return False


def restore(assign: Any, model: Any, extra: Mapping[str, Any], where: str = "") -> list[str]:
    """Assign the checkpoint's loss-scale state to the model's wrapper; the keys restored.
    A checkpoint scale the model has no wrapper for is reported, not silently dropped."""
    live = live_variables(getattr(model, "optimizer", None))
    if CURRENT in extra and not live:
        log.warning("%sthe checkpoint's loss scale (%s, %s good steps) is not restored: the model's "
                    "optimizer is not a (dynamic) LossScaleOptimizer", f"{where}: " if where else "",
                    np.asarray(extra[CURRENT]).item(), np.asarray(extra.get(GOOD_STEPS, 0)).item())
        return []
    done = []
    for key, var in live.items():
        if key in extra:
            assign(var, np.asarray(extra[key]).astype(np.dtype(str(getattr(var.dtype, "name", var.dtype)))))
            done.append(key)
    if done:
        log.info("loss scale restored: %s", ", ".join(f"{k}={np.asarray(extra[k]).item()}" for k in done))
    return done


def capture(outer: Any, to_numpy: Any) -> dict[str, np.ndarray]:
    """The wrapper's state and settings for ``OptimizerState.extra`` (``{}`` without one; a
    Keras 2 wrapper with a fixed scale has settings only)."""
    if outer is None or getattr(outer, "inner_optimizer", None) is None:
        return {}
    out = {key: np.array(to_numpy(var)) for key, var in live_variables(outer).items()}
    dynamic = hasattr(outer, "dynamic_scale") or bool(getattr(outer, "dynamic", True))
    out[_CONFIG + "dynamic"] = np.asarray(dynamic)
    initial = getattr(outer, "initial_scale", None)
    growth = getattr(outer, "dynamic_growth_steps", None)
    if initial is not None:
        out[_CONFIG + "initial_scale"] = np.asarray(float(initial))
    if growth is not None:
        out[_CONFIG + "dynamic_growth_steps"] = np.asarray(int(growth))
    return out
