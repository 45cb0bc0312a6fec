"""Capture and restore global random-number generator states (Checkpoint / resume).

Replayable: Python ``random``, numpy's global ``RandomState`` and TensorFlow's global
``tf.random.Generator`` (when one was created). Keras 3 layers with their own
``SeedGenerator`` (Dropout, ...) keep their state in model variables, which are saved as
weights. Not replayable: op-level seeds of stateful TF ops (Keras 2 Dropout, ``tf.random.*``
ops without a Generator) and the order ``fit(x, y, shuffle=True)`` draws -- use
:class:`ckptcompat.data.ArrayData` for a replayable data order.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["capture_rng", "restore_rng", "note_unreplayable_order", "UNREPLAYABLE_ORDER"]

log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """JSON-safe (after :func:`ckptcompat.formats.sidecar.to_jsonable`) global RNG states."""
    out: dict[str, Any] = {}
    version, internal, gauss = random.getstate()
    out["python"] = {"version": version, "state": list(internal), "gauss": gauss}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out["numpy"] = {"kind": kind, "keys": np.asarray(keys), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached": float(cached)}
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            from tensorflow.python.ops import stateful_random_ops as sro  # noqa: PLC0415
            gen = getattr(sro, "global_generator", None)
            if gen is not None:
                out["tf_global_generator"] = {"state": np.asarray(gen.state.numpy()),
                                              "algorithm": int(gen.algorithm)}
        except (ImportError, AttributeError, ValueError) as exc:  # pragma: no cover
            log.debug("TF global generator state not captured: %s", exc)
    return out


def restore_rng(rng: Mapping[str, Any]) -> list[str]:
    """Restore the states :func:`capture_rng` recorded; returns the names restored."""
    done = []
    py = rng.get("python")
    if isinstance(py, Mapping):
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py.get("gauss")))
        done.append("python")
    npst = rng.get("numpy")
    if isinstance(npst, Mapping):
        np.random.set_state((str(npst["kind"]), np.asarray(npst["keys"], dtype=np.uint32), int(npst["pos"]),
                             int(npst["has_gauss"]), float(npst["cached"])))
        done.append("numpy")
    tfg = rng.get("tf_global_generator")
    if isinstance(tfg, Mapping) and "tensorflow" in sys.modules:
        import tensorflow as tf  # noqa: PLC0415

        gen = tf.random.get_global_generator()
        value = np.asarray(tfg["state"])
        if tuple(gen.state.shape) == value.shape:
            gen.state.assign(value.astype(gen.state.dtype.as_numpy_dtype))
            done.append("tf_global_generator")
    return done


#: the one-time message for training without a replayable data object
UNREPLAYABLE_ORDER = ("data order cannot be replayed: fit(x, y, shuffle=True) draws each epoch's "
                      "order from a random state no checkpoint records; use "
                      "ckptcompat.data.ArrayData (fit(data, shuffle=False), data.tracker()) and "
                      "pass it as data= for an exact resume")
_NOTED: list[bool] = []


def note_unreplayable_order() -> bool:
    """Log :data:`UNREPLAYABLE_ORDER` once per process; True when it was logged now."""
    if _NOTED:
        return False
    _NOTED.append(True)
    log.warning(UNREPLAYABLE_ORDER)
    return True
