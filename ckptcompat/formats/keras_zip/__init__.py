"""Keras v3 format: ``.keras`` zip archives and ``.weights.h5`` files.

Read with zipfile + h5py + numpy only (no TensorFlow/Keras import). Variables are stored by
position; names come from the model config (see ``_keras_zip_layout``) and optimizer slots
from the producing generation's creation order (see ``_keras_zip_optimizer``), checked
shape by shape. Lambda byte-code in configs is kept as data, never unmarshalled.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ckptcompat.errors import (CheckpointNotFoundError, CkptCompatError, CorruptCheckpointError, IncompatibleStateError,
                               UnsupportedFormatError)
from ckptcompat.formats import Peek, WrittenFiles
from ckptcompat.state import Producer, Progress, TrainingState

__all__ = ["NAME", "name", "sniff", "peek", "read", "write", "files"]

NAME = "keras_zip"
name = NAME  # the Format protocol's attribute
log = logging.getLogger(__name__)
_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")
_DROP_HYPER = {"name", "is_legacy_optimizer", "jit_compile"}


def sniff(path: str | Path) -> bool:
    """True for a zip holding Keras v3 members, or an HDF5 file in the Keras v3 weights layout."""
    try:
        p = Path(path)
        if not p.is_file():
            return False
        with open(p, "rb") as fh:
            head = fh.read(8)
        if head.startswith(b"PK"):
            with zipfile.ZipFile(p) as zf:
                return any(n in _MEMBERS for n in zf.namelist())
        if head == b"\x89HDF\r\n\x1a\n":
            import h5py

            with h5py.File(p, "r") as h5:
                if "model_weights" in h5 or "layer_names" in h5.attrs:
                    return False
                return any(k in h5 for k in ("layers", "vars", "optimizer", "_layer_checkpoint_dependencies"))
    except Exception:  # sniff never raises
        return False
    return False


def _generation(version: str | None, h5: Any) -> str:
    if version:
        return "keras2" if version.split(".")[0] in ("1", "2") else "keras3"
    if "_layer_checkpoint_dependencies" in h5:
        return "keras2"
    opt = h5.get("optimizer/vars")
    if opt is not None and "1" in opt and opt["1"].shape == () and opt["1"].dtype.kind == "f":
        return "keras3"
    return "keras3" if opt is not None and opt.attrs.get("name") is not None else "keras2"


def _framework(version: str | None) -> str | None:
    if not version:
        return None
    parts = version.split(".")
    if parts[0] != "2":
        return "keras"
    return "tf-keras" if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) >= 16 else "tf.keras"


def _metric_names(compile_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []

    def visit(obj: Any) -> None:
        if isinstance(obj, str):
            names.append(obj)
        elif isinstance(obj, Mapping):
            if "config" in obj and isinstance(obj["config"], Mapping) and "name" in obj["config"]:
                names.append(str(obj["config"]["name"]))
            else:
                for value in obj.values():
                    visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)

    visit(compile_cfg.get("metrics"))
    return tuple(dict.fromkeys(names))


def _hyperparameters(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from ckptcompat.names.lr_decay import rate_and_schedule

    return rate_and_schedule({("learning_rate" if k == "lr" else k): v for k, v in cfg.items() if k not in _DROP_HYPER})


def _open(path: Path) -> tuple[Any, dict[str, Any], dict[str, Any] | None, Any, dict[str, str]]:
    """``(weights HDF5, metadata, config, the member window to close after the HDF5 or None,
    vocabulary assets by folder)``."""
    from ckptcompat.formats.keras_zip import _io as kio
    from ckptcompat.formats.keras_zip._assets import read_vocabularies

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        zf = kio.open_zip(path)
        names = set(zf.namelist())
        if "model.weights.h5" not in names:
            zf.close()
            if "model.weights.npz" in names:
                raise UnsupportedFormatError("the archive stores weights as .npz", path=path,
                                             hint="re-save with the default HDF5 weights format")
            if not names & set(_MEMBERS):
                raise UnsupportedFormatError("a zip archive without Keras members", path=path,
                                             hint="expected metadata.json, config.json, model.weights.h5")
            raise CorruptCheckpointError("the archive has no model.weights.h5", path=path,
                                         hint="the file is incomplete; re-save the model")
        meta = kio.read_json_member(zf, "metadata.json", path) if "metadata.json" in names else {}
        config = kio.read_json_member(zf, "config.json", path) if "config.json" in names else None
        info = zf.getinfo("model.weights.h5")
        try:
            vocabularies = read_vocabularies(zf, path)
        finally:
            zf.close()
        if not isinstance(meta, dict) or (config is not None and not isinstance(config, dict)):
            raise CorruptCheckpointError("metadata.json/config.json is not a JSON object", path=path)
        h5, window = kio.open_weights_member(path, info)
        return h5, meta, config, window, vocabularies
    if not head:
        raise CorruptCheckpointError("the file is empty (0 bytes)", path=path,
                                     hint="the save was interrupted; use an older checkpoint")
    h5 = kio.open_h5_path(path)
    if "model_weights" in h5 or "layer_names" in h5.attrs:
        h5.close()
        raise UnsupportedFormatError("a legacy Keras HDF5 file, not the Keras v3 layout", path=path,
                                     hint="read it with format='keras_h5'")
    return h5, {}, None, None, {}


def read(path: str | Path, **options: Any) -> TrainingState:
    """Read a ``.keras`` archive or ``.weights.h5`` file into a :class:`TrainingState`.

    ``model_config`` (``{"class_name", "config"}``): for a weights file that records no model
    config, name its groups through this config instead, as Keras's ``load_weights`` names
    them through the model it loads into (the state still records no config of its own)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError("no such file", path=p, hint="check the path")
    if not p.is_file():
        raise UnsupportedFormatError("not a file", path=p, hint="give the .keras or .weights.h5 file")
    try:
        h5, meta, config, window, vocabularies = _open(p)
    except CkptCompatError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptCheckpointError(f"cannot read the file: {exc}", path=p) from exc
    try:
        given = options.get("model_config")
        if config is None and isinstance(given, Mapping):  # a weights file: the caller's model config
            config = {"class_name": given.get("class_name"), "config": given.get("config"), "given": True}
        return _read_state(p, h5, meta, config, include_optimizer=bool(options.get("include_optimizer", True)),
                           vocabularies=vocabularies)
    except CkptCompatError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CorruptCheckpointError(f"damaged contents: {type(exc).__name__}: {exc}", path=p,
                                     hint="the file is damaged; re-save it or use an older one") from exc
    finally:
        from ckptcompat.formats._headers import keep_open

        if not keep_open(window, h5):  # a lazy read keeps them open for its LazyTensors
            h5.close()
            if window is not None:
                window.close()


