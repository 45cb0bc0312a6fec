"""Keras 1.x ``.h5`` weights in Keras 2's layout, as Keras 2.0-2.3's own loading converted them.

Keras 1 names each weight after its layer (``dense_1_W``, ``lstm_1_W_i``, ``batchnormalization_1_running_std``)
and keeps some in other shapes. Keras 2's ``preprocess_weights_for_loading`` (for files without a
Keras 2 version) converted them when loading; tf.keras and Keras 3 dropped that, so this module
is the same conversion, applied to the weights and, tensor for tensor, to their optimizer slots:

- ``W`` -> ``kernel`` (``embeddings`` for Embedding), ``U`` -> ``recurrent_kernel``, ``b`` -> ``bias``,
  BatchNormalization's ``running_mean`` / ``running_std`` -> ``moving_mean`` / ``moving_variance``
  (Keras 1.1+ kept the variance under that name; Keras 2.3 takes it as the variance too), PReLU's
  ``alphas`` -> ``alpha``;
- LSTM's and ConvLSTM2D's twelve gate tensors -> ``kernel``, ``recurrent_kernel``, ``bias`` in Keras 2's
  gate order (i, f, c, o), GRU's nine -> (z, r, h); ``consume_less="gpu"`` layers' fused ``W``/``U``/``b``
  as they are; a channels-first ConvLSTM2D's kernels channels-last, gate by gate (Keras 2.3 concatenates
  them on their column axis first: a shape error, or mixed gates where the shapes happen to fit);
- Convolution kernels: Convolution1D's ``(length, 1, in, filters)`` (Keras 1.0: ``(filters, in, length, 1)``)
  -> ``(length, in, filters)``; ``dim_ordering="th"`` 2D/3D kernels -> channels-last (SeparableConvolution2D's
  two too, which Keras 2.3 left as they were); Deconvolution2D's kernel -> ``(rows, cols, filters, in)``;
- Bidirectional halves (``forward_lstm_1_*``), a TimeDistributed layer's inner weights and a nested
  model's layers, each as its own layer.

Only the classes above are converted; a layer of another class, or of a class the file does not
say (a weights-only file, unless the caller names the classes: ``config``, which resume
builds from the live model), keeps its names (reported by the matching as any misfit), with a
warning. Headers-only reads (``inspect``) get the converted shapes without reading data.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from typing import Mapping as MappingT

import numpy as np

from ckptcompat.formats._headers import LazyTensor, TensorHeader, materialize
from ckptcompat.names.variables import strip_tensor_suffix

__all__ = ["is_keras1_file", "keras1_weight_prefix", "holds_keras1_names", "to_keras2"]

log = logging.getLogger(__name__)

#: one part of a layer's weights: (canonical prefix, class, config, old names, Keras 1 name prefix)
_Part = Tuple[str, str, MappingT[str, Any], List[str], str]
_RENAMES = {"W": "kernel", "U": "recurrent_kernel", "b": "bias", "running_mean": "moving_mean",
            "running_std": "moving_variance", "alphas": "alpha", "gamma": "gamma", "beta": "beta",
            "depthwise_kernel": "depthwise_kernel", "pointwise_kernel": "pointwise_kernel"}
_GATES = {"LSTM": ("i", "f", "c", "o"), "GRU": ("z", "r", "h"), "ConvLSTM2D": ("i", "f", "c", "o")}
_PLAIN = frozenset({"Dense", "Embedding", "SimpleRNN", "Convolution1D", "Convolution2D", "Convolution3D",
                    "AtrousConvolution1D", "AtrousConvolution2D", "Deconvolution2D", "SeparableConvolution2D",
                    "BatchNormalization", "PReLU", "LocallyConnected1D", "LocallyConnected2D", "LSTM", "GRU",
                    "ConvLSTM2D"})
_WRAPPERS = ("Bidirectional", "TimeDistributed")


def is_keras1_file(version: str, layers: list[tuple[str, list[Any]]]) -> bool:
    """A file Keras 1 wrote: a 1.x version, or none (as Keras 2 took it) with a weight named after
    a layer (``dense_1_W``) where Keras 2 writes ``dense_1/kernel``."""
    if version:
        return version.startswith("1.")
    return any(_leaf(w.raw).startswith((f"{lname}_", "forward_", "backward_"))
               for lname, infos in layers for w in infos)


def holds_keras1_names(state: Any) -> bool:
    """Whether a read state (of a file Keras 1 or no version wrote) still holds weights named the
    Keras 1 way, after their layer (``dense_1/dense_1_W``): unconverted, its classes unknown."""
    version = str(state.producer.versions.get("keras", ""))
    if version and not version.startswith("1."):
        return False
    for name in state.weights:
        group, _, leaf = name.partition("/")
        if leaf.startswith((f"{group}_", "forward_", "backward_")):
            return True
    return False


#: the names Keras 1 gives a weight after its layer's name, longest first (``W_i`` before ``W``)
_SUFFIXES = tuple(sorted({*(f"{kind}_{gate}" for gates in _GATES.values() for gate in gates for kind in "WUb"),
                          *_RENAMES}, key=len, reverse=True))


def keras1_weight_prefix(leaf: str) -> Optional[str]:
    """The name a Keras 1 weight was made under (``lstm_1`` of ``lstm_1_W_i``, ``forward_lstm_1`` of
    ``forward_lstm_1_U``), None for a name Keras 1 does not give a weight."""
    leaf = strip_tensor_suffix(leaf)
    for suffix in _SUFFIXES:
        if leaf.endswith(f"_{suffix}") and len(leaf) > len(suffix) + 1:
            return leaf[:-len(suffix) - 1]
    return None


def _leaf(raw: str) -> str:
    return strip_tensor_suffix(raw).rsplit("/", 1)[-1]


def _header_only(value: Any) -> bool:
    """A headers-only read's placeholder (shape and dtype, no data to read)."""
    return isinstance(value, TensorHeader) and not isinstance(value, LazyTensor)


