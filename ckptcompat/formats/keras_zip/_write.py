"""Write a TrainingState as a Keras 3 ``.keras`` archive or ``.weights.h5`` file, atomically."""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._arrays import same_values
from ckptcompat._compat import PackageNotFoundError, distribution_version
from ckptcompat._atomic import atomic_write
from ckptcompat.errors import IncompatibleStateError, UnsupportedFormatError
from ckptcompat.formats._frozen import built_with, frozen_slot_variables, thawed
from ckptcompat.formats._lookup_idf import idf_array
from ckptcompat.formats.keras_h5._direct import state_bytes
from ckptcompat.formats.keras_zip._layout import ALIAS, lora_factors, lora_frozen, var_specs, walk_model_config
from ckptcompat.formats.keras_zip._lora import (EXACT_ROOT, exact_arrays, exact_group, listed_layer_configs, lora_scale,
                                                merged, record_rank, refuse_undescribed)
from ckptcompat.formats.keras_zip._quantized import refuse_quantized
from ckptcompat.formats.keras_zip._optimizer import keras3_optimizer_config
from ckptcompat.formats.keras_zip._write_optimizer import keep, optimizer_arrays
from ckptcompat.names.config_upgrade import upgrade_model_config
from ckptcompat.names.configs.keras3_releases import for_keras3_release
from ckptcompat.names.variables import respell
from ckptcompat.state import TrainingState

__all__ = ["write_state", "DEFAULT_KERAS_VERSION"]


DEFAULT_KERAS_VERSION = "3.15.1"


def _target_version(option: str | None) -> str:
    if option:
        return option
    try:
        version = distribution_version("keras")
        if version.startswith("3."):
            return version
    except PackageNotFoundError:
        pass
    return DEFAULT_KERAS_VERSION


def _layer_arrays(state: TrainingState, model_cfg: Mapping[str, Any], path: Path
                  ) -> tuple[list[tuple[str, list[np.ndarray]]], list[tuple[str, tuple[int, ...]]]]:
    groups: list[tuple[str, list[np.ndarray]]] = []
    trainable: list[tuple[str, tuple[int, ...]]] = []
    problems: list[str] = []
    used: set[str] = set()
    listed = listed_layer_configs(model_cfg)
    for slot in walk_model_config(model_cfg):
        record_rank(slot, state.weights, listed)
        refuse_quantized(slot, state.weights, path)
        specs = var_specs(slot.class_name, slot.config)
        if specs is None:
            names = [n for n in state.weights if n.startswith(slot.prefix + "/")
                     and "/" not in n[len(slot.prefix) + 1:]]
            pairs = [(n, True) for n in names]
        else:
            pairs = [(f"{slot.prefix}/{s.name}", s.trainable) for s in specs]
        arrays = []
        for name, is_trainable in pairs:
            head, _, leaf = name.rpartition("/")
            if leaf.startswith(ALIAS):  # a variable stored a second time (SpectralNormalization)
                name, is_trainable = f"{head}/{leaf[len(ALIAS):]}", False
            name = respell(name, state.weights)
            if name not in state.weights:
                problems.append(f"missing weight {name} ({slot.class_name})")
                continue
            arrays.append(keep(state.weights[name]))
            used.add(name)
            if is_trainable and slot.trainable:
                trainable.append((name, tuple(arrays[-1].shape)))
        if arrays:
            groups.append((slot.h5_path + "/vars", arrays))
        groups += _idf_groups(slot)
        lora = exact_arrays(slot, {n.rpartition("/")[2]: n for n, _ in pairs if n in used}, state.weights)
        if lora is not None:  # the merged value in Keras's place, the exact ones beside
            exact, factors = lora
            scale = lora_scale(int(slot.config["lora_rank"]), slot.config.get("lora_alpha"))
            frozen = [n for n, _ in pairs].index(f"{slot.prefix}/{lora_frozen(slot.class_name)}")
            arrays[frozen] = merged(*(keep(x) for x in exact), scale)
            groups.append((exact_group(slot.h5_path), [keep(x) for x in exact]))
            used.update(n for n, _ in factors)
            trainable += factors if slot.trainable else []
        elif slot.trainable and arrays:  # a Keras-written LoRA layer: its optimizer trained the factors
            shapes = {n.rpartition("/")[2]: tuple(np.shape(state.weights[n])) for n, _ in pairs if n in used}
            factors = lora_factors(slot.class_name, slot.config, shapes)
            trainable += [(f"{slot.prefix}/{n}", shape) for n, shape in factors]
    problems += [f"unexpected weight {n} (not in the model config)" for n in state.weights if n not in used]
    refuse_undescribed([n for n in state.weights if n not in used], path)
    if problems:
        raise IncompatibleStateError("the weights do not fit the model config", problems, path=path,
                                     hint="the state's model_config must describe its weights")
    return groups, trainable


