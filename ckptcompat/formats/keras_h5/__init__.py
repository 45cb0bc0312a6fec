"""Legacy Keras HDF5 (``model.save("x.h5")`` / ``save_weights("x.h5")``), every generation.

Reads full-model and weights-only files written by Keras 1.x, standalone Keras 2.x, tf.keras,
tf-keras and Keras 3 (which still writes this legacy layout for ``.h5``) with h5py + numpy
only. Writing (tf.keras 2.12-2.15 / tf-keras layout) lives in :mod:`._h5_write`.
Keras 3 ``.weights.h5`` files (groups ``layers``/``vars``) belong to ``keras_zip``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat import _bounded
from ckptcompat._lazy import require
from ckptcompat.errors import (CheckpointNotFoundError, CkptCompatError, CorruptCheckpointError,
                               UnsupportedFormatError)
from ckptcompat.formats import Peek, WrittenFiles
from ckptcompat.formats._h5heap import open_checked
from ckptcompat.formats._h5safe import hard_child, read_numeric
from ckptcompat.formats.keras_h5._keras1_weights import (holds_keras1_names, is_keras1_file, keras1_weight_prefix,
                                                         to_keras2)
from ckptcompat.formats.keras_h5._layer_configs import inner_names as _inner_names
from ckptcompat.formats.keras_h5._layer_configs import layer_chains as _layer_chains
from ckptcompat.formats.keras_h5._layer_configs import layer_configs as _layer_configs
from ckptcompat.formats.keras_h5._layer_configs import path_chain
from ckptcompat.formats.keras_h5._layer_configs import trainable as _trainable
from ckptcompat.formats.keras_h5._layer_configs import with_inner_path as _with_inner_path
from ckptcompat.formats.keras_h5._optimizer import WeightInfo, canonical_hyperparameters, match_slots
from ckptcompat.names.variables import LOSS_SCALE_CONFIG, canonical_optimizer_class, distinct_paths, strip_tensor_suffix
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState

__all__ = ["NAME", "name", "sniff", "peek", "read", "write", "files", "HDF5_SIGNATURE", "ATTR_EPOCH", "ATTR_STEP",
           "ATTR_GLOBAL_STEP", "layer_table", "canonical_from_raw", "keras1_weight_prefix",
           "holds_keras1_names"]

log = logging.getLogger(__name__)

NAME = "keras_h5"
name = NAME  # the Format protocol's attribute
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ATTR_EPOCH, ATTR_STEP, ATTR_GLOBAL_STEP = "ckptcompat_epoch", "ckptcompat_step", "ckptcompat_global_step"
_HINT = "the file may be truncated or damaged; use an earlier checkpoint or re-save it"
_CELL = re.compile(r"(^|_)cell(_\d+)?$")



def _has_signature(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            for offset in (0, 512, 1024, 2048):  # HDF5 allows a user block before the superblock
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an HDF5 file with legacy Keras markers; never raises."""
    try:
        p = Path(path)
        if not p.is_file() or not _has_signature(p):
            return False
        h5py = require("h5py")
        with h5py.File(p, "r") as f:
            if "layers" in f and "vars" in f and "layer_names" not in f.attrs:
                return False  # Keras 3 .weights.h5
            return "model_weights" in f or "layer_names" in f.attrs or "layer_names0" in f.attrs
    except Exception:  # noqa: BLE001 - sniff must never raise
        return False


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _attr_list(group: Any, name: str) -> list[str] | None:
    """A string-list attribute, joined back when Keras split it into ``name0``, ``name1``..."""
    if name in group.attrs:
        return [_text(v) for v in np.asarray(group.attrs[name]).reshape(-1)]
    if f"{name}0" not in group.attrs:
        return None
    out: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out += [_text(v) for v in np.asarray(group.attrs[f"{name}{i}"]).reshape(-1)]
        i += 1
    return out


def _json_attr(f: Any, name: str, path: Path) -> dict[str, Any] | None:
    if name not in f.attrs:
        return None
    try:
        text = _text(f.attrs[name])
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise CorruptCheckpointError(f"root attribute {name!r} is not text", path=path,
                                     hint=_HINT) from exc
    value = _bounded.loads(text, path=path, what=f"root attribute {name!r}")
    return value if isinstance(value, dict) else None


def _dataset(group: Any, name: str, limit: int, path: Path) -> np.ndarray:
    """A weight or slot: hard links only, numeric dtype, size within the file (see _h5safe)."""
    return read_numeric(group, name, path, f"dataset {group.name}/{name}", max_bytes=limit, hint=_HINT)


