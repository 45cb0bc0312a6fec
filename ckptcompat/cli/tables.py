"""What ``ckptcompat ls`` and ``ckptcompat verify`` compute and print (kept out of cli.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptcompat._compat import removeprefix
from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError

__all__ = ["Row", "list_rows", "nested_stores", "render_ls", "verify_path"]

log = logging.getLogger(__name__)

_MANIFEST = "ckptcompat.json"


def _is_store(p: Path) -> bool:
    return p.is_dir() and ((p / _MANIFEST).exists() or (p / f"{_MANIFEST}.bak").exists())


def _check_single_file(p: Path) -> None:
    """A single file without a checkpoint ending must be of a known format (else an error)."""
    from ckptcompat import formats

    endings = tuple(e for info in formats.FORMATS for e in info.suffixes) + (".hdf",)
    if p.is_file() and p.name != "checkpoint" and not p.name.lower().endswith(endings):
        formats.detect(p)


def _one_line(exc: BaseException) -> str:
    lines = [removeprefix(line.strip(), "- ") for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)


@dataclass(frozen=True)
class Row:
    """One line of ``ckptcompat ls``."""

    id: str
    name: str
    path: str
    epoch: int | None
    step: int | None
    global_step: int | None
    format: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    problem: str | None = None
    latest: bool = False
    best: bool = False
    source: str = "unknown"
    unnamed: tuple[float, ...] = ()   # decimal numbers of the file name no metric name labels
    kind: str = "checkpoint"          # or "store": a ckptcompat store in a subfolder (its latest)
    checkpoints: int | None = None    # kind "store": how many checkpoints it lists

    @property
    def status(self) -> str:
        return "ok" if self.problem is None else "damaged"

    def to_dict(self) -> dict[str, Any]:
        from ckptcompat.formats.sidecar import to_jsonable

        return to_jsonable({"id": self.id, "name": self.name, "path": self.path, "epoch": self.epoch,
                            "step": self.step, "global_step": self.global_step, "format": self.format,
                            "metrics": dict(self.metrics), "status": self.status,
                            "problem": self.problem, "latest": self.latest, "best": self.best,
                            "source": self.source, "unnamed_values": list(self.unnamed),
                            "kind": self.kind, "checkpoints": self.checkpoints})


def _default_monitor(path: Path, cands: list[Any]) -> tuple[str | None, str | None]:
    if _is_store(path):
        from ckptcompat.store import CheckpointStore

        store = CheckpointStore(path)
        if store.monitor:
            return store.monitor, store.mode
    for name in ("val_loss", "loss"):
        if any(c.metric(name) is not None for c in cands):
            return name, "min"
    return None, None


def list_rows(path: str | os.PathLike[str], *, monitor: str | None = None, mode: str | None = None,
              pattern: str | None = None) -> list[Row]:
    """The checkpoints at ``path``, oldest first, with latest/best marks."""
    from ckptcompat.discovery import find_checkpoints, select
    from ckptcompat.discovery.names import unnamed_values
    from ckptcompat.store.local_view import localize

    p = localize(path)
    _check_single_file(p)
    cands = find_checkpoints(p, pattern=pattern)
    latest = best = None
    if cands:
        try:
            latest = select(cands, "latest")
        except CheckpointNotFoundError:
            latest = None
        if monitor is None:
            monitor, default_mode = _default_monitor(p, cands)
            mode = mode or default_mode
        if monitor is not None:
            try:
                best = select(cands, "best", monitor=monitor, mode=mode)
            except CheckpointNotFoundError as exc:
                log.info("no best checkpoint: %s", exc)
    rows = []
    for i, c in enumerate(cands, 1):
        rows.append(Row(id=str(c.store_id if c.store_id is not None else i), name=c.name, path=str(c.path),
                        epoch=c.epoch, step=c.step, global_step=c.global_step, format=c.format,
                        metrics=dict(c.metrics), problem=c.problem, latest=c is latest, best=c is best,
                        source=c.source,
                        unnamed=() if c.metrics or c.store_id is not None else tuple(unnamed_values(c.name))))
    return rows


_NESTED_DEPTH = 3      # folders below the listed one searched for stores
_NESTED_FOLDERS = 500  # at most this many folders looked at (a home directory stays fast)


def _store_folders(top: Path) -> list[Path]:
    """ckptcompat stores in subfolders of ``top`` (not ``top``), breadth first, sorted; hidden
    folders, SavedModel folders and stores' insides are not searched."""
    found: list[Path] = []
    level, seen = [top], 0
    for _ in range(_NESTED_DEPTH):
        below: list[Path] = []
        for folder in level:
            try:
                children = sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))
            except OSError:
                continue
            for child in children:
                seen += 1
                if seen > _NESTED_FOLDERS:
                    return found
                if _is_store(child):
                    found.append(child)
                elif not (child / "saved_model.pb").exists():
                    below.append(child)
        level = below
    return found


