"""Write a :class:`TrainingState` as a legacy Keras ``.h5`` for tf.keras 2.12-2.15 / tf-keras.

Full model when the state carries a model config (Keras 3 configs are downgraded), else
weights only. Optimizer weights are written in the order the target's (TF 2.11+ "new")
optimizer creates its variables, because those versions restore them by position; an
OptimizerV2 optimizer's (tf.keras <= 2.10, ``optimizers.legacy``) as its own releases write it
(:mod:`._optimizer_v2`), which they load themselves.
Written through :mod:`ckptcompat._atomic` (temp file beside the target, fsync, rename, fsync
the folder), read back and compared before the rename (the checkpoint store, which checksums
and fsyncs its files itself, skips the read-back and the fsyncs).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._arrays import same_values
from ckptcompat._atomic import atomic_path
from ckptcompat._lazy import require
from ckptcompat.errors import (CorruptCheckpointError, IncompatibleStateError,
                               UnsupportedFormatError)
from ckptcompat.formats import keras_h5 as _h5
from ckptcompat.formats._frozen import frozen_slot_variables
from ckptcompat.formats._lookup_idf import TF_KERAS_IDF_NAME, idf_array
from ckptcompat.formats.keras_h5._layer_configs import layer_order, place
from ckptcompat.formats.keras_h5._optimizer import WeightInfo, new_optimizer_layout
from ckptcompat.formats.keras_h5._optimizer_v2 import optimizer_v2_payload
from ckptcompat.names.lr_decay import decay_on_schedule, schedule_as_rate
from ckptcompat.names.config_downgrade import (downgrade_model_config, downgrade_optimizer_config,
                                               downgrade_training_config, dropped_optimizer_keys)
from ckptcompat.names.optimizer_layouts import is_optimizer_v2_config, refuse_unordered, slot_shape
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import TrainingState

__all__ = ["write_h5", "TARGETS"]

log = logging.getLogger(__name__)

#: target name -> keras_version written into the file.
TARGETS: dict[str, str] = {
    "tf.keras-2.12": "2.12.0", "tf.keras-2.13": "2.13.1", "tf.keras-2.14": "2.14.0",
    "tf.keras-2.15": "2.15.0", "tf-keras-2.16": "2.16.0", "tf-keras-2.21": "2.21.0",
}
_ATTR_LIMIT = 64000  # HDF5 object header limit for attributes (64 KB)


def _save_names(group: Any, name: str, values: list[str]) -> None:
    """Store a string list attribute, split into ``name0``, ``name1``... when over 64 KB."""
    data = np.array([v.encode("utf-8") for v in values])
    if not values:
        group.attrs[name] = np.array([], dtype="S1")
        return
    chunks = max(1, -(-data.nbytes // _ATTR_LIMIT))
    if chunks == 1:
        group.attrs[name] = data
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = part


def _layer_order(state: TrainingState, config: dict[str, Any] | None) -> list[str]:
    names = list(_h5._layer_configs(config)) if config else []
    for canonical in state.weights:
        head = canonical.split("/", 1)[0]
        if head not in names:
            if config:
                raise IncompatibleStateError("weights do not fit the model config",
                                             [f"{canonical}: no layer {head!r} in the model config"],
                                             hint="pass a state whose model_config matches its weights")
            names.append(head)
    return names


def _check_optimizer(opt: Any, cls: str, path: Path) -> None:
    """Refuse variables kept by position that fit several configurations; say that a
    mixed-precision loss-scale state is left out (tf.keras's own ``.h5`` save of a
    LossScaleOptimizer fails; the inner optimizer is written)."""
    refuse_unordered(opt, path)
    scale = sorted(k for k in opt.extra if k.startswith("loss_scale/"))
    if scale:
        log.warning("%s: the mixed-precision loss-scale state (%s) is not written to the .h5, which holds the "
                    "inner %s; a .keras file or a ckptcompat store keeps it", path, ", ".join(scale), cls)


def _optimizer_payload(state: TrainingState, infos: list[WeightInfo], path: Path
                       ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]] | None:
    opt = state.optimizer
    if opt is None:
        return None
    cls = canonical_optimizer_class(opt.class_name)
    _check_optimizer(opt, cls, path)
    own = opt.keras_config().get("config") or {}
    # OptimizerV2 writes learning_rate; standalone Keras and tf.keras before it (TF <= 1.13) lr
    if state.producer.framework != "keras" and "lr" not in own and is_optimizer_v2_config(own, opt.hyperparameters):
        cfg, values, problems = optimizer_v2_payload(opt, infos, path)  # as its own release writes it
        if problems:
            raise IncompatibleStateError("optimizer slots do not fit the OptimizerV2 layout", problems, path=path,
                                         hint="check the optimizer class/config, or write without the "
                                              "optimizer (include_optimizer=False)")
        return cfg, values
    base = opt.keras_config()
    inner = dict(base.get("config") or {})
    inner.update(opt.hyperparameters)  # the state's hyper-parameters win over the stored config
    base = {"class_name": cls, "config": schedule_as_rate(inner)}
    lost = decay_on_schedule(cls, base["config"])
    if lost:
        base["config"].pop("decay")
        log.warning("%s: %s's decay=%s on top of a learning-rate schedule has no tf.keras 2.11+ equivalent: the "
                    "file's optimizer config holds the schedule alone (a ckptcompat store keeps decay in "
                    "state.json)", path, cls, lost)
    dropped = dropped_optimizer_keys(base)
    if dropped:
        log.info("%s: optimizer keys unknown to Keras 2 dropped: %s", path, ", ".join(dropped))
    try:
        cfg = downgrade_optimizer_config(base)
    except ValueError as exc:
        raise UnsupportedFormatError(str(exc), path=path, hint="write without the optimizer "
                                     "(include_optimizer=False)") from exc
    trainable = [w for w in infos if w.trainable]
    layout = new_optimizer_layout(cls, cfg["config"], trainable)
    iterations = int(opt.iterations or 0)
    values: list[tuple[str, np.ndarray]] = [("iteration:0", np.array(iterations, dtype=np.int64))]
    if not opt.slots and iterations == 0:
        return cfg, values  # fresh optimizer: its step alone, as tf-keras writes one compiled, never trained
    problems: list[str] = []
    slots = _translated_slots(cls, opt, cfg["config"], layout, iterations)
    for w, slot, raw in layout:
        value = slots.get(w.canonical, {}).get(slot)
        if value is None:
            problems.append(f"{w.canonical}: no {slot!r} slot in the state")
        elif tuple(np.shape(value)) != slot_shape(cls, slot, w.shape):
            problems.append(f"{w.canonical}/{slot}: shape {np.shape(value)} != {slot_shape(cls, slot, w.shape)} "
                            f"(weight {w.shape})")
        else:
            values.append((f"{cfg['config'].get('name', cls)}/{raw}/{w.canonical}:0", np.asarray(value)))
    placed = {(w.canonical, s) for w, s, _ in layout}
    extra = [f"{v}/{s}: slot the target optimizer does not have"
             for v, per in slots.items() for s in per if (v, s) not in placed]
    if problems or extra:
        raise IncompatibleStateError("optimizer slots do not fit the target optimizer",
                                     problems + extra, path=path,
                                     hint="check the optimizer class/config, or write without the "
                                          "optimizer (include_optimizer=False)")
    return cfg, values


def _translated_slots(cls: str, opt: Any, target_cfg: Any, layout: Any, iterations: int
                      ) -> dict[str, dict[str, np.ndarray]]:
    """The state's slots made to fit the target layout by meaning (inert / all-zero = absent)."""
    from ckptcompat.names.slot_meaning import translate_slots

    src_cfg = opt.config.get("config", opt.config) if isinstance(opt.config, dict) else {}
    result = translate_slots(cls, {**src_cfg, **opt.hyperparameters}, target_cfg,
                             {f"{v}/{s}": val for v, per in opt.slots.items() for s, val in per.items()},
                             {f"{w.canonical}/{slot}": w.shape for w, slot, _ in layout}, iterations)
    for note in result.dropped + result.created:
        log.info("optimizer slot translated by meaning: %s", note)
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in result.slots.items():
        var, slot = key.rsplit("/", 1)
        out.setdefault(var, {})[slot] = value
    return out