def variable_sources(path: str | Path) -> dict[str, str]:
    """Each weight :func:`read` names -> the dataset it was read from (``layers/lstm/cell/vars/0``):
    where Keras 3 itself looks for it when loading into a live model (tensor data not read)."""
    from ckptcompat.formats._headers import headers_only

    p = Path(path)
    try:
        h5, meta, config, window, _ = _open(p)
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptCheckpointError(f"cannot read the file: {exc}", path=p) from exc
    try:
        sources: dict[str, str] = {}
        with headers_only():
            _read_weights(p, h5, meta, config, sources)
        return sources
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CorruptCheckpointError(f"damaged contents: {type(exc).__name__}: {exc}", path=p) from exc
    finally:
        h5.close()
        if window is not None:
            window.close()


def _read_weights(p: Path, h5: Any, meta: Mapping[str, Any], config: Mapping[str, Any] | None,
                  sources: dict[str, str] | None = None
                  ) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...]]], str, str | None]:
    """(weights, trainable (name, shape), producer generation, Keras version) as :func:`read` names them."""
    from ckptcompat.formats.keras_zip._weights import read_weights

    version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else None
    generation = _generation(version, h5)
    model_cfg = None
    if config is not None:
        model_cfg = {k: v for k, v in config.items() if k not in ("compile_config", "given")}
    weights, trainable = read_weights(h5, model_cfg, p, generation, sources)
    return weights, trainable, generation, version