def nested_stores(path: str | os.PathLike[str]) -> list[Row]:
    """One row per ckptcompat store in a subfolder of ``path``: its latest checkpoint's epoch,
    step and metrics, and how many checkpoints it lists (none for a store ``path`` itself)."""
    from ckptcompat.discovery import find_checkpoints, select

    top = Path(path)
    if not top.is_dir() or _is_store(top):
        return []
    rows = []
    for folder in _store_folders(top):
        rel = folder.relative_to(top).as_posix()
        try:
            cands = find_checkpoints(folder, deep=False)
            latest = select(cands, "latest") if cands else None
        except CkptCompatError as exc:
            rows.append(Row(id="-", name=f"{rel}/", path=str(folder), epoch=None, step=None, global_step=None,
                            format="store", problem=_one_line(exc), kind="store", checkpoints=0))
            continue
        damaged = sum(1 for c in cands if c.problem)
        rows.append(Row(id="-", name=f"{rel}/", path=str(folder), epoch=getattr(latest, "epoch", None),
                        step=getattr(latest, "step", None), global_step=getattr(latest, "global_step", None),
                        format="store", metrics=dict(getattr(latest, "metrics", {}) or {}),
                        problem=f"{damaged} damaged checkpoint(s)" if damaged else None, latest=latest is not None,
                        source="store", kind="store", checkpoints=len(cands)))
    return rows


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def _metrics_cell(r: Row) -> str:
    named = [f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())]
    unnamed = [f"?={v:.4g}" for v in r.unnamed]
    return " ".join(named + unnamed) or "-"