def _cat(parts: list[Any]) -> Any:
    if any(_header_only(p) for p in parts):  # headers-only: the shape, no data
        return TensorHeader((*parts[0].shape[:-1], sum(p.shape[-1] for p in parts)), parts[0].dtype)
    return np.concatenate([materialize(p) for p in parts], axis=-1)


def _transpose(value: Any, axes: tuple[int, ...]) -> Any:
    if _header_only(value):
        return TensorHeader(tuple(value.shape[a] for a in axes), value.dtype)
    return np.transpose(materialize(value), axes)


def _gates(cls: str, short: Dict[str, Any], th: bool) -> Optional[Dict[str, Any]]:
    """Per-gate tensors concatenated in Keras 2's gate order; a channels-first ConvLSTM2D's
    kernels each made channels-last first (Keras 1 transposed them at every call)."""
    gates = _GATES[cls]
    parts = {kind: [short.get(f"{kind}_{g}") for g in gates] for kind in ("W", "U", "b")}
    if len(short) != 3 * len(gates) or any(x is None for xs in parts.values() for x in xs):
        return None
    if cls == "ConvLSTM2D" and th:
        parts = {kind: [_transpose(x, (2, 3, 1, 0)) if kind != "b" else x for x in xs] for kind, xs in parts.items()}
    return {_RENAMES[kind]: _cat(xs) for kind, xs in parts.items()}


def _conv1d(kernel: Any, cfg: MappingT[str, Any]) -> Any:
    if kernel.ndim != 4:
        return kernel
    length, filters = cfg.get("filter_length"), cfg.get("nb_filter")
    if isinstance(length, int) and isinstance(filters, int):
        legacy = tuple(kernel.shape[:2]) != (length, 1) or kernel.shape[3] != filters
    else:
        legacy = kernel.shape[1] != 1 and kernel.shape[3] == 1
    if legacy:  # Keras 1.0: (filters, in, length, 1)
        kernel = _transpose(kernel, (2, 3, 1, 0))
    if _header_only(kernel):
        return TensorHeader((kernel.shape[0], *kernel.shape[2:]), kernel.dtype)
    return materialize(kernel)[:, 0, :, :]


def _conv_kernel(cls: str, kernel: Any, cfg: MappingT[str, Any]) -> Any:
    th = cfg.get("dim_ordering") == "th"
    if cls in ("Convolution1D", "AtrousConvolution1D"):
        return _conv1d(kernel, cfg)
    if cls in ("Convolution2D", "AtrousConvolution2D") and th and kernel.ndim == 4:
        return _transpose(kernel, (2, 3, 1, 0))
    if cls == "Convolution3D" and th and kernel.ndim == 5:
        return _transpose(kernel, (2, 3, 4, 1, 0))
    if cls == "Deconvolution2D" and kernel.ndim == 4:
        return _transpose(kernel, (2, 3, 0, 1) if th else (0, 1, 3, 2))
    return kernel


