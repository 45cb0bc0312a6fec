"""Every real old checkpoint (shared corpus) reads, or raises a typed CkptCompatError.

Checkpoint sets (MANIFEST.tsv ``set_id``) of kinds A-D go through ``ckptcompat.inspect``;
kind E sidecars through ``read_legacy_sidecar``. Skipped when the corpus is absent.
Sets failing because of another module are listed in ``KNOWN_FAILURES`` (strict xfail).
"""

from __future__ import annotations

import csv
import importlib
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import ckptcompat
from ckptcompat.errors import CkptCompatError
from ckptcompat.formats import registry
from ckptcompat.formats.sidecar import read_legacy_sidecar

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "real-checkpoints"

#: set_id -> reason (module at fault) for sets that fail because of another helper's module.
KNOWN_FAILURES: dict[str, str] = {}


@dataclass(frozen=True)
class _Set:
    set_id: str
    kind: str
    folder: Path          # <owner>__<repo>
    members: tuple[str, ...]


def _sets() -> list[_Set]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows: dict[str, list[dict[str, str]]] = {}
    with manifest.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            rows.setdefault(row["set_id"], []).append(row)
    return [_Set(set_id, group[0]["kind"], CORPUS / group[0]["repo"].replace("/", "__"),
                 tuple(r["path"] for r in group))
            for set_id, group in sorted(rows.items())]


SETS = _sets()


def _target(s: _Set) -> Path:
    """The path to read: the file, the bundle prefix, or the folder of a dangling state file."""
    rel = s.set_id.split(":", 1)[1].strip().rstrip(";").strip()
    target = s.folder / rel
    if target.exists() or Path(f"{target}.index").exists():
        return target
    return (s.folder / s.members[0]).parent


def _outcome(s: _Set) -> tuple[str, str]:
    """('read', format) or (error type name, message); untyped exceptions propagate."""
    target = _target(s)
    try:
        if s.kind == "E":
            read_legacy_sidecar(target)
            return "read", "legacy_sidecar"
        return "read", ckptcompat.inspect(target).format
    except CkptCompatError as exc:
        return type(exc).__name__, str(exc)


def test_every_registered_format_module_imports() -> None:
    """A registered format whose module is missing is a bug, not a reason to skip the corpus."""
    for info in registry.FORMATS:
        assert importlib.import_module(info.module).NAME == info.name, info.module


def _param(s: _Set) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[s.set_id])] if s.set_id in KNOWN_FAILURES else []
    return pytest.param(s, id=f"{s.kind}:{s.set_id}", marks=marks)


@pytest.mark.parametrize("s", [_param(s) for s in SETS] or [pytest.param(None, id="no-corpus")])
def test_set_reads_or_raises_typed(real_checkpoints: Path, s: _Set | None) -> None:
    if s is None:
        pytest.skip("MANIFEST.tsv lists no sets")
    try:
        kind, detail = _outcome(s)
    except Exception as exc:  # noqa: BLE001 -- the point: name the untyped failure precisely
        pytest.fail(f"{s.set_id}: untyped {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    assert kind == "read" or detail, f"{kind} without a message"
    if kind != "read":
        assert str(s.folder) in detail, f"error does not name the path: {detail}"


def test_summary(real_checkpoints: Path) -> None:
    """Print how many sets read and how many raised each typed error (and fail on untyped ones)."""
    counts: Counter[str] = Counter()
    untyped: list[str] = []
    for s in SETS:
        if s.set_id in KNOWN_FAILURES:
            counts["known failure (xfail)"] += 1
            continue
        try:
            kind, _ = _outcome(s)
        except Exception as exc:  # noqa: BLE001
            untyped.append(f"{s.set_id}: {type(exc).__name__}: {exc}")
            continue
        counts[kind] += 1
    read = counts.pop("read", 0)
    lines = [f"real checkpoints: {len(SETS)} sets; read {read}"]
    lines += [f"  {name}: {n}" for name, n in sorted(counts.items())]
    print("\n".join(lines))
    assert not untyped, "untyped failures:\n" + "\n".join(untyped)
    assert SETS and sum(counts.values()) + read == len(SETS), "not every set was checked"
