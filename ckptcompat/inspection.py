"""``ckptcompat.inspect(path)``: what a checkpoint holds, without any framework.

Reads the checkpoint through :func:`ckptcompat.formats.read` (or, for pickle/JSON files that
are no registry format, :func:`~ckptcompat.formats.sidecar.read_legacy_sidecar`) and
summarises it as a frozen :class:`CheckpointInfo` with ``to_dict()`` (JSON-safe) and
``to_text()`` (aligned, for people).

By default the read is *headers-only* (:func:`ckptcompat.formats._headers.headers_only`):
every tensor's header is checked and described, but no tensor data is read except tiny
scalars (iterations, learning rate), so inspecting a multi-GB file costs milliseconds. The
summary is the same as a full read's. ``tensors=True`` reads every tensor and adds its
sha256 (``VariableInfo.sha256``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._compat import prod
from ckptcompat.errors import CheckpointNotFoundError, IncompatibleStateError, UnsupportedFormatError
from ckptcompat.names.metrics import canonical_metric
from ckptcompat.state import TrainingState

__all__ = ["CheckpointInfo", "OptimizerInfo", "VariableInfo", "LEGACY_SIDECAR", "inspect", "summarize"]

log = logging.getLogger(__name__)

#: ``CheckpointInfo.format`` of files read by ``read_legacy_sidecar`` (not a registry format).
LEGACY_SIDECAR = "legacy_sidecar"
_SIDECAR_SUFFIXES = (".pkl", ".pickle", ".p", ".json")
#: formats whose reader can leave the optimizer out (``include_optimizer=False``)
_OPTIMIZER_OPTIONAL = ("keras_h5", "keras_zip")
_CHECKPOINT_GLOBS = ("*.index", "checkpoint", "*.h5", "*.hdf5", "*.keras", "state.json")


@dataclass(frozen=True)
class VariableInfo:
    """One tensor: canonical name, shape, dtype and kind (``weight``, ``slot`` or ``extra``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "weight"
    sha256: str | None = None  # of the tensor's bytes (C order), with ``inspect(tensors=True)``


@dataclass(frozen=True)
class OptimizerInfo:
    """Optimizer class (canonical), learning rate (``None`` if a schedule), iterations, slots."""

    class_name: str
    learning_rate: float | None = None
    iterations: int | None = None
    slot_count: int = 0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


def _rate_text(opt: OptimizerInfo, show: Any) -> str:
    """The rate, or the schedule in its place (``ExponentialDecay(initial_learning_rate=0.01, ...)``),
    and Keras 2's ``decay`` when the optimizer applies one."""
    from ckptcompat.names.lr_decay import rate_and_schedule, saved_decay

    text = show(opt.learning_rate)
    schedule = rate_and_schedule(opt.hyperparameters).get("learning_rate_schedule")
    if opt.learning_rate is None and isinstance(schedule, Mapping):
        args = schedule.get("config") if isinstance(schedule.get("config"), Mapping) else {}
        text = f"{schedule.get('class_name', '?')}(" + ", ".join(
            f"{k}={show(v)}"
            for k, v in args.items() if k != "name") + ")"
    decay = saved_decay(opt.class_name, None, opt.hyperparameters)
    return f"{text}  decay={show(decay)}" if decay else text


@dataclass(frozen=True)
class CheckpointInfo:
    """A summary of one checkpoint."""

    path: str
    format: str
    framework: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None
    #: where ``global_step`` comes from: "recorded" (the checkpoint says it), "optimizer
    #: iterations" (none recorded: the optimizer's step count), or None (unknown)
    global_step_source: str | None = None
    optimizer: OptimizerInfo | None = None
    variables: tuple[VariableInfo, ...] = ()
    metric_names: tuple[str, ...] = ()
    canonical_metric_names: tuple[str, ...] = ()
    model_class: str | None = None
    #: the ``model.to_json()`` document beside a weights-only ``.h5`` that gives its model config
    #: (the file records none), e.g. ``"model.json"``; None where the file records it or nothing does
    model_config_from: str | None = None
    history_epochs: int = 0
    callbacks: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()   # parts that could not be read ("optimizer")
    problems: tuple[str, ...] = ()     # why, one line each

    @property
    def weight_count(self) -> int:
        """Number of weight tensors (slots and extras not counted)."""
        return sum(1 for v in self.variables if v.kind == "weight")

    @property
    def parameter_count(self) -> int:
        """Number of scalars over all weight tensors."""
        return sum(prod(v.shape) for v in self.variables if v.kind == "weight")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats become tagged objects, see ``to_jsonable``)."""
        from ckptcompat.formats.sidecar import to_jsonable

        opt = self.optimizer
        return to_jsonable({
            "path": self.path,
            "format": self.format,
            "producer": {"framework": self.framework, "versions": dict(self.versions)},
            "progress": {"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                         "global_step_source": self.global_step_source},
            "optimizer": None if opt is None else {
                "class_name": opt.class_name, "learning_rate": opt.learning_rate,
                "iterations": opt.iterations, "slot_count": opt.slot_count,
                "hyperparameters": _plain(opt.hyperparameters)},
            "variables": [_variable_dict(v) for v in self.variables],
            "weight_count": self.weight_count,
            "parameter_count": self.parameter_count,
            "metrics": {"raw": list(self.metric_names), "canonical": list(self.canonical_metric_names)},
            "model_class": self.model_class,
            "model_config_from": self.model_config_from,
            "history_epochs": self.history_epochs,
            "callbacks": list(self.callbacks),
            "unreadable": list(self.unreadable),
            "problems": list(self.problems),
        })

    def to_text(self) -> str:
        """An aligned, human-readable summary."""
        def show(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.6g}"
            return "-" if value is None else str(value)

        versions = ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()))
        producer = show(self.framework) + (f" ({versions})" if versions else "")
        rows: list[tuple[str, str]] = [("path", self.path), ("format", self.format), ("producer", producer)]
        if self.model_class:
            beside = f"  (from {self.model_config_from} beside it; the file records none)" \
                if self.model_config_from else ""
            rows.append(("model", self.model_class + beside))
        global_step = show(self.global_step)
        if self.global_step is not None and self.global_step_source == "optimizer iterations":
            global_step += "  (the optimizer's iterations; none recorded)"
        rows += [("epoch", show(self.epoch)), ("step", show(self.step)), ("global step", global_step)]
        opt = self.optimizer
        rows.append(("optimizer", "-" if opt is None else
                     f"{opt.class_name}  learning_rate={_rate_text(opt, show)}  "
                     f"iterations={show(opt.iterations)}  slots={opt.slot_count}"))
        pairs = [raw if raw == canon else f"{raw} -> {canon}"
                 for raw, canon in zip(self.metric_names, self.canonical_metric_names)]
        rows.append(("metrics", ", ".join(pairs) or "-"))
        if self.history_epochs:
            rows.append(("history", f"{self.history_epochs} epoch(s)"))
        if self.callbacks:
            rows.append(("callbacks", ", ".join(self.callbacks)))
        slots = sum(1 for v in self.variables if v.kind != "weight")
        rows.append(("variables", f"{self.weight_count} weight(s), {self.parameter_count} parameter(s), "
                                  f"{slots} optimizer tensor(s)"))
        if self.unreadable:
            rows.append(("unreadable", ", ".join(self.unreadable)))
        rows += [("problem", p) for p in self.problems]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        if self.variables:
            name_w = max(len(v.name) for v in self.variables)
            shape_w = max(len(str(v.shape)) for v in self.variables)
            for v in self.variables:
                digest = f"  sha256:{v.sha256[:16]}" if v.sha256 else ""
                lines.append(f"  {v.name.ljust(name_w)}  {str(v.shape).ljust(shape_w)}  "
                             f"{v.dtype.ljust(8)}  {v.kind}{digest}")
        return "\n".join(lines)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as plain data (schedules stay dicts; unknown objects become repr)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (int, float, str, bool, dict, list, tuple, type(None))):
            value = repr(value)
        out[str(key)] = value
    return out


def _variable_dict(v: VariableInfo) -> dict[str, Any]:
    out = {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "kind": v.kind}
    if v.sha256 is not None:
        out["sha256"] = v.sha256
    return out


def _sha256(a: Any) -> str:
    import hashlib

    arr = np.ascontiguousarray(a)
    if arr.dtype.kind == "O":
        return hashlib.sha256(repr(arr.tolist()).encode()).hexdigest()
    return hashlib.sha256(arr.reshape(-1).view(np.uint8)).hexdigest()


def _variable(name: str, a: Any, kind: str, digest: bool) -> VariableInfo:
    """One tensor's summary; ``a`` is an array, a scalar or a headers-only ``TensorHeader``."""
    from ckptcompat.formats._headers import TensorHeader

    is_header = isinstance(a, TensorHeader)
    dtype = a.dtype if isinstance(a, (np.ndarray, np.generic)) or is_header else np.asarray(a).dtype
    return VariableInfo(name, tuple(int(d) for d in np.shape(a)), str(dtype), kind,
                        _sha256(a) if digest and not is_header else None)