def _convert(cls: str, short: Dict[str, Any], cfg: MappingT[str, Any]) -> Optional[Dict[str, Any]]:
    """One part's weights by Keras 2 short name, or None when its class is not converted."""
    if cls not in _PLAIN:
        return None
    if cls in _GATES and set(short) != {"W", "U", "b"}:  # consume_less="gpu": fused, Keras 2's order
        return _gates(cls, short, cfg.get("dim_ordering") == "th")
    if any(name not in _RENAMES for name in short):
        return None
    out = {("embeddings" if cls == "Embedding" and name == "W" else _RENAMES[name]): value
           for name, value in short.items()}
    if "kernel" in out and cls.startswith(("Convolution", "AtrousConvolution", "Deconvolution")):
        out["kernel"] = _conv_kernel(cls, out["kernel"], cfg)
    if cls == "SeparableConvolution2D" and cfg.get("dim_ordering") == "th":  # (mult, in, r, c), (out, in*mult, 1, 1)
        out.update({k: _transpose(out[k], (2, 3, 1, 0)) for k in ("depthwise_kernel", "pointwise_kernel") if k in out})
    return out


def _entries(config: Any) -> dict[str, tuple[str, MappingT[str, Any]]]:
    """Layer name -> (class, config) of every layer a Keras 1 config lists, also inside a ``Merge``'s
    branches (a Keras 1 Sequential keeps their weights as its own layers'). A nested Keras 1
    Sequential's config is a bare list, its name on the entry: it comes back as ``{"layers": [...]}``."""
    cfg = config.get("config") if isinstance(config, Mapping) else None
    layers = cfg.get("layers") if isinstance(cfg, Mapping) else cfg
    out: dict[str, tuple[str, MappingT[str, Any]]] = {}
    for entry in layers if isinstance(layers, list) else []:
        if not isinstance(entry, Mapping):
            continue
        lcfg = entry.get("config")
        lcfg = {"layers": lcfg} if isinstance(lcfg, list) else lcfg
        name = entry.get("name") or (lcfg.get("name") if isinstance(lcfg, Mapping) else None)
        if isinstance(lcfg, Mapping) and isinstance(name, str):
            out[name] = (str(entry.get("class_name")), lcfg)
            if entry.get("class_name") == "Merge":
                for branch in lcfg.get("layers") or ():
                    out.update(_entries(branch) if isinstance(branch, Mapping) and branch.get("class_name")
                               in ("Sequential", "Model") else _entries({"config": [branch]}))
    return out


def _part_specs(lname: str, cls: str, cfg: MappingT[str, Any]) -> list[tuple[str, str, MappingT[str, Any], str]]:
    """(canonical prefix, class, config, Keras 1 name prefix) of each part of one layer converted
    alone: the layer itself, a Bidirectional's halves, a TimeDistributed's inner layer, a nested
    model's layers."""
    inner = cfg.get("layer")
    if cls in _WRAPPERS and isinstance(inner, Mapping) and isinstance(inner.get("config"), Mapping):
        name, inner_cls = str(inner["config"].get("name")), str(inner.get("class_name"))
        if cls == "TimeDistributed":
            return [(lname, inner_cls, inner["config"], name)]
        return [(f"{lname}/{side}_{name}", inner_cls, inner["config"], f"{side}_{name}")
                for side in ("forward", "backward")]
    nested = _entries({"config": cfg}) if cls in ("Sequential", "Model") else {}
    if nested:
        return [(f"{lname}/{name}", c, conf, name) for name, (c, conf) in nested.items()]
    return [(lname, cls, cfg, lname)]


def _parts(lname: str, cls: str, cfg: MappingT[str, Any], infos: list[Any]) -> list[_Part]:
    """The parts of one layer with their weights: each weight goes to the part whose Keras 1 name
    prefix is the longest its own name starts with (``fc_out_W`` to ``fc_out``, not ``fc``)."""
    specs = _part_specs(lname, cls, cfg)
    owner = {}
    for w in infos:
        olds = [old for _, _, _, old in specs if _leaf(w.raw).startswith(f"{old}_")]
        if olds:
            owner[w.canonical] = max(olds, key=len)
    return [(prefix, part_cls, part_cfg, [w.canonical for w in infos if owner.get(w.canonical) == old], old)
            for prefix, part_cls, part_cfg, old in specs]


def _short(names: list[str], values: Mapping[str, Any], leaves: Mapping[str, str], old: str) -> Dict[str, Any]:
    return {leaves[n][len(old) + 1:]: values[n] for n in names}


