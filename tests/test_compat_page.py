"""tools/compat_page.py renders the matrix's resume tables: ok / total per cell, a reviewed gap
(native Keras fails too) counted apart, anything else FAIL."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _page_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ckptcompat_compat_page", ROOT / "tools" / "compat_page.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _report(folder: Path, consumer: str, results: list[str]) -> None:
    (folder / consumer / "report").mkdir(parents=True)
    cells = [{"producer": "p1", "kind": "keras_zip", "path": f"p1/case{i}/model.keras", "result": r}
             for i, r in enumerate(results)]
    (folder / consumer / "report" / "resume_table.json").write_text(
        json.dumps({"consumer": consumer, "versions": "Python 3.11", "cells": cells}))


def test_cells_count_gaps_apart_and_fail_only_on_unreviewed_errors(tmp_path: Path) -> None:
    _report(tmp_path, "tf212", ["ok", "ok", "gap (native load_model fails the same way)"])
    _report(tmp_path, "tf215", ["ok", "ERROR UnsupportedFormatError: x", "n/a (AdamW does not exist)"])
    page = _page_tool().build(tmp_path)
    row = next(line for line in page.splitlines() if line.startswith("| `p1` |"))
    assert row == "| `p1` | `.keras` | 2/2 + 1 gap | 1/2 **FAIL** |"
    assert "- gap (native load_model fails the same way): 1 cell(s)" in page
    assert "- n/a (AdamW does not exist): 1 cell(s)" in page