def _variables(state: TrainingState, digest: bool = False) -> tuple[VariableInfo, ...]:
    out = [_variable(name, a, "weight", digest) for name, a in state.weights.items()]
    if state.optimizer is not None:
        for var, per_var in state.optimizer.slots.items():
            out += [_variable(f"optimizer/{var}/{slot}", a, "slot", digest) for slot, a in per_var.items()]
        out += [_variable(f"optimizer/{name}", a, "extra", digest) for name, a in state.optimizer.extra.items()]
    return tuple(out)


def summarize(state: TrainingState, *, path: str | os.PathLike[str], format: str,
              checksums: bool = False, model_config_from: str | os.PathLike[str] | None = None) -> CheckpointInfo:
    """Build a :class:`CheckpointInfo` from an already-read state (``checksums``: sha256 of
    every tensor; ``model_config_from``: the document beside the file that gave its model config)."""
    opt = state.optimizer
    names = tuple(state.metric_names) or tuple(state.history)
    global_step, source = state.progress.global_step, "recorded"
    if global_step is None:  # Keras' global step is the optimizer's step count
        global_step = None if opt is None or opt.iterations is None else int(opt.iterations)
        source = None if global_step is None else "optimizer iterations"
    model_class = None
    if isinstance(state.model_config, Mapping):
        model_class = state.model_config.get("class_name")
    return CheckpointInfo(
        path=str(path),
        format=format,
        framework=state.producer.framework,
        versions=dict(state.producer.versions),
        epoch=state.progress.epoch,
        step=state.progress.step,
        global_step=global_step,
        global_step_source=source,
        optimizer=None if opt is None else OptimizerInfo(
            class_name=opt.class_name, learning_rate=opt.learning_rate, iterations=opt.iterations,
            slot_count=opt.slot_count, hyperparameters=dict(opt.hyperparameters)),
        variables=_variables(state, checksums),
        metric_names=names,
        canonical_metric_names=tuple(canonical_metric(n) for n in names),
        model_class=model_class if isinstance(model_class, str) else None,
        model_config_from=None if model_config_from is None else Path(model_config_from).name,
        history_epochs=max((len(v) for v in state.history.values()), default=0),
        callbacks=tuple(sorted(state.callbacks)),
    )


