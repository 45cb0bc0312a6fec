"""Find the checkpoints in a file or folder and pick the one to resume from.

::

    from ckptcompat.discovery import find_checkpoints, select
    cands = find_checkpoints("checkpoints/training",
                             pattern="model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5")
    latest = select(cands, "latest", where="checkpoints/training")
    best = select(cands, "best", monitor="val_accuracy")      # any alias spelling
    model_file, initial_epoch = latest.file, latest.epoch

Order is by (epoch, step, global step, TF state-file order, natural name), never by
directory-listing order. ``docs/discovery.md`` has every rule.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptcompat.discovery.names import NameInfo, natural_key, parse_generic, parse_with_pattern, strip_suffix
from ckptcompat.discovery.probe import Probe, probe_bundle, probe_file, probe_saved_model, read_state_json
from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError, InvalidArgumentError
from ckptcompat.names.metrics import canonical_metric, metric_direction

__all__ = ["Candidate", "SOURCES", "find_checkpoints", "select", "find_checkpoint"]

log = logging.getLogger(__name__)

#: where a candidate's epoch came from ("state_file": only the order, from TF's ``checkpoint`` file)
SOURCES = ("manifest", "attributes", "filename", "sidecar", "state_file", "unknown")
_FILE_SUFFIXES = (".h5", ".hdf5", ".hdf", ".keras")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".p")
_STATE_FILE = "checkpoint"
_STORE_MANIFEST = "ckptcompat.json"


@dataclass(frozen=True)
class Candidate:
    """One checkpoint found on disk.

    ``path``: the file, the bundle prefix, or the store checkpoint directory; ``file``: what
    to give :func:`ckptcompat.formats.read` (``path`` itself except for a store
    entry, where it is the main file inside). ``epoch`` = completed epochs (the value for
    ``fit(initial_epoch=...)``), ``step`` = batches into the next epoch (0 at a boundary);
    both ``None`` when unknown. ``metrics`` keep the names as found (``canonical_metrics``
    gives canonical spellings). ``problem`` is set for a damaged or unreadable checkpoint
    (:func:`select` skips those); ``ambiguous`` says why the epoch is only a guess.
    """

    path: Path
    format: str | None
    epoch: int | None
    step: int | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    source: str = "unknown"
    sidecar: Path | None = None
    store_id: int | None = None
    global_step: int | None = None
    problem: str | None = None
    ambiguous: str | None = None
    file: Path | None = None
    state_json: Path | None = None
    state_order: int | None = None
    holds: int = 0  # model config + optimizer 2, one of them 1, else 0 (weights only, or unknown)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return self.problem is None

    @property
    def canonical_metrics(self) -> dict[str, float]:
        """``metrics`` under canonical names (``val_acc`` -> ``val_accuracy``); first spelling wins."""
        out: dict[str, float] = {}
        for key, value in self.metrics.items():
            out.setdefault(canonical_metric(key), value)
        return out

    def metric(self, name: str) -> float | None:
        """The value logged under ``name`` or any alias spelling of it, else ``None``."""
        if name in self.metrics:
            return self.metrics[name]
        return self.canonical_metrics.get(canonical_metric(name))

    @property
    def order_key(self) -> tuple[Any, ...]:
        """Oldest -> newest: unknown epochs first, then (epoch, step, global step, state order, how
        much state the file holds, name): of a full and a weights-only file of one epoch (two
        ``ModelCheckpoint`` callbacks into one folder) the full one is the latest."""
        return (self.epoch is not None, self.epoch or 0, self.step or 0,
                -1 if self.global_step is None else self.global_step,
                -1 if self.state_order is None else self.state_order,
                self.holds if self.epoch is not None else 0, natural_key(self.name), str(self.path))


# ---------------------------------------------------------------- store directories
def _store_main_file(entry: Any) -> Path | None:
    names = sorted(entry.files)
    by_format = {
        "keras_zip": [n for n in names if n.endswith((".keras", ".weights.h5"))],
        "keras_h5": [n for n in names if n.endswith((".h5", ".hdf5")) and not n.endswith(".weights.h5")],
        "tf_bundle": [n[: -len(".index")] for n in names if n.endswith(".index")],
        "state_json": [n for n in names if n.endswith(".json")],
    }
    picks = by_format.get(entry.format or "", [])
    if not picks:
        picks = [n for n in names if not n.endswith(".json") and ".data-" not in n] or names
    return entry.path / picks[0] if picks else None


def _from_store(directory: Path, deep: bool | None, only: str | None = None) -> list[Candidate]:
    from ckptcompat.store import CheckpointStore

    store = CheckpointStore(directory)
    entries = [e for e in store.checkpoints() if only is None or e.name == only]
    if deep is None:  # the caller checks the one it picks (resume time must not grow with the count)
        good = {e.id for e in entries}
    else:
        good = {e.id for e in store.good_checkpoints(deep=deep)} if entries else set()
    out = []
    for e in entries:
        state = next((e.path / n for n in sorted(e.files) if Path(n).name == "state.json"), None)
        out.append(Candidate(
            path=e.path, format=e.format, epoch=e.epoch, step=e.step, metrics=dict(e.metrics),
            source="manifest", store_id=e.id, global_step=e.global_step,
            problem=None if e.id in good else "files do not match the manifest (missing, truncated "
                                              "or changed); see CheckpointStore(...).verify()",
            file=_store_main_file(e), state_json=state))
    return sorted(out, key=lambda c: c.order_key)


# ---------------------------------------------------------------- foreign folders and files
def _sidecar_for(name: str, pickles: Sequence[str]) -> str | None:
    stems = {name, strip_suffix(name)}
    exact = [p for p in pickles if os.path.splitext(p)[0] in stems]
    if exact:
        return exact[0]
    loose = [p for p in pickles for s in stems
             if p.startswith(s) and len(p) > len(s) and p[len(s)] in "-_."]
    return loose[0] if loose else None


def _sidecar_epoch(path: Path, offset: int) -> tuple[int | None, dict[str, float]]:
    from ckptcompat.formats.sidecar import read_legacy_sidecar

    try:
        state = read_legacy_sidecar(path)
    except CkptCompatError as exc:
        log.warning("%s: sidecar not used: %s", path, exc)
        return None, {}
    metrics = {k: v[-1] for k, v in state.history.items() if v}
    epoch = state.progress.epoch
    return (None if epoch is None else epoch + offset), metrics


def _build(path: Path, probe: Probe, *, pattern: str | None, state_json: Path | None,
           sidecar: Path | None, sidecar_offset: int, state_order: int | None,
           name: str | None = None, file: Path | None = None) -> Candidate:
    name = name or path.name
    info: NameInfo | None = parse_with_pattern(name, pattern) if pattern else None
    if info is None:
        info = parse_generic(name, bundle=probe.bundle)
    metrics = dict(info.metrics)
    epoch, step, global_step, source = None, None, info.global_step, "unknown"
    ambiguous = None
    state = read_state_json(state_json) if state_json is not None else None
    if probe.epoch is not None:
        epoch, step, source = probe.epoch, probe.step, "attributes"
        global_step = probe.global_step if probe.global_step is not None else global_step
    elif state is not None and state.progress.epoch is not None:  # type: ignore[attr-defined]
        progress = state.progress  # type: ignore[attr-defined]
        epoch, step, source = progress.epoch, progress.step, "attributes"
        global_step = progress.global_step if progress.global_step is not None else global_step
    elif info.epoch is not None:
        epoch, step, source, ambiguous = info.epoch, info.step, "filename", info.ambiguous
    if state is not None:
        for key, values in state.history.items():  # type: ignore[attr-defined]
            if values:
                metrics[key] = float(values[-1])
    if epoch is None and sidecar is not None:
        side_epoch, side_metrics = _sidecar_epoch(sidecar, sidecar_offset)
        for key, value in side_metrics.items():
            metrics.setdefault(key, value)
        if side_epoch is not None:
            epoch, step, source = side_epoch, 0, "sidecar"
    if epoch is None:
        ambiguous = info.ambiguous
        if state_order is not None:
            source = "state_file"
    problem = probe.problem or _implausible(epoch, step, global_step, source)
    return Candidate(path=path, format=probe.format, epoch=epoch,
                     step=(step or 0) if epoch is not None else None, metrics=metrics,
                     source=source, sidecar=sidecar, global_step=global_step, problem=problem,
                     ambiguous=ambiguous, file=file or path, state_json=state_json,
                     state_order=state_order, holds=probe.holds)


def _implausible(epoch: Any, step: Any, global_step: Any, source: str) -> str | None:
    """A problem line when the progress found (from ``source``) is out of range."""
    from ckptcompat._plausible import progress_problems

    found = progress_problems(epoch, step, global_step)
    return f"implausible progress (from the {source}): {'; '.join(found)}" if found else None


def _scan_folder(directory: Path, pattern: str | None, offset: int) -> list[Candidate]:
    names = sorted(os.listdir(directory))
    present = set(names)
    pickles = [n for n in names if n.lower().endswith(_PICKLE_SUFFIXES)]
    lone_state = directory / "state.json" if "state.json" in present else None
    found: list[tuple[Path, str, Probe, Path]] = []  # (path, name, probe, file)
    prefixes = sorted({n[: -len(".index")] for n in names if n.endswith(".index")}
                      | {n.split(".data-")[0] for n in names if ".data-" in n and "-of-" in n})
    for prefix in prefixes:
        found.append((directory / prefix, prefix, probe_bundle(directory / prefix), directory / prefix))
    for n in names:
        p = directory / n
        lower = n.lower()
        if p.is_dir():
            if (p / "saved_model.pb").is_file():  # a SavedModel folder (ModelCheckpoint "model-{epoch:02d}")
                found.append((p, n, probe_saved_model(p), p))
            elif n.endswith("_temp") or n.startswith(".tmp"):
                log.info("%s: ignoring %s (left by an interrupted save)", directory, n)
            continue
        if n in prefixes or n.endswith(".index") or ".data-" in n:
            continue
        if lower.endswith(_FILE_SUFFIXES) or (lower.endswith(".ckpt") and n[:-5] not in prefixes):
            found.append((p, n, probe_file(p), p))
        elif n != _STATE_FILE and not lower.endswith((".json", ".meta", *_PICKLE_SUFFIXES)):
            log.debug("%s: %s is not a checkpoint; ignored", directory, n)
    out = []
    for path, name, probe, file in found:
        stem = strip_suffix(name)
        state_json = next((directory / s for s in (f"{stem}.state.json", f"{name}.state.json")
                           if s in present), None)
        if state_json is None and lone_state is not None and len(found) == 1:
            state_json = lone_state
        side = _sidecar_for(name, pickles)
        out.append(_build(path, probe, pattern=pattern, state_json=state_json,
                          sidecar=directory / side if side else None, sidecar_offset=offset,
                          state_order=probe.state_order, name=name, file=file))
    return out


def find_checkpoints(path: str | os.PathLike[str], *, pattern: str | None = None,
                     sidecar_epoch_offset: int = 1, deep: bool | None = True) -> list[Candidate]:
    """Every checkpoint at ``path`` (a file, bundle prefix, folder or ckptcompat store), oldest first.

    ``pattern``: the ``ModelCheckpoint`` file-path template used (only its last component
    counts); names that do not match it fall back to the generic rules.
    ``sidecar_epoch_offset``: added to the ``epoch`` stored in a pickle sidecar (default 1:
    such sidecars store the 0-based index ``on_epoch_end`` received). ``deep``: verify store
    checksums (``False`` compares sizes only, ``None`` checks nothing: for a caller that
    verifies the one checkpoint it picks). Damaged checkpoints are returned with
    ``problem`` set and logged; a missing ``path`` raises :class:`CheckpointNotFoundError`.
    An fsspec URL is read from a local copy (:func:`ckptcompat.store.local_view.localize`).
    """
    from ckptcompat.store.local_view import localize

    p = localize(path, lazy=deep is None)  # deep=None: the caller fetches the one it picks
    if p.is_dir() and (p / "saved_model.pb").is_file():  # one SavedModel folder
        found = [_build(p, probe_saved_model(p), pattern=pattern, state_json=None, sidecar=None,
                        sidecar_offset=sidecar_epoch_offset, state_order=None)]
    elif p.is_dir():
        if (p / _STORE_MANIFEST).exists() or (p / f"{_STORE_MANIFEST}.bak").exists():
            found = _from_store(p, deep)
        elif (p.parent / _STORE_MANIFEST).is_file() and p.name.startswith("ckpt-"):
            found = _from_store(p.parent, deep, only=p.name)
        else:
            found = _scan_folder(p, pattern, sidecar_epoch_offset)
    elif p.is_file() or Path(f"{p}.index").is_file():
        if p.name == _STATE_FILE:
            return find_checkpoints(p.parent, pattern=pattern, sidecar_epoch_offset=sidecar_epoch_offset)
        for end in (".index", ".meta"):
            if p.name.endswith(end) and Path(f"{str(p)[: -len(end)]}.index").is_file():
                p = p.with_name(p.name[: -len(end)])
        if ".data-" in p.name and "-of-" in p.name:
            p = p.with_name(p.name.split(".data-")[0])
        folder = p.parent
        names = sorted(os.listdir(folder))
        is_bundle = Path(f"{p}.index").is_file()
        probe = probe_bundle(p) if is_bundle else probe_file(p)
        stem = strip_suffix(p.name)
        state_json = next((folder / s for s in (f"{stem}.state.json", f"{p.name}.state.json")
                           if s in names), None)
        side = _sidecar_for(p.name, [n for n in names if n.lower().endswith(_PICKLE_SUFFIXES)])
        found = [_build(p, probe, pattern=pattern, state_json=state_json,
                        sidecar=folder / side if side else None, sidecar_offset=sidecar_epoch_offset,
                        state_order=probe.state_order)]
    else:
        raise CheckpointNotFoundError("no such file, folder or bundle prefix", path=p,
                                      hint="check the path (for a TF bundle give the prefix or its folder)")
    for cand in found:
        if cand.problem:
            log.warning("%s: damaged or unreadable checkpoint: %s", cand.path, cand.problem)
    return sorted(found, key=lambda c: c.order_key)


# ---------------------------------------------------------------- choosing one
def select(candidates: Sequence[Candidate], which: str = "latest", *, monitor: str | None = None,
           mode: str | None = None, where: str | os.PathLike[str] | None = None) -> Candidate:
    """The candidate to resume from: ``"latest"`` (highest epoch, step, ...) or ``"best"``.

    Damaged candidates (``problem`` set) are skipped with a warning. ``best`` needs
    ``monitor`` (any alias spelling: ``val_acc`` finds ``val_accuracy``); ``mode`` defaults
    to the metric's known direction, else :class:`InvalidArgumentError`. Candidates that did
    not log the metric, or logged NaN, never count; equal values go to the newer one (names
    round values, and ``save_best_only`` writes a new file only on improvement).
    Nothing to choose raises :class:`CheckpointNotFoundError` saying what and where.
    """
    if which not in ("latest", "best"):
        raise InvalidArgumentError(f"which={which!r} is not 'latest' or 'best'")
    where_text = f" in {where}" if where is not None else ""
    usable = []
    for cand in sorted(candidates, key=lambda c: c.order_key):
        if cand.problem:
            log.warning("skipping damaged checkpoint %s: %s", cand.path, cand.problem)
        else:
            usable.append(cand)
    if not usable:
        what = f"{len(candidates)} found, all damaged" if candidates else "none found"
        raise CheckpointNotFoundError(f"no usable checkpoint{where_text} ({what})", path=where,
                                      hint="check the folder; damaged ones are listed in the log")
    if which == "latest":
        return usable[-1]
    if monitor is None:
        raise InvalidArgumentError("select(..., 'best') needs monitor=<metric name>",
                                   hint="e.g. monitor='val_loss'")
    if mode is None:
        mode = metric_direction(monitor)
        if mode is None:
            raise InvalidArgumentError(f"the direction of metric {monitor!r} is not known",
                                       hint="pass mode='min' or mode='max'")
    if mode not in ("min", "max"):
        raise InvalidArgumentError(f"mode={mode!r} is not 'min' or 'max'")
    metric_of = ((c.metric(monitor), c) for c in usable)
    scored = [(v, c) for v, c in metric_of if v is not None and not math.isnan(v)]
    if not scored:
        seen = sorted({k for c in usable for k in c.metrics})
        raise CheckpointNotFoundError(
            f"no checkpoint{where_text} recorded metric {monitor!r} (or an alias of it); "
            f"recorded: {', '.join(seen) or 'no metrics'}", path=where,
            hint="pass the ModelCheckpoint filepath template as pattern=..., or use 'latest'")
    best_value, best = scored[0]
    for value, cand in scored[1:]:
        if (value <= best_value) if mode == "min" else (value >= best_value):
            best_value, best = value, cand
    return best


def find_checkpoint(path: str | os.PathLike[str], which: str = "latest", *, pattern: str | None = None,
                    monitor: str | None = None, mode: str | None = None,
                    sidecar_epoch_offset: int = 1) -> Candidate:
    """:func:`find_checkpoints` then :func:`select` in one call."""
    cands = find_checkpoints(path, pattern=pattern, sidecar_epoch_offset=sidecar_epoch_offset)
    return select(cands, which, monitor=monitor, mode=mode, where=path)
