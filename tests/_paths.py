"""Paths the tests share: the repository root, the committed fixtures, the real-checkpoint corpus."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "FIXTURES", "REAL_CHECKPOINTS", "CORPUS_CASE_PREFIXES", "is_corpus", "cpu_model",
           "COMMITTED_CPU", "load_script"]

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
