"""Capture and restore global random-number generator states (Checkpoint / resume).

Replayable: Python ``random``, numpy's global ``RandomState``, TensorFlow's global
``tf.random.Generator`` (when one was created), torch's global generator (when torch is
imported), and Keras 3 ``SeedGenerator`` states: every one a layer of the model owns
(``Dropout(0.3, seed=1)`` keeps its state in a variable that is in ``model.variables`` but
not in ``model.weights``, so no weights file holds it) and Keras' global one (used by
``keras.random.*`` without a seed). JAX has no global random state. Not replayable: op-level seeds of stateful TF ops (Keras 2 Dropout, ``tf.random.*``
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

__all__ = ["capture_rng", "restore_rng", "seed_generators", "note_unreplayable_order",
           "UNREPLAYABLE_ORDER"]

log = logging.getLogger(__name__)


def capture_rng(model: Any = None) -> dict[str, Any]:
    """JSON-safe (after :func:`ckptcompat.formats.sidecar.to_jsonable`) global RNG states,
    plus the ``SeedGenerator`` states of ``model``'s layers (Keras 3) when a model is given."""
    out: dict[str, Any] = _capture_keras_seeds(model)
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
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_rng_state"):
        out["torch"] = {"state": np.asarray(torch.get_rng_state().numpy(), dtype=np.uint8)}
    return out


def seed_generators(model: Any) -> dict[str, Any]:
    """Every Keras 3 ``SeedGenerator`` the layers of ``model`` own, by ``<layer path>/<index>``
    in layer order (nested models add their name); empty for Keras 2 or no model."""
    out: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(layer: Any, prefix: str) -> None:
        for i, gen in enumerate(getattr(layer, "_seed_generators", None) or ()):
            if id(gen) not in seen and getattr(gen, "state", None) is not None:
                seen.add(id(gen))
                out[f"{prefix}{i}"] = gen
        flatten = getattr(layer, "_flatten_layers", None)
        for sub in (flatten(include_self=False, recursive=False) if flatten else ()):
            visit(sub, f"{prefix}{sub.name}/")

    if model is not None:
        visit(model, "")
    return out


def _global_seed_generator(create: bool) -> Any:
    """Keras 3's global ``SeedGenerator`` (``keras.random.*`` without a seed), or None."""
    if "keras" not in sys.modules:
        return None
    try:
        from keras.src.backend.common import global_state  # noqa: PLC0415
        from keras.src.random import seed_generator as sg  # noqa: PLC0415
    except ImportError:  # Keras 2, or a Keras 3 without that layout
        return None
    gen = global_state.get_global_attribute("global_seed_generator")
    return sg.global_seed_generator() if gen is None and create else gen


def _state_of(gen: Any) -> dict[str, Any]:
    from ckptcompat.runtime import keras_module  # noqa: PLC0415

    value = np.asarray(keras_module().ops.convert_to_numpy(gen.state))
    return {"state": [int(v) for v in value.ravel()], "dtype": str(value.dtype)}


def _capture_keras_seeds(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    gens = seed_generators(model)
    if gens:
        out["keras_seed_generators"] = {name: _state_of(gen) for name, gen in gens.items()}
    glob = _global_seed_generator(create=False)
    if glob is not None:
        out["keras_global_seed_generator"] = _state_of(glob)
    return out


def _seed_value(saved: Mapping[str, Any], gen: Any) -> np.ndarray:
    """A saved seed state in the live generator's dtype (uint32 on JAX, int32 on torch, int64
    on TensorFlow: the same two counters) and shape."""
    return np.asarray(saved["state"], dtype=np.int64).astype(str(gen.state.dtype)).reshape(gen.state.shape)


def _restore_keras_seeds(rng: Mapping[str, Any], model: Any) -> list[str]:
    done = []
    saved = rng.get("keras_seed_generators")
    if isinstance(saved, Mapping) and model is not None:
        live = seed_generators(model)
        for name, value in saved.items():
            gen = live.get(name)
            if gen is None or not isinstance(value, Mapping):
                log.warning("seed generator %s of the checkpoint has no counterpart in the model", name)
                continue
            gen.state.assign(_seed_value(value, gen))
        done.append("keras_seed_generators")
    glob = rng.get("keras_global_seed_generator")
    gen = _global_seed_generator(create=True) if isinstance(glob, Mapping) else None
    if gen is not None:
        gen.state.assign(_seed_value(glob, gen))
        done.append("keras_global_seed_generator")
    return done


def restore_rng(rng: Mapping[str, Any], model: Any = None) -> list[str]:
    """Restore the states :func:`capture_rng` recorded (the layers' seed generators onto
    ``model``); returns the names restored."""
    done = _restore_keras_seeds(rng, model)
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
    torch_state = rng.get("torch")
    if isinstance(torch_state, Mapping) and "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_rng_state(torch.from_numpy(np.array(torch_state["state"], dtype=np.uint8)))
        done.append("torch")
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
