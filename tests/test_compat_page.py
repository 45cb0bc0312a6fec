"""tools/compat_page.py renders the matrix's resume tables: ok / total per cell, a reviewed gap
(native Keras fails too) counted apart, anything else FAIL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._paths import ROOT, load_script


def _page_tool() -> Any:
    return load_script(ROOT / "tools" / "compat_page.py", "ckptcompat_compat_page")


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