def _load_order(items: list[tuple[str, np.ndarray]], nested: bool, trainable: set[str]
                ) -> list[tuple[str, np.ndarray]]:
    """A layer group's weights in the order tf.keras sets them by position: a nested model's trainable
    ones first (its frozen layers' and statistics after them all); a single layer's as they are."""
    return sorted(items, key=lambda item: item[0][:-2] not in trainable) if nested else list(items)


def _grouped(state: TrainingState, layers: list[str], table: dict[str, Any]
             ) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Each layer group's ``(raw name, value)`` pairs; a nested model's in model order, depth first,
    as tf.keras lists them."""
    grouped: dict[str, list[tuple[str, np.ndarray]]] = {name: [] for name in layers}
    for canonical, value in state.weights.items():
        grouped[canonical.split("/", 1)[0]].append((f"{canonical}:0", np.asarray(value)))
    order = layer_order(table)
    for name in layers:
        if table.get(name, ("", True, {}))[2]:
            grouped[name].sort(key=lambda item: place(item[0][:-2], order))
    return grouped


def _write_file(tmp: Path, state: TrainingState, config: dict[str, Any] | None, version: str,
                include_optimizer: bool, path: Path, direct: Any = None) -> None:
    h5py = require("h5py", "write legacy Keras .h5 files")

    def put(group: Any, name: str, value: np.ndarray) -> None:
        if direct is None:
            group.create_dataset(name, data=value)
        else:
            direct.put(group, name, value)

    layers = _layer_order(state, config)
    table = _h5._layer_configs(config) if config else {}
    grouped = _grouped(state, layers, table)
    infos: list[WeightInfo] = []
    trainable = {raw[:-2] for name in layers for raw, _ in grouped[name] if _h5._trainable(name, raw, table)}
    # layers frozen after the optimizer was built: their slots are laid out where Keras had them
    built = set(frozen_slot_variables(state.optimizer.slots, state.weights, trainable)) \
        if state.optimizer is not None and config and include_optimizer else set()
    for name in layers:
        for raw, value in grouped[name]:
            infos.append(WeightInfo(raw[:-2], raw[:-2], tuple(value.shape), raw[:-2] in (trainable | built)))
    payload = _optimizer_payload(state, infos, path) if include_optimizer and config else None
    for name, value in _idf_weights(config):  # not the optimizer's: tf-keras's loader sets them by position
        if not grouped.get(name):  # a state read with the layer's own weight keeps that one
            grouped.setdefault(name, []).append((f"{TF_KERAS_IDF_NAME}:0", value))
    with h5py.File(tmp, "w") as f:
        f.attrs["keras_version"] = version.encode()
        f.attrs["backend"] = b"tensorflow"
        for attr, value in ((_h5.ATTR_EPOCH, state.progress.epoch), (_h5.ATTR_STEP, state.progress.step),
                            (_h5.ATTR_GLOBAL_STEP, state.progress.global_step)):
            if value is not None:
                f.attrs[attr] = np.int64(value)
        if config:
            f.attrs["model_config"] = json.dumps(config).encode("utf-8")
            training = downgrade_training_config(state.training_config or {})
            if payload is not None:
                training["optimizer_config"] = payload[0]
            if state.training_config or payload is not None:
                f.attrs["training_config"] = json.dumps(training).encode("utf-8")
            group = f.create_group("model_weights")
            group.attrs["keras_version"] = version.encode()
            group.attrs["backend"] = b"tensorflow"
        else:
            group = f
        _save_names(group, "layer_names", layers)
        for name in layers:
            lgroup = group.create_group(name)
            ordered = _load_order(grouped[name], bool(table.get(name, ("", True, {}))[2]), trainable)
            _save_names(lgroup, "weight_names", [raw for raw, _ in ordered])
            for raw, value in ordered:
                put(lgroup, raw, value)
        if payload is not None and payload[1]:
            ogroup = f.create_group("optimizer_weights")
            _save_names(ogroup, "weight_names", [n for n, _ in payload[1]])
            for n, value in payload[1]:
                put(ogroup, n, value)


def _idf_weights(config: dict[str, Any] | None) -> list[tuple[str, np.ndarray]]:
    """(layer name, idf array) of each top-level ``tf_idf`` lookup layer whose config carries its
    vocabulary: tf-keras's ``.h5`` loader sets that array as the layer's one weight."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    found = []
    for entry in layers if isinstance(layers, list) else []:
        cfg = entry.get("config") if isinstance(entry, dict) else None
        idf = idf_array(str(entry.get("class_name")), cfg) if isinstance(cfg, dict) else None
        if idf is not None and isinstance(cfg.get("name"), str):
            found.append((cfg["name"], idf))
    return found


