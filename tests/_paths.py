"""Paths the tests share: the repository root, the committed fixtures, the real-checkpoint corpus."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "FIXTURES", "REAL_CHECKPOINTS", "CORPUS_CASE_PREFIXES", "is_corpus", "cpu_model",
           "cpu_isa", "COMMITTED_CPU", "load_script", "corpus_truths",
           "write_cell_report"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_CHECKPOINTS = ROOT.parent / "shared" / "real-checkpoints"

#: cases of the generated corpus (every optimizer ``opt_*``, every layer class ``zoo_rank*``):
#: the resume table and the format manifest tests cover them (with their reviewed gaps); tests
#: written for the core cases (writers, runtime capture, damage) leave them out
CORPUS_CASE_PREFIXES = ("opt_", "rate_", "zoo_rank")


def is_corpus(entry: dict) -> bool:  # type: ignore[type-arg]
    """Whether a fixture manifest entry (or a path inside fixtures/) belongs to the generated corpus."""
    case = entry.get("case") if isinstance(entry, dict) else None
    if case is None:
        parts = str(entry.get("path", "") if isinstance(entry, dict) else entry).split("/")
        case = parts[1] if len(parts) > 1 else ""
    return str(case).startswith(CORPUS_CASE_PREFIXES)


#: the CPU model the committed fixtures' values come from
COMMITTED_CPU = (FIXTURES / "CPU").read_text().strip()


def load_script(path: Path, name: str) -> ModuleType:
    """Import the script at ``path`` (a tool or generator outside the package) as module ``name``
    (registered in sys.modules: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: this machine's CPU model name (float results of the generators may differ between CPUs): the
#: generators' own helper, so that a committed entry's ``cpu`` and the tests' check agree
cpu_model = load_script(FIXTURES / "_truth.py", "_truth").cpu_model
cpu_isa = load_script(FIXTURES / "_truth.py", "_truth").cpu_isa


def corpus_truths(folder: str) -> list[tuple[str, Path, dict]]:  # type: ignore[type-arg]
    """(producer, its ``folder`` (``subclassed``, ``finetuned``), the folder's truth.json) of every
    corpus this matrix run generated ($CKPTCOMPAT_FRESH_CORPORA) and of the committed ones
    (``fixtures/<env>/<folder>``) of the producers it did not regenerate."""
    import json
    import os

    found: dict[str, Path] = {p.parent.name: p for p in sorted(FIXTURES.glob(f"*/{folder}"))}
    for generated in filter(None, os.environ.get("CKPTCOMPAT_FRESH_CORPORA", "").split(os.pathsep)):
        if (Path(generated) / folder / "truth.json").is_file():
            (env,) = json.loads((Path(generated) / "manifest.json").read_text())["producers"]
            found[env] = Path(generated) / folder
    return [(env, path, json.loads((path / "truth.json").read_text())) for env, path in sorted(found.items())]


def write_cell_report(name: str, cells: list) -> None:  # type: ignore[type-arg]
    """For tools/compat_page.py: a table's cells as ``$CKPTCOMPAT_REPORT_DIR/<name>`` (set by the
    matrix), with the consumer that measured them; nothing outside the matrix."""
    import json
    import os

    folder = os.environ.get("CKPTCOMPAT_REPORT_DIR")
    if folder:
        consumer = os.environ.get("CKPTCOMPAT_MATRIX_ENV") or "here"
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_text(json.dumps({"consumer": consumer, "cells": cells}, indent=1))