def _read_state(p: Path, h5: Any, meta: Mapping[str, Any], config: Mapping[str, Any] | None,
                include_optimizer: bool = True, vocabularies: Mapping[str, str] | None = None) -> TrainingState:
    from ckptcompat.formats.keras_zip._assets import config_with_vocabularies
    from ckptcompat.formats.keras_zip._weights import read_optimizer

    weights, trainable, generation, version = _read_weights(p, h5, meta, config)
    model_cfg = None
    if config is not None:
        model_cfg = {k: v for k, v in config.items() if k not in ("compile_config", "given")}
    if config is not None and config.get("given"):
        model_cfg = None  # named through the caller's model; the file itself records no config
    model_cfg = config_with_vocabularies(model_cfg, vocabularies or {}, weights, p)
    compile_cfg = (config or {}).get("compile_config") or {}
    if not isinstance(compile_cfg, Mapping):
        compile_cfg = {}
    opt_cfg = compile_cfg.get("optimizer")
    if isinstance(opt_cfg, str):  # compile(optimizer="adam")
        opt_cfg = {"class_name": opt_cfg, "config": {}}
    optimizer = None
    if include_optimizer:
        from ckptcompat.formats.keras_zip import _loss_scale

        def reader(variables: list[tuple[str, tuple[int, ...]]]) -> Callable[..., Any]:
            def read(cfg: Mapping[str, Any] | None, group: str = "optimizer/vars") -> Any:
                return read_optimizer(h5, cfg, generation, variables, p, _hyperparameters,
                                      ordered=model_cfg is not None, group=group, version=version)
            return read

        opt_cfg = opt_cfg if isinstance(opt_cfg, Mapping) else None
        wrapped = _loss_scale.is_wrapped(h5, opt_cfg)  # a Keras 3 LossScaleOptimizer

        def read_all(variables: list[tuple[str, tuple[int, ...]]]) -> Any:
            read = reader(variables)
            return _loss_scale.read_wrapped(h5, opt_cfg, p, read) if wrapped else read(opt_cfg)

        try:
            optimizer = read_all(trainable)
        except IncompatibleStateError:
            # later releases record lora_rank themselves (Dense from 3.1, Embedding from 3.2)
            unrecorded = str(version or "").startswith(("3.0.", "3.1."))
            patched = _with_inferred_lora(h5, config, trainable, p) if unrecorded and not wrapped and model_cfg else None
            if patched is not None:
                return _read_state(p, h5, meta, patched, include_optimizer, vocabularies)
            optimizer = _built_before_freezing(p, h5, meta, config, trainable, read_all) if model_cfg else None
            if optimizer is None:
                raise
    versions = {"keras": version} if version else {}
    if isinstance(meta.get("date_saved"), str):
        versions["date_saved"] = meta["date_saved"]
    producer = Producer(framework=_framework(version), versions=versions, format=NAME, path=str(p))
    return TrainingState(
        weights=weights, optimizer=optimizer,
        progress=Progress(global_step=optimizer.iterations if optimizer else
                          None if include_optimizer else _stored_iterations(h5, p)),
        producer=producer, model_config=model_cfg,
        training_config=dict(compile_cfg) if compile_cfg else None,
        metric_names=_metric_names(compile_cfg))


def _built_before_freezing(p: Path, h5: Any, meta: Mapping[str, Any], config: Mapping[str, Any] | None,
                           trainable: list[tuple[str, tuple[int, ...]]], read_all: Callable[[Any], Any]) -> Any:
    """The optimizer state of a model whose layers were frozen (``trainable=False``) after its
    optimizer was built, read by ``read_all`` with the variables in build order: every variable
    trainable when built, the frozen layers' too (Keras 3.1+'s own load drops the whole optimizer
    state there); None when the config freezes nothing or that layout does not fit either."""
    from ckptcompat.formats._frozen import thawed as thaw

    thawed = thaw(config)
    if thawed == config:
        return None
    built = _read_weights(p, h5, meta, thawed)[1]
    if built == trainable:
        return None
    try:
        optimizer = read_all(built)
    except CkptCompatError:  # the caller raises the first reading's error
        return None
    log.info("%s: the optimizer was built before layers were frozen: its slots of the frozen layers' "
             "variables read too", p)
    return optimizer