def _data(value: Any) -> Any:
    """A value to convert: placeholders and lazy tensors stay as they are (read only where a
    conversion computes with the data)."""
    return value if isinstance(value, TensorHeader) else np.asarray(value)


def _move_slots(old_slots: dict[str, dict[str, Any]], slots: dict[str, dict[str, Any]], arrays: Mapping[str, Any],
                part: _Part, leaves: Mapping[str, str], frozen: frozenset) -> None:
    """Convert one part's slots kind by kind, as its weights. Only non-trainable tensors (``frozen``:
    a BatchNormalization's moving statistics) may lack the kind, and only where each tensor
    converts alone (not gate tensors); else, or with a slot of another shape, the kind stays under
    the old names (the matching reports it)."""
    prefix, cls, cfg, names, old = part
    for kind in sorted({k for n in names for k in old_slots.get(n, {})}):
        having = [n for n in names if kind in old_slots.get(n, {})]
        lacking = [n for n in names if n not in having]
        if any(np.shape(old_slots[n][kind]) != np.shape(arrays[n]) for n in having) or \
                (lacking and (cls in _GATES or any(n not in frozen for n in lacking))):
            continue
        moved = _convert(cls, _short(having, {n: _data(old_slots[n][kind]) for n in having}, leaves, old), cfg)
        if moved is None:
            continue
        for name, value in moved.items():
            slots.setdefault(f"{prefix}/{name}", {})[kind] = value
        for n in having:
            old_slots[n].pop(kind)


def to_keras2(layers: list[tuple[str, list[Any]]], arrays: dict[str, Any], optimizer: Any, model_config: Any,
              path: Path) -> tuple[dict[str, Any], Any]:
    """``arrays`` and the optimizer's slots of a Keras 1 file under Keras 2's names and shapes."""
    entries = _entries(model_config)
    leaves = {w.canonical: _leaf(w.raw) for _, infos in layers for w in infos}
    frozen = frozenset(w.canonical for _, infos in layers for w in infos if not w.trainable)
    old_slots = {n: dict(per) for n, per in optimizer.slots.items()} if optimizer is not None else {}
    out: dict[str, Any] = {}
    slots: dict[str, dict[str, Any]] = {}
    consumed: set[str] = set()
    kept = []
    for lname, infos in layers:
        cls, cfg = entries.get(lname, ("", {}))
        for part in _parts(lname, cls, cfg, infos):
            prefix, part_cls, part_cfg, names, old = part
            # decided from the class and the names before any data is read: None reads nothing
            converted = _convert(part_cls, _short(names, {n: _data(arrays[n]) for n in names}, leaves, old), part_cfg)
            if not names or converted is None:
                continue
            out.update({f"{prefix}/{k}": v for k, v in converted.items()})
            consumed.update(names)
            _move_slots(old_slots, slots, arrays, part, leaves, frozen)
        if any(w.canonical not in consumed for w in infos):
            kept.append(lname)
    out.update({n: a for n, a in arrays.items() if n not in consumed})
    if kept and model_config is None:  # resume(path, model=...) converts them (resuming/keras1_pairing.py)
        log.info("%s: Keras 1 weights of %s kept under their own names (a weights-only file records no "
                    "layer classes: resume(path, model=...) converts them through the model's layers)",
                    path, ", ".join(kept))
    elif kept:
        log.warning("%s: Keras 1 weights of %s kept under their own names (no conversion for their class)",
                    path, ", ".join(kept))
    log.info("%s: Keras 1 weights converted to Keras 2's names and shapes", path)
    if optimizer is not None:
        slots.update({n: per for n, per in old_slots.items() if per})
        optimizer = dataclasses.replace(optimizer, slots=slots, iterations=_step_count(optimizer, path))
    return out, optimizer


def _step_count(optimizer: Any, path: Path) -> Optional[int]:
    """The optimizer's step count; None for a Keras 1 SGD without decay, whose counter stays 0
    (Keras 1 advances it only to decay the rate): 0 there says nothing about the steps taken."""
    from ckptcompat.names.lr_decay import saved_decay

    decay = saved_decay(optimizer.class_name, optimizer.config, optimizer.hyperparameters)
    if optimizer.class_name == "SGD" and optimizer.iterations == 0 and not decay:
        log.warning("%s: a Keras 1 SGD without decay never advances its step counter; the file's 0 is not the "
                    "number of steps taken (iterations unknown)", path)
        return None
    return optimizer.iterations
