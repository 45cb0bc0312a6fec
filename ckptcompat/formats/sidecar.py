"""ckptcompat's own ``state.json`` and read-only safe readers for legacy sidecars.

``state.json`` is a versioned JSON document holding everything of a
:class:`~ckptcompat.state.TrainingState` that is not a tensor: progress, history, callback
states, RNG state, producer, optimizer class / hyper-parameters / iterations and metric
names. Tensors (weights, optimizer slots) live in the weights file written next to it.

Values JSON cannot hold are written as tagged objects: non-finite floats as
``{"__float__": "nan"|"inf"|"-inf"}``, small numpy arrays (RNG states) as
``{"__ndarray__": {"dtype", "shape", "data"}}``, bytes as ``{"__bytes__": <base64>}``.

:func:`read_legacy_sidecar` reads what people write next to their ``.h5`` files -- pickled
``{"optimizer": optimizer.get_config(), "epoch": epoch}`` dicts, pickled or JSON
``History.history`` dicts, ``model.to_json()`` files -- through
:mod:`ckptcompat.formats.safe_pickle`, never executing anything, into a partial ``TrainingState``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat import _bounded
from ckptcompat._plausible import MAX_COUNT, MAX_EPOCH, count_problem
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    IncompatibleStateError,
    UnsupportedFormatError,
)
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.formats.safe_pickle import looks_like_pickle, safe_load
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState

__all__ = ["NAME", "SCHEMA_KEY", "SCHEMA_VERSION", "MAX_BYTES", "sniff", "read", "write",
           "read_legacy_sidecar", "to_jsonable", "from_jsonable"]

log = logging.getLogger(__name__)

NAME = "state_json"
SCHEMA_KEY = "ckptcompat_state"
SCHEMA_VERSION = 1
MAX_BYTES = 64 * 1024 * 1024
_HYPER_ALIASES = {"lr": "learning_rate"}
_NOT_HYPER = {"name", "class_name", "iterations", "iter"}


# ---------------------------------------------------------------- JSON-safe conversion
def to_jsonable(value: Any, where: str = "$", problems: list[str] | None = None) -> Any:
    """Convert ``value`` to strict-JSON data (numpy scalars/arrays, non-finite floats tagged).

    Unconvertible values are appended to ``problems`` (as ``where: type``) when given,
    otherwise they raise :class:`IncompatibleStateError`.
    """
    own = problems is None
    problems = [] if problems is None else problems
    out = _to_jsonable(value, where, problems)
    if own and problems:
        raise IncompatibleStateError("values that cannot be stored as JSON", problems,
                                     hint="keep callback and RNG states to numbers, strings, "
                                          "lists, dicts and small numpy arrays")
    return out


def _to_jsonable(value: Any, where: str, problems: list[str]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f):
            return f
        return {"__float__": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            problems.append(f"{where}: numpy array of dtype {value.dtype}")
            return None
        data = [_to_jsonable(x, where, problems) for x in value.reshape(-1).tolist()]
        return {"__ndarray__": {"dtype": value.dtype.str, "shape": list(value.shape), "data": data}}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{where}: key {key!r} is not a string")
                continue
            out[key] = _to_jsonable(item, f"{where}.{key}", problems)
        return out
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(x, f"{where}[{i}]", problems) for i, x in enumerate(value)]
    problems.append(f"{where}: {type(value).__module__}.{type(value).__qualname__}")
    return None


def from_jsonable(value: Any) -> Any:
    """Inverse of :func:`to_jsonable`."""
    if isinstance(value, list):
        return [from_jsonable(x) for x in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, payload), = value.items()
        if tag == "__float__" and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if tag == "__bytes__" and isinstance(payload, str):
            return base64.b64decode(payload.encode("ascii"))
        if tag == "__ndarray__" and isinstance(payload, dict):
            dtype = np.dtype(payload["dtype"])
            data = [from_jsonable(x) for x in payload["data"]]
            return np.array(data, dtype=dtype).reshape(tuple(payload["shape"]))
    return {k: from_jsonable(v) for k, v in value.items()}


# ---------------------------------------------------------------- state.json
def sniff(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file that starts like a JSON object carrying our schema key."""
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and f'"{SCHEMA_KEY}"'.encode() in head