def canonical_from_raw(layer: str, raw: str, nested: dict[str, Any] | None = None) -> str:
    """Canonical weight name for raw weight ``raw`` of top-level layer ``layer``: recurrent cell
    scopes left out (``lstm/lstm_cell/kernel`` -> ``lstm/kernel``), but not the models and layers
    of ``nested`` (the layer's nested-model table) on the weight's way down, whatever their names."""
    parts = strip_tensor_suffix(raw).split("/")
    heads = parts[:-1]
    if layer in heads:
        parts = parts[len(heads) - 1 - heads[::-1].index(layer):]
    else:
        parts = [layer, *parts]
    chain = path_chain(parts[1:], nested) if nested and parts[1:2] and parts[1] in nested else None
    placed = 1 + len(chain or ())  # the layer, then the nested models and layer the weight sits in
    keep = [p for i, p in enumerate(parts) if i < placed or i == len(parts) - 1 or not _CELL.search(p)]
    return "/".join(keep)


def _tf_layers_scopes(f: Any) -> bool:
    """tf.keras 2.0.x/2.1.x-tf (TF 1.4-1.8) built Keras layers on ``tf.layers``: a layer named
    ``dense_1`` stores its variables as ``dense/kernel:0`` (scope counters of their own)."""
    version = f.attrs.get("keras_version", "")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else str(version)
    return version.endswith("-tf") and version.startswith(("2.0.", "2.1."))


def _layer_names(layer: str, raws: list[str], own_scopes: bool, cls: str = "",
                 nested: dict[str, Any] | None = None) -> list[str]:
    """Canonical names of one layer's weights: cell scopes dropped (``lstm/lstm_cell/kernel`` ->
    ``lstm/kernel``), unless that makes two names equal (``StackedRNNCells``: every cell holds a
    ``kernel``) or the layer is a wrapper the live walk names through (``TimeDistributed``:
    ``td/dense/kernel`` -> ``td/kernel``); then, as the live walk names them, each weight keeps
    the path through the sub-layers that tells it apart (``rnn/stacked_rnn_cells/cell_2/kernel``)."""
    names = []
    for raw in raws:
        canonical = canonical_from_raw(layer, raw, nested)
        if own_scopes and strip_tensor_suffix(raw).count("/") == 1:
            canonical = canonical_from_raw(layer, raw.rsplit("/", 1)[-1])  # dense_1 + dense/kernel:0
        names.append(canonical)
    if len(set(names)) == len(names) and cls not in ("TimeDistributed", "SpectralNormalization"):
        return names
    tails = []
    for raw in raws:
        parts = strip_tensor_suffix(raw).split("/")
        heads = parts[:-1]
        tails.append(parts[len(heads) - heads[::-1].index(layer):] if layer in heads else parts)
    return [f"{layer}/{rel}" for rel in distinct_paths(tails)]


def _named_after_layers(raws: list[str], layers: list[str]) -> bool:
    """Whether weights are named the Keras 1 way, after their layer (``dense_2_W``)."""
    heads = tuple(f"{name}_" for name in set(layers))
    return any(strip_tensor_suffix(raw).startswith(heads) for raw in raws)


def layer_table(f: Any, model_config: Any, path: Path, limit: int
                ) -> tuple[list[tuple[str, list[WeightInfo]]], dict[str, np.ndarray]]:
    """Layers in file order with their weights; plus the arrays by canonical name."""
    group = hard_child(f, "model_weights", path, "group /model_weights", _HINT) if "model_weights" in f else f
    names = _attr_list(group, "layer_names")
    if names is None:
        raise CorruptCheckpointError("no 'layer_names' attribute in the weights group", path=path,
                                     hint=_HINT)
    table = _layer_configs(model_config) if model_config else {}
    layers: list[tuple[str, list[WeightInfo]]] = []
    nested_names = {name: _inner_names(entry[2]) for name, entry in table.items() if entry[2]}
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else ""
    keras1 = not version or version.startswith("1.")
    own_scopes = _tf_layers_scopes(f)
    arrays: dict[str, np.ndarray] = {}
    for lname in names:
        if lname not in group:
            raise CorruptCheckpointError(f"layer group {lname!r} is listed but missing", path=path, hint=_HINT)
        lgroup = hard_child(group, lname, path, f"layer group {lname!r}", _HINT)
        infos: list[WeightInfo] = []
        raws = _attr_list(lgroup, "weight_names") or []
        values = [_dataset(lgroup, raw, limit, path) for raw in raws]
        inner = nested_names.get(lname)
        if inner and len(inner) == len(raws) and not (keras1 and _named_after_layers(raws, inner)):
            # Keras 3.0.x wrote nested weights without the layer name (Keras 1 named each after it)
            raws = [raw if "/" in strip_tensor_suffix(raw) else f"{inner[i]}/{raw}" for i, raw in enumerate(raws)]
        cls, _, nested = table.get(lname, ("", True, {}))
        chains = _layer_chains(nested) if nested else {}
        deep = [_with_inner_path(lname, raw, chains) for raw in raws] if nested else raws  # two models deep
        canonicals = _layer_names(lname, deep, own_scopes and not nested, cls, nested)
        for raw, value, canonical, deep_raw in zip(raws, values, canonicals, deep):
            if canonical in arrays:
                raise CorruptCheckpointError(f"two weights map to the name {canonical!r}", path=path,
                                             hint="the layer names in the file are not unique")
            arrays[canonical] = value
            infos.append(WeightInfo(canonical, strip_tensor_suffix(raw), tuple(value.shape),
                                    _trainable(lname, deep_raw, table)))
        layers.append((lname, infos))
    if "top_level_model_weights" in group:
        top = hard_child(group, "top_level_model_weights", path, "group top_level_model_weights", _HINT)
        infos = []
        for raw in _attr_list(top, "weight_names") or []:
            value = _dataset(top, raw, limit, path)
            arrays[strip_tensor_suffix(raw)] = value
            infos.append(WeightInfo(strip_tensor_suffix(raw), strip_tensor_suffix(raw),
                                    tuple(value.shape), True))
        layers.append(("", infos))
    return layers, arrays


