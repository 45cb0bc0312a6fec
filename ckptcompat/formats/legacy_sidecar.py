"""Read-only safe readers for legacy sidecars: what people write next to their ``.h5`` files.

Pickled ``{"optimizer": optimizer.get_config(), "epoch": epoch}`` dicts, pickled or JSON
``History.history`` dicts, ``model.to_json()`` files -- read through
:mod:`ckptcompat.formats.safe_pickle`, never executing anything, into a partial ``TrainingState``.
Not a registry format: nothing here is detected by markers or written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat import _bounded
from ckptcompat._plausible import MAX_COUNT, MAX_EPOCH, count_problem
from ckptcompat.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats.safe_pickle import looks_like_pickle, safe_load
from ckptcompat.formats.sidecar import MAX_BYTES, _load_json, read, sniff, to_jsonable
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState

__all__ = ["read_legacy_sidecar"]

log = logging.getLogger(__name__)

_HYPER_ALIASES = {"lr": "learning_rate"}
_NOT_HYPER = {"name", "class_name", "iterations", "iter"}


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
