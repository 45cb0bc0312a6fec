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


def test_finetuned_table_counts_exact_cells_and_shows_typed_refusals_as_na(tmp_path: Path) -> None:
    _report(tmp_path, "tf212", ["ok"])
    _report(tmp_path, "tf216-keras30", ["ok"])
    results = {"tf212": ["ok (no LoRA here: ...)", "ok (...)", "n/a (no int8 layers in this Keras: X)"],
               "tf216-keras30": ["ok (structure)", "DIFF: slot 1/bias/momentums", "n/a (no int8 layers)"]}
    for consumer, (lora_a, lora_b, int8) in results.items():
        cells = [{"producer": "tf221-keras3", "case": "lora_adam", "file": "model.keras", "result": lora_a},
                 {"producer": "tf221-keras3", "case": "lora_adam", "file": "model.weights.h5", "result": lora_b},
                 {"producer": "tf221-keras3", "case": "int8_adam", "file": "model.keras", "result": int8}]
        (tmp_path / consumer / "report" / "finetuned_table.json").write_text(
            json.dumps({"consumer": consumer, "cells": cells}))
    page = _page_tool().build(tmp_path)
    assert "## Keras 3 LoRA and int8 fine-tuned models" in page
    assert "| `tf221-keras3` | `lora_adam` | 2/2 | 1/2 **FAIL** |" in page
    assert "| `tf221-keras3` | `int8_adam` | n/a | n/a |" in page
