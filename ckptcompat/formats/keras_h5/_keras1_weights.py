"""Keras 1.x ``.h5`` weights in Keras 2's layout, as Keras 2.0-2.3's own loading converted them.

Keras 1 names each weight after its layer (``dense_1_W``, ``lstm_1_W_i``, ``batchnormalization_1_running_std``)
and keeps some in other shapes. Keras 2's ``preprocess_weights_for_loading`` (for files without a
Keras 2 version) converted them when loading; tf.keras and Keras 3 dropped that, so this module
is the same conversion, applied to the weights and, tensor for tensor, to their optimizer slots:

- ``W`` -> ``kernel`` (``embeddings`` for Embedding), ``U`` -> ``recurrent_kernel``, ``b`` -> ``bias``,
  BatchNormalization's ``running_mean`` / ``running_std`` -> ``moving_mean`` / ``moving_variance``
  (Keras 1 kept the variance under that name), PReLU's ``alphas`` -> ``alpha``;
- LSTM's twelve gate tensors -> ``kernel``, ``recurrent_kernel``, ``bias`` in Keras 2's gate order
  (i, f, c, o), GRU's nine -> (z, r, h);
- Convolution kernels: Convolution1D's ``(length, 1, in, filters)`` (Keras 1.1: ``(filters, in, length, 1)``)
  -> ``(length, in, filters)``; ``dim_ordering="th"`` 2D/3D kernels -> channels-last; Deconvolution2D's
  kernel -> ``(rows, cols, filters, in)``;
- Bidirectional: each half (``forward_lstm_1_*``, ``backward_lstm_1_*``) as its own layer.

A layer of another class keeps its names (then reported by the matching as any misfit).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from typing import Mapping as MappingT

import numpy as np

from ckptcompat.names.variables import strip_tensor_suffix

__all__ = ["is_keras1_file", "to_keras2"]

log = logging.getLogger(__name__)

#: one layer's weights by their Keras 1 short name -> Keras 2 short name -> array
_Convert = Callable[[Dict[str, np.ndarray], MappingT[str, Any]], Optional[Dict[str, np.ndarray]]]
_RENAMES = {"W": "kernel", "U": "recurrent_kernel", "b": "bias", "running_mean": "moving_mean",
            "running_std": "moving_variance", "alphas": "alpha", "gamma": "gamma", "beta": "beta",
            "depthwise_kernel": "depthwise_kernel", "pointwise_kernel": "pointwise_kernel"}
_GATES = {"LSTM": ("i", "f", "c", "o"), "GRU": ("z", "r", "h")}


def is_keras1_file(version: str, layers: list[tuple[str, list[Any]]]) -> bool:
    """A file Keras 1 wrote: no Keras 2+ version, and every weight named after its layer."""
    if version and not version.startswith("1."):
        return False
    names = [(lname, _leaf(w.raw)) for lname, infos in layers for w in infos]
    return bool(names) and all(leaf.startswith(f"{lname}_") or leaf.startswith(("forward_", "backward_"))
                               for lname, leaf in names)


def _leaf(raw: str) -> str:
    return strip_tensor_suffix(raw).rsplit("/", 1)[-1]


def _gates(cls: str) -> _Convert:
    def convert(short: Dict[str, np.ndarray], _cfg: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        gates = _GATES[cls]
        parts = {kind: [short.get(f"{kind}_{g}") for g in gates] for kind in ("W", "U", "b")}
        if len(short) != 3 * len(gates) or any(x is None for xs in parts.values() for x in xs):
            return None
        return {_RENAMES[kind]: np.concatenate(xs, axis=-1) for kind, xs in parts.items()}
    return convert


def _conv_kernel(cls: str, kernel: np.ndarray, cfg: Mapping[str, Any]) -> np.ndarray:
    th = cfg.get("dim_ordering") == "th"
    if cls in ("Convolution1D", "AtrousConvolution1D") and kernel.ndim == 4:
        if kernel.shape[1] != 1 and kernel.shape[3] == 1:  # Keras 1.1: (filters, in, length, 1)
            kernel = np.transpose(kernel, (2, 3, 1, 0))
        return kernel[:, 0, :, :]
    if cls in ("Convolution2D", "AtrousConvolution2D") and th and kernel.ndim == 4:
        return np.transpose(kernel, (2, 3, 1, 0))
    if cls == "Convolution3D" and th and kernel.ndim == 5:
        return np.transpose(kernel, (2, 3, 4, 1, 0))
    if cls == "Deconvolution2D" and kernel.ndim == 4:
        return np.transpose(kernel, (2, 3, 0, 1) if th else (0, 1, 3, 2))
    return kernel


def _plain(cls: str) -> _Convert:
    def convert(short: Dict[str, np.ndarray], cfg: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        if any(name not in _RENAMES for name in short):
            return None
        out = {("embeddings" if cls == "Embedding" and name == "W" else _RENAMES[name]): value
               for name, value in short.items()}
        if "kernel" in out and cls not in ("Embedding", "Dense", "SimpleRNN"):
            out["kernel"] = _conv_kernel(cls, out["kernel"], cfg)
        return out
    return convert


def _converter(cls: str) -> _Convert:
    return _gates(cls) if cls in _GATES else _plain(cls)


def _layer_entries(model_config: Any) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Layer name -> (Keras 1 class name, config), top-level layers of a Sequential or a Model."""
    cfg = model_config.get("config") if isinstance(model_config, Mapping) else None
    layers = cfg.get("layers") if isinstance(cfg, Mapping) else cfg
    out = {}
    for entry in layers if isinstance(layers, list) else []:
        lcfg = entry.get("config") if isinstance(entry, Mapping) else None
        if isinstance(lcfg, Mapping) and isinstance(lcfg.get("name"), str):
            out[lcfg["name"]] = (str(entry.get("class_name")), lcfg)
    return out