def _write_h5py(*args: Any) -> None:
    """:func:`_write_file`, with HDF5's disk errors raised as :class:`OSError`
    (:func:`~ckptcompat.formats.keras_h5._direct.disk_errors_as_oserror`)."""
    from ckptcompat.formats.keras_h5._direct import disk_errors_as_oserror, ensure_room, state_bytes

    ensure_room(require("h5py", "write .h5 files"), args[0], *state_bytes(args[1].tensors()))
    with disk_errors_as_oserror():
        _write_file(*args)


def _verify(tmp: Path, state: TrainingState, include_optimizer: bool, path: Path) -> None:
    back = _h5.read(tmp)
    problems = []
    if set(back.weights) != set(state.weights):  # a nested model's order: trainable first, as Keras loads it
        problems.append(f"weight names differ: {sorted(set(back.weights) ^ set(state.weights))}")
    for name, value in state.weights.items():
        got = back.weights.get(name)
        if got is None or got.dtype != np.asarray(value).dtype or not same_values(got, value):
            problems.append(f"{name}: read back differs")
    if include_optimizer and state.optimizer is not None and back.optimizer is not None and back.optimizer.slots:
        for var, per in state.optimizer.slots.items():
            for slot, value in per.items():
                got = back.optimizer.slots.get(var, {}).get(slot)
                if got is None and not np.any(value):
                    continue  # dropped by meaning (inert, a placeholder): zero is the same as absent
                if got is None or not same_values(got, value):
                    problems.append(f"{var}/{slot}: read back differs")
        if int(back.optimizer.iterations or 0) != int(state.optimizer.iterations or 0):
            problems.append("iterations differ after read back")
    if problems:
        raise CorruptCheckpointError("written file does not read back equal: " + "; ".join(problems[:20]),
                                     path=path, hint="disk full or failing? nothing was replaced")