def _document(state: TrainingState) -> dict[str, Any]:
    from ckptcompat import __version__

    opt = state.optimizer
    problems: list[str] = []
    doc: dict[str, Any] = {
        SCHEMA_KEY: SCHEMA_VERSION,
        "ckptcompat_version": __version__,
        "progress": {"epoch": state.progress.epoch, "step": state.progress.step,
                     "global_step": state.progress.global_step},
        "history": {k: list(v) for k, v in state.history.items()},
        "callbacks": state.callbacks,
        "rng": state.rng,
        "producer": {"framework": state.producer.framework, "versions": dict(state.producer.versions),
                     "format": state.producer.format},
        "optimizer": None if opt is None else {
            "class_name": opt.class_name, "hyperparameters": opt.hyperparameters,
            "iterations": opt.iterations, "config": opt.config},
        "metric_names": list(state.metric_names),
    }
    doc = to_jsonable(doc, "$", problems)
    if problems:
        raise IncompatibleStateError("the state has values that cannot be stored in state.json",
                                     problems, hint="keep callback and RNG states to plain data")
    return doc


def write(path: str | os.PathLike[str], state: TrainingState, **options: Any) -> None:
    """Write the non-tensor part of ``state`` to ``path`` atomically and verify it.

    Weights and optimizer slots are *not* written here: they belong in the weights file.
    """
    if options:
        raise TypeError(f"unexpected options for {NAME}: {sorted(options)}")
    p = Path(path)
    doc = _document(state)
    text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if json.loads(tmp.read_text(encoding="utf-8")) != doc:
            raise CorruptCheckpointError("read-back differs from what was written", path=tmp,
                                         hint="the disk or file system is failing")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(p.parent)
    log.debug("wrote %s (%d bytes)", p, len(text))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover -- platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _load_json(p: Path) -> Any:
    try:
        size = p.stat().st_size
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError("no such file", path=p, hint="check the path") from exc
    if p.is_dir():
        raise UnsupportedFormatError("is a directory, not a JSON file", path=p,
                                     hint="give the path of the .json file")
    if size > MAX_BYTES:
        raise CorruptCheckpointError(f"{size} bytes is too large for a sidecar (limit {MAX_BYTES})",
                                     path=p, hint="this is not a training-state sidecar")
    try:
        return _bounded.load_file(p, what="the JSON sidecar", max_bytes=MAX_BYTES)
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read: {exc}", path=p, hint="check permissions") from exc


def read(path: str | os.PathLike[str], **options: Any) -> TrainingState:
    """Read a ``state.json`` written by :func:`write` (weights and slots are empty)."""
    if options:
        raise TypeError(f"unexpected options for {NAME}: {sorted(options)}")
    p = Path(path)
    doc = _load_json(p)
    if not isinstance(doc, dict) or SCHEMA_KEY not in doc:
        raise UnsupportedFormatError(f"JSON without the {SCHEMA_KEY!r} key is not a ckptcompat state.json",
                                     path=p, hint="for other JSON sidecars use read_legacy_sidecar()")
    version = doc[SCHEMA_KEY]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptCheckpointError(f"bad schema version {version!r}", path=p,
                                     hint="the file is damaged; use an older copy")
    if version > SCHEMA_VERSION:
        raise UnsupportedFormatError(
            f"state.json schema {version} is newer than this ckptcompat understands ({SCHEMA_VERSION})",
            path=p, hint=f"upgrade ckptcompat (this file was written by {doc.get('ckptcompat_version')})")
    try:
        return _state_from_document(from_jsonable(doc), p)
    except CorruptCheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise CorruptCheckpointError(f"malformed state.json: {type(exc).__name__}: {exc}", path=p,
                                     hint="the file is damaged or was edited by hand") from exc


