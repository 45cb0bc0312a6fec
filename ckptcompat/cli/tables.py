"""What ``ckptcompat ls`` and ``ckptcompat verify`` compute and print (kept out of cli.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError

__all__ = ["Row", "list_rows", "render_ls", "verify_path"]

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
    lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip()]
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

    @property
    def status(self) -> str:
        return "ok" if self.problem is None else "damaged"

    def to_dict(self) -> dict[str, Any]:
        from ckptcompat.formats.sidecar import to_jsonable

        return to_jsonable({"id": self.id, "name": self.name, "path": self.path, "epoch": self.epoch,
                            "step": self.step, "global_step": self.global_step, "format": self.format,
                            "metrics": dict(self.metrics), "status": self.status,
                            "problem": self.problem, "latest": self.latest, "best": self.best,
                            "source": self.source})


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
                        source=c.source))
    return rows


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def render_ls(path: str | os.PathLike[str], rows: list[Row]) -> str:
    """An aligned table, then one line per damaged checkpoint."""
    if not rows:
        return f"no checkpoints in {path}"
    table = [("ID", "NAME", "EPOCH", "STEP", "FORMAT", "STATUS", "MARK", "METRICS")]
    for r in rows:
        marks = ",".join(m for m, on in (("latest", r.latest), ("best", r.best)) if on) or "-"
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())) or "-"
        table.append((r.id, r.name, _show(r.epoch), _show(r.step), _show(r.format), r.status, marks,
                      metrics))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
             for row in table]
    damaged = [r for r in rows if r.problem]
    lines.append(f"{len(rows)} checkpoint(s), {len(damaged)} damaged")
    lines += [f"  damaged {r.name}: {r.problem}" for r in damaged]
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