def _built_with(state: TrainingState, model_cfg: Mapping[str, Any], trainable: list[tuple[str, tuple[int, ...]]],
                path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """The variables the optimizer was built with: the trainable ones and, where the state holds
    slots of frozen layers' variables (frozen after it was built), those too, in model order."""
    assert state.optimizer is not None
    names = [n for n, _ in trainable]
    frozen = frozen_slot_variables(state.optimizer.slots, state.weights, names)
    if not frozen:
        return trainable
    return built_with(_layer_arrays(state, thawed(model_cfg), path)[1], names, frozen)


def _idf_groups(slot: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A ``tf_idf`` lookup layer's ``idf_weights``, stored by name as Keras 3 saves them (a
    TextVectorization's again under its inner ``_lookup_layer``): Keras 3 loads them from there."""
    idf = idf_array(slot.class_name, slot.config)
    if idf is None:
        return []
    inner = [slot.h5_path + "/_lookup_layer/vars"] if slot.class_name == "TextVectorization" else []
    return [(group, {"idf_weights": idf}) for group in [slot.h5_path + "/vars", *inner]]


def _fill_h5(target: Any, groups: list[tuple[str, Any]], opt_arrays: list[Any] | None) -> None:
    """Write the Keras v3 weights HDF5 into ``target`` (a path or a binary file object), one
    tensor at a time (a lazy tensor is read just before its dataset is written)."""
    import h5py

    from ckptcompat.formats._headers import materialize

    with h5py.File(target, "w") as h5:
        _fill_open(h5, groups, opt_arrays,
                   lambda g, name, value: g.create_dataset(name, data=materialize(value)))


def _fill_open(h5: Any, groups: list[tuple[str, Any]], opt_arrays: list[Any] | None,
               put: Callable[[Any, str, Any], Any]) -> None:
    """The datasets of the Keras v3 weights layout, created in the open file ``h5`` by ``put``
    (a lazy tensor handed on as it is: ``put`` reads it when it writes it)."""
    h5.create_group("vars")  # Keras 3.0 opens the model's own (empty) group unconditionally
    for group, arrays in [*groups, *([("optimizer/vars", opt_arrays)] if opt_arrays is not None else [])]:
        g = h5.require_group(group)
        for name, array in _named(arrays):
            put(g, name, array)


def _named(arrays: list[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A group's datasets: by position (``"0"``, ``"1"``...) or, a mapping, by name."""
    return list(arrays.items()) if isinstance(arrays, Mapping) else [(str(i), a) for i, a in enumerate(arrays)]


def _h5_bytes(groups: list[tuple[str, list[Any]]], opt_arrays: list[Any] | None) -> bytes:
    buf = io.BytesIO()
    _fill_h5(buf, groups, opt_arrays)
    return buf.getvalue()


def _copy(src: Path, dst: Any, chunk: int = 8 << 20) -> None:
    """Copy the file ``src`` into the open binary ``dst``, ``chunk`` bytes at a time."""
    with open(src, "rb") as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                return
            dst.write(data)


def _put(weights: bytes | Path, fh: Any) -> None:
    if isinstance(weights, bytes):
        fh.write(weights)
    else:
        _copy(weights, fh)


def _streaming(state: TrainingState) -> bool:
    from ckptcompat.formats._headers import LazyTensor

    return any(isinstance(a, LazyTensor) for a in state.tensors().values())


def _compile_config(state: TrainingState, opt_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    tc = dict(state.training_config or {})
    loss = tc.get("loss")
    metrics = tc.get("metrics")
    if not (metrics is None or (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics))):
        metrics = list(state.metric_names) or None
    from ckptcompat.names.losses import loss_for_keras3

    loss = loss_for_keras3(loss) if isinstance(loss, (str, Mapping)) else None
    return {"optimizer": opt_cfg, "loss": loss,
            "loss_weights": None, "metrics": metrics, "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


def write_state(path: Path, state: TrainingState, *, verify: Callable[[Path], TrainingState] | None,
                keras_version: str | None = None, include_optimizer: bool = True,
                durable: bool = True, checksum: bool = False) -> tuple[int, str] | None:
    """Lay the weights out, write the file to a temp file beside ``path``, verify, rename.

    ``verify=None`` skips the read-back comparison and ``durable=False`` the fsyncs (the
    checkpoint store checksums and fsyncs its files itself). A state holding lazy tensors
    (a streaming ``migrate``) is written one tensor at a time. A ``.keras`` below 4 GiB that
    is streamed or ``checksum=True`` (store commits) is written in one pass, the weights
    straight into their zip member while hashing the file (:mod:`._direct_archive`); with
    ``checksum`` its ``(size, sha256)`` is returned, else None. Otherwise the weights HDF5
    is built in memory (or, streamed, in a temporary file copied into the archive in chunks).
    """
    from ckptcompat._atomic import remove_temp, temp_name

    if state.model_config is None:
        raise UnsupportedFormatError("the state carries no model config", path=path,
                                     hint="Keras 3 files are laid out from the model config; read the "
                                          "source with its config or use another format")
    version = _target_version(keras_version)
    model_cfg = for_keras3_release(upgrade_model_config(state.model_config), version, str(path))
    groups, trainable = _layer_arrays(state, model_cfg, path)
    if str(path).endswith(".weights.h5") and any(g.startswith(EXACT_ROOT) for g, _ in groups):
        raise UnsupportedFormatError("a .weights.h5 records no config, so no reader can place the LoRA factors "
                                     "this state holds", path=path, hint="write a .keras archive")
    opt_cfg = keras3_optimizer_config(state) if (include_optimizer and state.optimizer) else None
    if opt_cfg:  # layers frozen after the optimizer was built: its variables as Keras wrote them
        trainable = _built_with(state, model_cfg, trainable, path)
    opt_arrays = optimizer_arrays(state, opt_cfg, trainable, path, version) if opt_cfg else None
    if opt_cfg and opt_arrays is not None and state.optimizer is not None:
        from ckptcompat.formats.keras_zip import _loss_scale

        wrapper = _loss_scale.wrapper_config(opt_cfg, state.optimizer.extra)
        if wrapper is not None:  # a loss-scale wrapper's state, laid out as Keras 3 saves it
            groups = [*groups, (_loss_scale.INNER_GROUP, opt_arrays)]
            opt_arrays = _loss_scale.wrapper_arrays(state.optimizer.extra, opt_arrays)
            opt_cfg = wrapper
    if (checksum or _streaming(state)) and not str(path).endswith(".weights.h5"):
        done, result = _write_direct(path, model_cfg, _compile_config(state, opt_cfg) if opt_cfg else None,
                                     version, state, groups, opt_arrays, verify, durable)
        if done:
            return result if checksum else None
    staged: Path | None = None
    try:
        if _streaming(state):
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = temp_name(path.with_name(path.name + ".weights.h5"))
            _ensure_room(staged, *state_bytes(state.tensors()))
            _fill_h5(staged, groups, opt_arrays)
        weights: bytes | Path = staged if staged is not None else _h5_bytes(groups, opt_arrays)
        if str(path).endswith(".weights.h5"):
            _atomic_write(path, lambda fh: _put(weights, fh), state, verify, durable)
        else:
            _write_archive(path, model_cfg, _compile_config(state, opt_cfg) if opt_cfg else None,
                           version, state, weights, verify, durable)
    finally:
        if staged is not None:
            remove_temp(staged)
    return None


def _texts(model_cfg: Mapping[str, Any], compile_cfg: Any, version: str,
           state: TrainingState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The archive's ``config.json`` and ``metadata.json`` contents."""
    from ckptcompat import __version__

    config = dict(model_cfg)
    config["compile_config"] = compile_cfg
    meta = {"keras_version": version,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "ckptcompat_version": __version__,
            "source_producer": {"framework": state.producer.framework,
                                "versions": dict(state.producer.versions),
                                "format": state.producer.format}}
    return config, meta


def _write_direct(path: Path, model_cfg: Mapping[str, Any], compile_cfg: Any, version: str,
                  state: TrainingState, groups: list[tuple[str, list[Any]]],
                  opt_arrays: list[Any] | None, verify: Callable[[Path], TrainingState] | None,
                  durable: bool) -> tuple[bool, tuple[int, str] | None]:
    """The archive in one pass (:mod:`._direct_archive`), atomically: ``(True, (size,
    sha256))``; ``(False, None)`` when it needs zip64 (the caller writes it another way)."""
    from ckptcompat._atomic import atomic_path
    from ckptcompat.formats.keras_zip import _direct_archive

    config, meta = _texts(model_cfg, compile_cfg, version, state)
    config_bytes, meta_bytes = json.dumps(config).encode(), json.dumps(meta).encode()
    # what is written (created zero slots and extra variables included), not what was read
    written = {f"{group}/{name}": array
               for group, arrays in [*groups, ("optimizer/vars", opt_arrays or [])]
               for name, array in _named(arrays)}
    tensor_bytes, count = state_bytes(written)
    if not _direct_archive.fits(tensor_bytes, len(config_bytes)):
        return False, None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=durable, synced=True) as tmp:
        _ensure_room(tmp, tensor_bytes, count)
        result = _direct_archive.write_archive(
            tmp, config_bytes, meta_bytes, lambda h5, put: _fill_open(h5, groups, opt_arrays, put),
            durable=durable)
        if verify is not None:
            _check_read_back(path, tmp, state, verify)
    return True, result


def _ensure_room(target: Path, data_bytes: int, datasets: int) -> None:
    """Refuse a weights file the disk cannot hold before HDF5 starts (old HDF5 crashes)."""
    import h5py

    from ckptcompat.formats.keras_h5._direct import ensure_room

    ensure_room(h5py, target, data_bytes, datasets)


def _write_archive(path: Path, model_cfg: Mapping[str, Any], compile_cfg: Any, version: str,
                   state: TrainingState, weights: bytes | Path,
                   verify: Callable[[Path], TrainingState] | None, durable: bool) -> None:
    """The ``.keras`` zip: metadata, config, then the weights member (STORED, as Keras writes it)."""
    config, meta = _texts(model_cfg, compile_cfg, version, state)

    def archive(fh: Any) -> None:  # straight into the file: no second copy in memory
        with zipfile.ZipFile(fh, "w") as zf:
            zf.writestr("metadata.json", json.dumps(meta))
            zf.writestr("config.json", json.dumps(config))
            if isinstance(weights, bytes):
                zf.writestr("model.weights.h5", weights)
                return
            with zf.open("model.weights.h5", "w", force_zip64=True) as member:  # size not known
                _copy(weights, member)

    _atomic_write(path, archive, state, verify, durable)


def _atomic_write(path: Path, fill: Callable[[Any], Any], state: TrainingState,
                  verify: Callable[[Path], TrainingState] | None, durable: bool) -> None:
    """Write through :func:`ckptcompat._atomic.atomic_write`, comparing the read-back first."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def check(tmp: Path) -> None:
        assert verify is not None
        _check_read_back(path, tmp, state, verify)

    atomic_write(path, fill, durable=durable, check=None if verify is None else check)


def _check_read_back(path: Path, tmp: Path, state: TrainingState,
                     verify: Callable[[Path], TrainingState]) -> None:
    back = verify(tmp)
    if str(path).endswith(".weights.h5"):  # no config inside: names are class-derived, compare values
        def digest(a: np.ndarray) -> bytes:
            return str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes()
        want = sorted(digest(np.asarray(a)) for a in state.weights.values())
        # a tf_idf lookup's idf, written from its config (_idf_groups), reads back as a weight here
        idf = not any(n.endswith("/idf_weights") for n in state.weights)
        got = sorted(digest(a) for n, a in back.weights.items() if not (idf and n.endswith("/idf_weights")))
        bad = [] if want == got else ["weight values"]
    else:
        bad = [n for n, a in state.weights.items()
               if n not in back.weights or not same_values(back.weights[n], a)]
    if bad:
        raise IncompatibleStateError("read-back differs from the state", bad, path=path,
                                     hint="a ckptcompat bug; please report it")