def _opt_int(value: Any, what: str, p: Path, top: int = MAX_COUNT) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorruptCheckpointError(f"{what} must be a non-negative integer, found {value!r}", path=p,
                                     hint="the file is damaged or was edited by hand")
    problem = count_problem(value, what, top)
    if problem:
        raise CorruptCheckpointError(problem, path=p, hint="the file is damaged or was edited by hand")
    return value


def _state_from_document(doc: dict[str, Any], p: Path) -> TrainingState:
    progress = doc.get("progress") or {}
    producer = doc.get("producer") or {}
    opt_doc = doc.get("optimizer")
    optimizer = None
    if opt_doc is not None:
        optimizer = OptimizerState(
            class_name=str(opt_doc["class_name"]),
            hyperparameters=dict(opt_doc.get("hyperparameters") or {}),
            iterations=_opt_int(opt_doc.get("iterations"), "optimizer.iterations", p),
            config=opt_doc.get("config"))
    history = {str(k): [float(x) for x in v] for k, v in (doc.get("history") or {}).items()}
    return TrainingState(
        optimizer=optimizer,
        progress=Progress(epoch=_opt_int(progress.get("epoch"), "progress.epoch", p, MAX_EPOCH),
                          step=_opt_int(progress.get("step"), "progress.step", p),
                          global_step=_opt_int(progress.get("global_step"), "progress.global_step", p)),
        history=history,
        callbacks=dict(doc.get("callbacks") or {}),
        rng=dict(doc.get("rng") or {}),
        producer=Producer(framework=producer.get("framework"),
                          versions={str(k): str(v) for k, v in (producer.get("versions") or {}).items()},
                          format=NAME, path=str(p)),
        metric_names=tuple(str(m) for m in doc.get("metric_names") or ()))