def _aligned(table: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return [indent + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
            for row in table]


def render_ls(path: str | os.PathLike[str], rows: list[Row]) -> str:
    """An aligned table, then one line per damaged checkpoint, then the nested stores."""
    stores = [r for r in rows if r.kind == "store"]
    rows = [r for r in rows if r.kind != "store"]
    if not rows and not stores:
        return f"no checkpoints in {path}"
    lines = [f"no checkpoints in {path} itself"] if not rows else []
    if rows:
        table = [("ID", "NAME", "EPOCH", "STEP", "FORMAT", "STATUS", "MARK", "METRICS")]
        for r in rows:
            marks = ",".join(m for m, on in (("latest", r.latest), ("best", r.best)) if on) or "-"
            table.append((r.id, r.name, _show(r.epoch), _show(r.step), _show(r.format), r.status, marks,
                          _metrics_cell(r)))
        lines += _aligned(table)
        damaged = [r for r in rows if r.problem]
        lines.append(f"{len(rows)} checkpoint(s), {len(damaged)} damaged")
        lines += [f"  damaged {r.name}: {r.problem}" for r in damaged]
        if any(r.unnamed for r in rows):
            lines.append("  ?=: a number in the file name without a metric name (--pattern names it)")
    if stores:
        lines.append(f"{len(stores)} ckptcompat store(s) in subfolders (ckptcompat ls <store> lists one):")
        table = [("STORE", "CHECKPOINTS", "LATEST EPOCH", "STEP", "STATUS", "METRICS")]
        table += [(r.name, _show(r.checkpoints), _show(r.epoch), _show(r.step),
                   "ok" if r.problem is None else r.problem, _metrics_cell(r)) for r in stores]
        lines += _aligned(table, "  ")
    return "\n".join(lines)


def _read_ok(target: Path, label: str, checked: list[tuple[str, str]], problems: list[str]) -> None:
    from ckptcompat import formats

    try:
        fmt = formats.detect(target)
        formats.read(target, format=fmt)
    except CkptCompatError as exc:
        problems.append(f"{label}: {_one_line(exc)}")
    else:
        checked.append((label, fmt))


_PICKLES = (".pkl", ".pickle", ".p")


def _sidecars(cand: Any) -> list[Path]:
    """The legacy sidecars ``read``/``resume`` would read for ``cand``, plus pickles stored in a
    store entry's directory (which ``inspect`` reads as sidecars)."""
    found = [Path(cand.sidecar)] if cand.sidecar is not None else []
    if cand.store_id is not None and Path(cand.path).is_dir():
        found += sorted(p for p in Path(cand.path).rglob("*")
                        if p.suffix.lower() in _PICKLES and p.is_file() and p not in found)
    return found


def _sidecar_ok(side: Path, label: str, problems: list[str]) -> None:
    """Read ``side`` as ``read``/``inspect`` would (restricted unpickler, bounded JSON): a
    sidecar they refuse (unsafe, damaged) is a problem, not an "ok"."""
    from ckptcompat.formats.sidecar import read_legacy_sidecar

    try:
        read_legacy_sidecar(side)
    except CkptCompatError as exc:
        problems.append(f"{label}: sidecar {side.name}: {type(exc).__name__}: {_one_line(exc)}")


def verify_path(path: str | os.PathLike[str], *, deep: bool = True,
                read: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """Check ``path`` (store, folder, file); return (readable ``(label, format)``, problem lines).

    Raises :class:`CheckpointNotFoundError` when there is nothing to check and
    :class:`UnsupportedFormatError` for a single file of no known format.
    """
    from ckptcompat.discovery import find_checkpoints
    from ckptcompat.store.local_view import localize

    p = localize(path)
    if not p.exists() and not Path(f"{p}.index").exists():
        raise CheckpointNotFoundError("no such file, folder or bundle prefix", path=p,
                                      hint="check the path")
    checked: list[tuple[str, str]] = []
    problems: list[str] = []
    damaged: set[int] = set()
    if _is_store(p):
        from ckptcompat.store import verify

        report = verify(p, deep=deep)
        problems += [str(pr) for pr in report.problems]
        problems += [f"suggestion: {s}" for s in report.suggestions if report.problems]
        if report.kinds() & {"manifest-corrupt", "manifest-missing"}:
            return checked, problems
        damaged = set(report.damaged)
    else:
        _check_single_file(p)  # a file of no known format is an error, not a "problem"
    cands = find_checkpoints(p, deep=False)
    if not cands and not _is_store(p):
        raise CheckpointNotFoundError("no checkpoint found", path=p,
                                      hint="give a ckptcompat store, a folder holding checkpoints, "
                                           "or a checkpoint file")
    for c in cands:
        label = c.name if c.store_id is None or c.file is None else f"{c.name}/{c.file.name}"
        if c.store_id is not None and c.store_id in damaged:
            continue  # already listed by the store check
        if c.problem is not None:
            problems.append(f"{label}: {c.problem}")
            continue
        if not read:
            checked.append((label, c.format or "?"))
            continue
        _read_ok(c.file or c.path, label, checked, problems)
        if c.state_json is not None and c.state_json != (c.file or c.path):
            _read_ok(c.state_json, f"{c.name}/{c.state_json.name}", checked, problems)
        for side in _sidecars(c):
            _sidecar_ok(side, label, problems)
    return checked, problems