def _with_inferred_lora(h5: Any, config: Mapping[str, Any], trainable: list[tuple[str, tuple[int, ...]]],
                        p: Path) -> dict[str, Any] | None:
    """``config`` with the ``lora_rank`` of the layers whose LoRA the optimizer variables show
    (Keras 3.0, and 3.1's Embedding, record no ``enable_lora`` after build; :func:`._lora.infer_ranks`),
    or None. For those files only: later releases record ``lora_rank``, so a misfit there is something else."""
    import copy

    from ckptcompat.formats.keras_zip._layout import walk_model_config
    from ckptcompat.formats.keras_zip._lora import infer_ranks, listed_layer_configs

    group = h5.get("optimizer/vars")
    if group is None:
        return None
    shapes = [tuple(group[str(i)].shape) for i in range(len(group)) if str(i) in group]
    model_cfg = {k: v for k, v in config.items() if k not in ("compile_config", "given")}
    ranks = infer_ranks(model_cfg, trainable, shapes)
    if not ranks:
        return None
    patched = copy.deepcopy(dict(config))
    model_cfg = {k: v for k, v in patched.items() if k not in ("compile_config", "given")}
    listed = listed_layer_configs(model_cfg)
    slots = [s for s in walk_model_config(model_cfg) if s.prefix in ranks]
    if len(slots) != len(ranks) or any(id(s.config) not in listed for s in slots):
        return None
    for slot in slots:
        slot.config["lora_rank"] = ranks[slot.prefix]  # type: ignore[index]
    log.warning("%s: the optimizer variables show LoRA (rank %s) on %s, which the config does not record "
                "(Keras 3.0's enable_lora after build): read as LoRA layers", p,
                ", ".join(sorted({str(r) for r in ranks.values()})), ", ".join(ranks))
    return patched


def _stored_iterations(h5: Any, p: Path) -> int | None:
    """The optimizer's step counter (``optimizer/vars/0``, an integer scalar) of a file read
    without its optimizer: the run's progress still (only that one dataset is read)."""
    from ckptcompat.formats.keras_zip._io import safe_dataset

    group = h5.get("optimizer/vars")
    if group is None or "0" not in group:
        return None
    value = safe_dataset(group, "0", p, "optimizer/vars/0")
    return int(value) if value.shape == () and value.dtype.kind in "iu" else None


def write(path: str | Path, state: TrainingState, *, verify: bool = True, **options: Any) -> WrittenFiles:
    """Write ``state`` as a ``.keras`` archive or (path ends ``.weights.h5``) a weights file.

    Options: ``keras_version`` (target Keras 3 release, default the running one or the
    newest known), ``include_optimizer``, ``checksum`` (a ``.keras`` written in one pass while
    hashed: its ``(size, sha256)`` in the result's ``digests``). Written atomically and verified by reading back;
    ``verify=False`` / ``durable=False`` skip the read-back / the fsyncs (the checkpoint
    store checksums and fsyncs its files itself). Returns ``[path]``.
    """
    from ckptcompat.formats.keras_zip._write import write_state

    p = Path(path)
    digest = write_state(p, state, verify=read if verify else None, **options)
    return WrittenFiles([p], {p: digest} if digest else None)


def peek(path: str | Path) -> Peek:
    """Producer and optimizer class of a ``.keras`` (weights not opened), or the dataset table
    of a ``.weights.h5``."""
    from ckptcompat.formats.keras_zip._peek import peek_keras

    return peek_keras(Path(path), NAME)


def files(path: str | Path) -> list[Path]:
    """``[path]`` when it exists (a ``.keras`` / ``.weights.h5`` is one file), else ``[]``."""
    p = Path(path)
    return [p] if p.exists() or p.is_symlink() else []