def write_h5(path: Path, state: TrainingState, *, target: str = "tf.keras-2.15",
             keras_version: str | None = None, include_optimizer: bool = True,
             verify: bool = True, durable: bool = True,
             checksum: bool = False) -> tuple[int, str] | None:
    """Write ``state`` to ``path`` atomically (see module doc); raise typed errors on misfit.

    ``verify=False`` skips the read-back comparison and ``durable=False`` the fsyncs: for
    callers that checksum and fsync the file themselves (the checkpoint store).
    ``checksum=True``: write the large tensors straight from their arrays while hashing the
    file (:mod:`._h5_direct`) and return its ``(size, sha256)``; else None.
    """
    if target not in TARGETS:
        raise UnsupportedFormatError(f"unknown target {target!r}", path=path,
                                     hint=f"use one of: {', '.join(TARGETS)}")
    version = keras_version or TARGETS[target]
    if re.match(r"^2\.(\d+)", version) and int(version.split(".")[1]) < 11:
        raise UnsupportedFormatError(f"keras_version {version} uses another optimizer layout", path=path,
                                     hint="only tf.keras 2.11+ / tf-keras layouts are written")
    config = downgrade_model_config(state.model_config) if state.model_config else None
    path.parent.mkdir(parents=True, exist_ok=True)
    result = None
    # the hashing writer fsyncs the file itself, overlapped with its sha256
    with atomic_path(path, durable=durable, synced=checksum) as tmp:
        if checksum:
            from ckptcompat.formats.keras_h5._direct import DirectDatasets

            direct = DirectDatasets(require("h5py", "write legacy Keras .h5 files"))
            _write_h5py(tmp, state, config, version, include_optimizer, path, direct)
            result = direct.finish(tmp, durable=durable)
        else:
            _write_h5py(tmp, state, config, version, include_optimizer, path)
        if verify:
            _verify(tmp, state, include_optimizer and config is not None, path)
    return result