def _producer(f: Any, path: Path) -> Producer:
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else ""
    versions = {"keras": version} if version else {}
    if "backend" in f.attrs:
        versions["backend"] = _text(f.attrs["backend"])
    nums = [int(n) for n in re.findall(r"\d+", version)[:2]] or [0, 0]
    nums += [0] * (2 - len(nums))
    if version.endswith("-tf") or (nums[0] == 2 and 4 <= nums[1] <= 15):
        framework = "tf.keras"
    elif nums[0] == 2 and nums[1] >= 16:
        framework = "tf-keras"
    else:
        framework = "keras"
    return Producer(framework=framework, versions=versions, format=NAME, path=str(path))


def _optimizer(f: Any, training_config: dict[str, Any] | None, layers: list[tuple[str, list[WeightInfo]]],
               path: Path, limit: int) -> OptimizerState | None:
    opt_cfg = (training_config or {}).get("optimizer_config")
    inner = (opt_cfg.get("config") or {}).get("inner_optimizer") if isinstance(opt_cfg, dict) else None
    wrapper: dict[str, Any] = {}
    if isinstance(inner, dict):  # a LossScaleOptimizer (mixed precision, TF 2.4-2.15, tf-keras: V2 or V3)
        log.info("%s: LossScaleOptimizer around %s; a Keras 2 .h5 keeps its settings but not its scale "
                 "(a resumed wrapper starts afresh, as with load_model)", path, inner.get("class_name"))
        outer = opt_cfg.get("config") or {}
        wrapper = {LOSS_SCALE_CONFIG + "dynamic": np.asarray(bool(outer.get("dynamic", True)))}
        for key in ("initial_scale", "dynamic_growth_steps"):
            if isinstance(outer.get(key), (int, float)) and not isinstance(outer.get(key), bool):
                wrapper[LOSS_SCALE_CONFIG + key] = np.asarray(outer[key])
        opt_cfg = inner
    group = (hard_child(f, "optimizer_weights", path, "group /optimizer_weights", _HINT)
             if "optimizer_weights" in f else None)
    if not isinstance(opt_cfg, dict) and group is None:
        return None
    raw_class = str(opt_cfg.get("class_name", "")) if isinstance(opt_cfg, dict) else ""
    config = opt_cfg.get("config") if isinstance(opt_cfg, dict) and isinstance(opt_cfg.get("config"), dict) else {}
    names = (_attr_list(group, "weight_names") or []) if group is not None else []
    values = [_dataset(group, n, limit, path) for n in names]
    if not raw_class and names:
        raw_class = names[0].split("/")[0] if "/" in names[0] else ""
    cls = canonical_optimizer_class(raw_class) if raw_class else "unknown"
    weights = [w for _, infos in layers for w in infos]
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else "1"
    nums = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    iterations, slots, extra = match_slots(cls, names, values, weights, str(path),
                                           sorted_params=nums < (2, 0, 6))
    return OptimizerState(class_name=cls, hyperparameters=canonical_hyperparameters(config),
                          iterations=iterations, slots=slots, config=opt_cfg, extra={**extra, **wrapper})


def _progress(f: Any) -> Progress:
    """Legacy .h5 stores no epoch/step; only ckptcompat's own root attributes give them."""
    def get(name: str) -> int | None:
        return int(f.attrs[name]) if name in f.attrs else None
    return Progress(epoch=get(ATTR_EPOCH), step=get(ATTR_STEP), global_step=get(ATTR_GLOBAL_STEP))