# ---------------------------------------------------------------- legacy sidecars
def read_legacy_sidecar(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> TrainingState:
    """Read a foreign sidecar (pickle or JSON) into a partial :class:`TrainingState`.

    Understood contents: ``{"optimizer": <get_config() or {"class_name", "config"}>,
    "epoch": int, "history": {...}}`` dicts; ``History.history`` dicts (metric -> list of
    numbers); Keras ``model.to_json()`` documents; our own ``state.json``. ``progress.epoch``
    is the stored value as is (what the original code passed to ``initial_epoch``).
    Pickles go through :mod:`ckptcompat.formats.safe_pickle` (plain data only).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError("no such file", path=p, hint="check the path") from exc
    except IsADirectoryError as exc:
        raise UnsupportedFormatError("is a directory, not a sidecar file", path=p,
                                     hint="give the path of the .pkl/.json file") from exc
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read: {exc}", path=p, hint="check permissions") from exc
    if head.startswith(b"\x89HDF") or head.startswith(b"PK\x03\x04"):
        raise UnsupportedFormatError("this is a checkpoint, not a sidecar", path=p,
                                     hint="read it with ckptcompat.read() / ckptcompat inspect")
    stripped = head.lstrip()
    if not head:
        raise CorruptCheckpointError("empty file", path=p, hint="the sidecar was not written completely")
    if stripped[:1] in (b"{", b"[", b'"') or p.suffix.lower() == ".json":
        if sniff(p):
            return read(p)
        data = _load_json(p)
        source = "json"
    elif looks_like_pickle(head) or p.suffix.lower() in (".pkl", ".pickle", ".p"):
        data = safe_load(p, max_bytes=max_bytes)
        source = "pickle"
    else:
        raise UnsupportedFormatError("neither a pickle nor a JSON document", path=p,
                                     hint="legacy sidecars are pickles or JSON files")
    return _state_from_legacy(data, p, source)


def _state_from_legacy(data: Any, p: Path, source: str) -> TrainingState:
    if isinstance(data, str) and source == "json":   # double-encoded model.to_json()
        try:
            data = _bounded.loads(data, path=p, what="the JSON string in the sidecar", max_bytes=MAX_BYTES)
        except CorruptCheckpointError as exc:
            raise UnsupportedFormatError(f"a JSON string, not a training sidecar ({exc.message})",
                                         path=p) from exc
    if not isinstance(data, dict):
        raise UnsupportedFormatError(f"{source} holds a {type(data).__name__}, not a training-state dict",
                                     path=p, hint="expected {'optimizer': ..., 'epoch': ...} or a history dict")
    producer = Producer(path=str(p))
    if "class_name" in data and "config" in data and ("keras_version" in data or "backend" in data):
        versions = {"keras": str(data["keras_version"])} if "keras_version" in data else {}
        return TrainingState(producer=Producer(framework="keras", versions=versions, path=str(p)),
                             model_config={"class_name": data["class_name"], "config": data["config"]})
    optimizer = _legacy_optimizer(data.get("optimizer"), p) if "optimizer" in data else None
    epoch = _legacy_int(data.get("epoch", data.get("initial_epoch")), "epoch", p, MAX_EPOCH)
    history_src = data.get("history") if isinstance(data.get("history"), dict) else None
    if history_src is None and optimizer is None and epoch is None and _is_history(data):
        history_src = data
    history = _legacy_history(history_src, p) if history_src else {}
    if optimizer is None and epoch is None and not history:
        raise UnsupportedFormatError(
            f"{source} sidecar holds no training state (keys: {', '.join(sorted(map(str, data))[:8])})",
            path=p, hint="expected {'optimizer': ..., 'epoch': ...} or a History.history dict")
    return TrainingState(optimizer=optimizer, progress=Progress(epoch=epoch), history=history,
                         producer=producer, metric_names=tuple(history))


def _legacy_int(value: Any, what: str, p: Path, top: int = MAX_COUNT) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        shown = value if not isinstance(value, (float, int)) or abs(value) < 1e30 else "an absurd number"
        raise CorruptCheckpointError(f"{what} should be a non-negative integer, found {shown!r}", path=p,
                                     hint="the sidecar is damaged or not a training sidecar")
    problem = count_problem(int(value), what, top)
    if problem:
        raise CorruptCheckpointError(problem, path=p, hint="the sidecar is damaged or edited")
    return int(value)


def _is_history(data: dict[Any, Any]) -> bool:
    return bool(data) and all(isinstance(k, str) and isinstance(v, (list, tuple, np.ndarray))
                              and all(_is_number(x) for x in v) for k, v in data.items())


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _legacy_history(data: dict[Any, Any], p: Path) -> dict[str, list[float]]:
    if not _is_history(data):
        raise UnsupportedFormatError("history is not a dict of metric name -> list of numbers", path=p)
    try:
        return {str(k): [float(x) for x in v] for k, v in data.items()}
    except OverflowError as exc:  # an integer beyond float range
        raise CorruptCheckpointError("history holds a number too large for a float", path=p,
                                     hint="the sidecar is damaged or hostile") from exc


def _legacy_optimizer(raw: Any, p: Path) -> OptimizerState:
    if not isinstance(raw, dict):
        raise UnsupportedFormatError(f"'optimizer' is a {type(raw).__name__}, expected get_config() dict",
                                     path=p, hint="the sidecar should store optimizer.get_config()")
    config = raw
    class_name = raw.get("name")
    if isinstance(raw.get("class_name"), str) and isinstance(raw.get("config"), dict):
        class_name, config = raw["class_name"], raw["config"]
    if isinstance(class_name, str) and class_name.startswith("Custom>"):
        class_name = class_name[len("Custom>"):]
    if not isinstance(class_name, str) or not class_name:
        log.warning("%s: optimizer config has no class name; recorded as 'unknown'", p)
        class_name = "unknown"
    hyper: dict[str, Any] = {}
    for key, value in config.items():
        if key in _NOT_HYPER:
            continue
        value = value.item() if isinstance(value, np.generic) else value
        hyper[_HYPER_ALIASES.get(key, key)] = value
    iterations = config.get("iterations", config.get("iter"))
    return OptimizerState(class_name=canonical_optimizer_class(class_name), hyperparameters=hyper,
                          iterations=_legacy_int(iterations, "optimizer iterations", p),
                          config=to_jsonable(config, "$.optimizer", []))