def _looks_like_sidecar(p: Path) -> bool:
    from ckptcompat.formats.safe_pickle import looks_like_pickle

    if not p.is_file():
        return False
    if p.suffix.lower() in _SIDECAR_SUFFIXES:
        return True
    try:
        with p.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return looks_like_pickle(head) or head.lstrip()[:1] in (b"{", b"[")


def _directory_hint(p: Path) -> str:
    found = sorted({c.name for g in _CHECKPOINT_GLOBS for c in p.glob(g)}
                   | {f"{c.parent.name}/" for c in p.glob("*/saved_model.pb")})[:8]  # SavedModel folders
    listing = f" (found: {', '.join(found)})" if found else ""
    return ("inspect one checkpoint file inside it" + listing +
            "; whole checkpoint directories are handled by ckptcompat.resume")


def _read(p: Path, name: str, tensors: bool, **options: Any) -> tuple[TrainingState, Path | None]:
    """A full read (``tensors``) or a headers-only one (tensors described, not read), and the
    ``model.to_json()`` document beside a weights-only ``.h5`` that gave its model config."""
    from ckptcompat import formats
    from ckptcompat.formats._headers import headers_only
    from ckptcompat.formats.keras_h5 import NAME as KERAS_H5
    from ckptcompat.formats.keras_h5.architecture_file import with_architecture

    with contextlib.nullcontext() if tensors else headers_only():
        state = formats.read(p, format=name, **options)
        return with_architecture(state, p) if name == KERAS_H5 else (state, None)


def inspect(path: str | os.PathLike[str], *, tensors: bool = False) -> CheckpointInfo:
    """Summarise the checkpoint at ``path`` (file, TF bundle prefix or TF bundle directory).

    Headers only by default: no tensor data is read (every header is still checked against
    the file). ``tensors=True`` reads every tensor and records its sha256.

    When only the optimizer part does not fit (a layout no rule describes), the rest is still
    reported: ``unreadable`` names the part, ``problems`` says why.

    Raises :class:`CheckpointNotFoundError` for a missing path or an empty directory,
    :class:`UnsupportedFormatError` for files/directories of no known format, and whatever
    typed error the format reader raises for damaged files.
    """
    from ckptcompat import formats
    from ckptcompat.store.local_view import localize

    p = localize(path)  # an fsspec URL: a local copy
    if p.is_dir() and not any(p.iterdir()):
        raise CheckpointNotFoundError("empty directory: no checkpoint in it", path=p,
                                      hint="point at a checkpoint file or a folder that holds one")
    try:
        name = formats.detect(p)
    except UnsupportedFormatError as exc:
        if p.is_dir():
            raise UnsupportedFormatError("directory is not a TensorFlow checkpoint bundle", path=p,
                                         hint=_directory_hint(p)) from exc
        if not _looks_like_sidecar(p):
            raise
        from ckptcompat.formats.sidecar import read_legacy_sidecar

        log.debug("%s: no registry format; reading as a legacy sidecar", p)
        return summarize(read_legacy_sidecar(p), path=p, format=LEGACY_SIDECAR, checksums=tensors)
    try:
        state, document = _read(p, name, tensors)
    except IncompatibleStateError as exc:
        if name not in _OPTIMIZER_OPTIONAL:
            raise
        # the weights may still be readable: report them and say what is not
        state, document = _read(p, name, tensors, include_optimizer=False)
        log.warning("%s: the optimizer part cannot be read (%s); reporting the rest", p,
                    exc.message.splitlines()[0])
        info = summarize(state, path=p, format=name, checksums=tensors, model_config_from=document)
        return dataclasses.replace(info, unreadable=("optimizer",),
                                   problems=tuple(f"optimizer: {m}" for m in (exc.mismatches or [exc.message])))
    return summarize(state, path=p, format=name, checksums=tensors, model_config_from=document)