def _halves(lname: str, cls: str, cfg: Mapping[str, Any],
            leaves: List[str]) -> list[tuple[str, str, Mapping[str, Any], List[int]]]:
    """(canonical prefix, class, config, positions) of each part of one layer's weights: the layer
    itself, or a Bidirectional's forward and backward halves."""
    inner = cfg.get("layer") if cls == "Bidirectional" else None
    if not isinstance(inner, Mapping) or not isinstance(inner.get("config"), Mapping):
        return [(lname, cls, cfg, list(range(len(leaves))))]
    name = str(inner["config"].get("name"))
    return [(f"{lname}/{side}_{name}", str(inner.get("class_name")), inner["config"],
             [i for i, leaf in enumerate(leaves) if leaf.startswith(f"{side}_{name}_")])
            for side in ("forward", "backward")]


def _plan(layers: list[tuple[str, list[Any]]], model_config: Any
          ) -> list[tuple[str, List[str], _Convert, Mapping[str, Any], str]]:
    """Per part: (new canonical prefix, old canonical names, converter, config, Keras 1 prefix)."""
    entries = _layer_entries(model_config)
    plan = []
    for lname, infos in layers:
        cls, cfg = entries.get(lname, ("", {}))
        leaves = [_leaf(w.raw) for w in infos]
        for prefix, part_cls, part_cfg, positions in _halves(lname, cls, cfg, leaves):
            old_prefix = prefix.rsplit("/", 1)[-1] if prefix != lname else lname
            plan.append((prefix, [infos[i].canonical for i in positions], _converter(part_cls), part_cfg,
                         old_prefix))
    return plan


def _convert_part(values: Dict[str, np.ndarray], leaves: Dict[str, str], prefix: str, old_prefix: str,
                  convert: _Convert, cfg: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
    short = {leaves[name][len(old_prefix) + 1:]: value for name, value in values.items()}
    out = convert(short, cfg)
    return None if out is None else {f"{prefix}/{name}": value for name, value in out.items()}


def to_keras2(layers: list[tuple[str, list[Any]]], arrays: dict[str, Any], optimizer: Any, model_config: Any,
              path: Path) -> tuple[dict[str, Any], Any]:
    """``arrays`` and the optimizer's slots of a Keras 1 file under Keras 2's names and shapes."""
    leaves = {w.canonical: _leaf(w.raw) for _, infos in layers for w in infos}
    out: dict[str, Any] = {}
    slots: dict[str, dict[str, np.ndarray]] = {}
    old_slots = {n: dict(per) for n, per in optimizer.slots.items()} if optimizer is not None else {}
    kept = []
    for prefix, names, convert, cfg, old_prefix in _plan(layers, model_config):
        new = _convert_part({n: np.asarray(arrays[n]) for n in names}, leaves, prefix, old_prefix, convert, cfg)
        if new is None:
            kept.append(prefix)
            out.update({n: arrays[n] for n in names})
            slots.update({n: dict(old_slots.pop(n)) for n in names if n in old_slots})
            continue
        out.update(new)
        kinds = {kind for n in names for kind in old_slots.get(n, {})}
        for kind in sorted(kinds):
            if not all(kind in old_slots.get(n, {}) for n in names):
                continue  # left under the old names: the matching reports them
            moved = _convert_part({n: old_slots[n][kind] for n in names}, leaves, prefix, old_prefix, convert, cfg)
            for name, value in (moved or {}).items():
                slots.setdefault(name, {})[kind] = value
            for n in names:
                old_slots[n].pop(kind)
    out.update({n: a for n, a in arrays.items() if n not in leaves})
    if kept:
        log.warning("%s: Keras 1 weights of %s kept under their own names (no conversion for their class)",
                    path, ", ".join(kept))
    log.info("%s: Keras 1 weights converted to Keras 2's names and shapes", path)
    if optimizer is not None:
        slots.update({n: per for n, per in old_slots.items() if per})
        optimizer = dataclasses.replace(optimizer, slots=slots)
    return out, optimizer
