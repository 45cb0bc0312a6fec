"""ckptcompat's own ``state.json`` and read-only safe readers for legacy sidecars.

``state.json`` is a versioned JSON document holding everything of a
:class:`~ckptcompat.state.TrainingState` that is not a tensor: progress, history, callback
states, RNG state, producer, optimizer class / hyper-parameters / iterations and metric
names. Tensors (weights, optimizer slots) live in the weights file written next to it.

Values JSON cannot hold are written as tagged objects: non-finite floats as
``{"__float__": "nan"|"inf"|"-inf"}``, small numpy arrays (RNG states) as
``{"__ndarray__": {"dtype", "shape", "data"}}``, bytes as ``{"__bytes__": <base64>}``.

:func:`read_legacy_sidecar` reads what people write next to their ``.h5`` files (pickled
optimizer configs and epochs, ``History.history`` dicts, ``model.to_json()`` files) without
executing anything; the readers live in :mod:`ckptcompat.formats.legacy_sidecar`.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._atomic import atomic_write
from ckptcompat import _bounded
from ckptcompat._plausible import MAX_COUNT, MAX_EPOCH, count_problem
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    IncompatibleStateError,
    UnsupportedFormatError,
)
from ckptcompat.formats import Peek, WrittenFiles
from ckptcompat.names.variables import LOSS_SCALE_CONFIG, LOSS_SCALE_CURRENT, LOSS_SCALE_GOOD_STEPS
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState

__all__ = ["NAME", "name", "SCHEMA_KEY", "SCHEMA_VERSION", "MAX_BYTES", "sniff", "peek", "read", "write", "files",
           "read_legacy_sidecar", "to_jsonable", "from_jsonable"]

log = logging.getLogger(__name__)

NAME = "state_json"
name = NAME  # the Format protocol's attribute
SCHEMA_KEY = "ckptcompat_state"
SCHEMA_VERSION = 1
MAX_BYTES = 64 * 1024 * 1024


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
            "iterations": opt.iterations, "config": opt.config,
            **({"loss_scale": _loss_scale_doc(opt.extra)}
               if LOSS_SCALE_CURRENT in opt.extra or LOSS_SCALE_CONFIG + "dynamic" in opt.extra else {}),
            **({"non_slot": _non_slot_doc(opt.extra)} if set(_NON_SLOT_KEYS) & set(opt.extra) else {})},
        "metric_names": list(state.metric_names),
    }
    doc = to_jsonable(doc, "$", problems)
    if problems:
        raise IncompatibleStateError("the state has values that cannot be stored in state.json",
                                     problems, hint="keep callback and RNG states to plain data")
    return doc


def _loss_scale_doc(extra: Mapping[str, Any]) -> dict[str, Any]:
    """A loss-scale wrapper's state and settings (``extra`` keys without their prefix): kept in
    state.json too, because not every model file has a place for it (Keras 2 ``.h5``)."""
    keys = [LOSS_SCALE_CURRENT, LOSS_SCALE_GOOD_STEPS, *(k for k in extra if k.startswith(LOSS_SCALE_CONFIG))]
    return {k: np.asarray(extra[k]).item() for k in keys if k in extra}


#: scalar non-slot optimizer variables (Nadam's momentum-cache product), kept in state.json
#: because the Keras 2 ``.h5`` layout has no place for them
_NON_SLOT_KEYS = ("u_product",)


def _finite(value: float) -> bool:
    """``math.isfinite`` that also answers for integers too large for a float (False)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _non_slot_doc(extra: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(np.asarray(extra[k]).item()) for k in _NON_SLOT_KEYS
            if k in extra and np.asarray(extra[k]).size == 1}


def _non_slot_extra(doc: Any, p: Path) -> dict[str, np.ndarray]:
    """``OptimizerState.extra`` entries back from :func:`_non_slot_doc` (checked: finite numbers)."""
    if not isinstance(doc, Mapping):
        return {}
    out = {}
    for key in _NON_SLOT_KEYS:
        value = doc.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise CorruptCheckpointError(f"optimizer.non_slot.{key} is not a finite number", path=p,
                                         hint="the file is damaged or was edited by hand")
        out[key] = np.asarray(value, dtype=np.float32)
    return out


def _loss_scale_extra(doc: Any, p: Path) -> dict[str, np.ndarray]:
    """``OptimizerState.extra`` entries back from :func:`_loss_scale_doc` (checked: finite numbers)."""
    if not isinstance(doc, Mapping):
        return {}
    out = {}
    for key, value in doc.items():
        if not (isinstance(key, str) and key.startswith(("loss_scale/", LOSS_SCALE_CONFIG))):
            continue
        if not isinstance(value, bool) and (not isinstance(value, (int, float)) or not _finite(value)):
            raise CorruptCheckpointError(f"optimizer.loss_scale.{key} is not a finite number", path=p)
        out[key] = np.asarray(value)
    return out


def write(path: str | os.PathLike[str], state: TrainingState, **options: Any) -> WrittenFiles:
    """Write the non-tensor part of ``state`` to ``path`` atomically and verify it; ``[path]``.

    Weights and optimizer slots are *not* written here: they belong in the weights file.
    """
    if options:
        raise TypeError(f"unexpected options for {NAME}: {sorted(options)}")
    p = Path(path)
    doc = _document(state)
    text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    p.parent.mkdir(parents=True, exist_ok=True)

    def check(tmp: Path) -> None:
        if json.loads(tmp.read_text(encoding="utf-8")) != doc:
            raise CorruptCheckpointError("read-back differs from what was written", path=tmp,
                                         hint="the disk or file system is failing")

    atomic_write(p, text, check=check)
    log.debug("wrote %s (%d bytes)", p, len(text))
    return WrittenFiles([p])


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


def peek(path: str | os.PathLike[str]) -> Peek:
    """Progress, producer and optimizer class/iterations (the document is small: read whole)."""
    state = read(path)
    opt = state.optimizer
    return Peek(format=NAME, path=Path(path), kind="state", producer=state.producer,
                epoch=state.progress.epoch, step=state.progress.step,
                global_step=state.progress.global_step, optimizer=None if opt is None else opt.class_name,
                iterations=None if opt is None else opt.iterations, variables=())


def files(path: str | os.PathLike[str]) -> list[Path]:
    """``[path]`` when it exists, else ``[]``."""
    p = Path(path)
    return [p] if p.exists() or p.is_symlink() else []


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
            config=opt_doc.get("config"), extra={**_loss_scale_extra(opt_doc.get("loss_scale"), p),
                                                 **_non_slot_extra(opt_doc.get("non_slot"), p)})
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
    """Read a foreign sidecar (pickle or JSON) into a partial :class:`TrainingState`; see
    :func:`ckptcompat.formats.legacy_sidecar.read_legacy_sidecar`."""
    from ckptcompat.formats import legacy_sidecar

    return legacy_sidecar.read_legacy_sidecar(path, max_bytes=max_bytes)