def read(path: str | os.PathLike[str], *, include_optimizer: bool = True, config: Any = None) -> TrainingState:
    """Read a legacy Keras ``.h5`` (full model or weights only) into a :class:`TrainingState`.

    ``config``: for a file that records no model config (``save_weights``), the model config it
    was written from: it says where a nested model's weights belong, and a Keras 1 file's weights
    are converted by its classes (the returned state still records no config)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError("no such file", path=p, hint="check the path")
    size = p.stat().st_size
    if size == 0:
        raise CorruptCheckpointError("the file is empty (0 bytes)", path=p, hint=_HINT)
    if not _has_signature(p):
        raise UnsupportedFormatError("not an HDF5 file (no HDF5 signature)", path=p,
                                     hint="legacy Keras .h5 files start with the HDF5 signature; "
                                          "check the file type or whether it was truncated at the start")
    require("h5py", "read legacy Keras .h5 files")
    try:
        f = open_checked(p, p)  # global heaps checked before any text attribute is read
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"HDF5 library cannot open the file ({exc})", path=p, hint=_HINT) from exc
    from ckptcompat.formats._headers import keep_open

    try:
        try:
            return _read_open(f, p, size + (1 << 20), include_optimizer, config)
        finally:
            if not keep_open(f):  # a lazy read keeps the file open for its LazyTensors
                f.close()
    except CkptCompatError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, OverflowError) as exc:
        raise CorruptCheckpointError(f"cannot read the HDF5 contents ({type(exc).__name__}: {exc})",
                                     path=p, hint=_HINT) from exc


def _read_open(f: Any, p: Path, limit: int, include_optimizer: bool, config: Any = None) -> TrainingState:
    if "layers" in f and "vars" in f and "layer_names" not in f.attrs:
        raise UnsupportedFormatError("this is a Keras 3 .weights.h5 file, not a legacy Keras HDF5 file",
                                     path=p, hint="read it with format 'keras_zip'")
    if "model_weights" not in f and "layer_names" not in f.attrs and "layer_names0" not in f.attrs:
        raise UnsupportedFormatError("HDF5 file without Keras markers (no 'model_weights' group, "
                                     "no 'layer_names' attribute)", path=p,
                                     hint="only files written by Keras model.save / save_weights "
                                          "to .h5 are readable as keras_h5")
    model_config = _json_attr(f, "model_config", p)
    training_config = _json_attr(f, "training_config", p)
    layers, arrays = layer_table(f, model_config if model_config is not None else config, p, limit)
    arrays = _without_derived_idf(arrays, model_config, p)
    optimizer = _optimizer(f, training_config, layers, p, limit) if include_optimizer else None
    if is_keras1_file(_text(f.attrs["keras_version"]) if "keras_version" in f.attrs else "", layers):
        arrays, optimizer = to_keras2(layers, arrays, optimizer,
                                      model_config if model_config is not None else config, p)
    return TrainingState(weights=arrays, optimizer=optimizer, progress=_progress(f),
                         producer=_producer(f, p), model_config=model_config,
                         training_config=training_config)


def _without_derived_idf(arrays: dict[str, Any], model_config: Any, p: Path) -> dict[str, Any]:
    """``arrays`` without a tf_idf lookup layer's idf weight where the layer's config carries its
    vocabulary and idf weights (:mod:`ckptcompat.formats._lookup_idf`)."""
    if not isinstance(model_config, dict):
        return arrays
    from ckptcompat.formats._lookup_idf import derived_lookup_weights
    from ckptcompat.resuming.layer_paths import config_entries

    derived = derived_lookup_weights(config_entries(model_config), arrays, str(p))
    if derived:
        log.info("%s: lookup layers' idf weights left out (built from their config): %s", p, ", ".join(derived))
    return {n: a for n, a in arrays.items() if n not in derived}


def write(path: str | os.PathLike[str], state: TrainingState, **options: Any) -> WrittenFiles:
    """Write ``state`` as a legacy ``.h5`` that tf.keras 2.12-2.15 / tf-keras load (see ``_write``).

    Returns ``[path]``; with ``checksum=True`` its ``digests[path]`` is the file's
    ``(size, sha256)``, hashed while writing."""
    from ckptcompat.formats.keras_h5._write import write_h5

    p = Path(path)
    digest = write_h5(p, state, **options)
    return WrittenFiles([p], {p: digest} if digest is not None else None)


def peek(path: str | os.PathLike[str]) -> Peek:
    """Epoch/step attributes, producer, optimizer class/iterations and the dataset table."""
    from ckptcompat.formats.keras_h5._peek import peek_h5

    return peek_h5(Path(path), NAME)


def files(path: str | os.PathLike[str]) -> list[Path]:
    """``[path]`` when it exists (a legacy ``.h5`` is one file), else ``[]``."""
    p = Path(path)
    return [p] if p.exists() or p.is_symlink() else []
