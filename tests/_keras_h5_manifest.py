"""Manifest fixtures of format keras_h5 (shared by the keras_h5 tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def manifest_entries(fmt: str = "keras_h5") -> list[tuple[Path, dict[str, Any]]]:
    """(file, entry) for every manifest fixture of ``fmt`` (top-level and per-env manifests)."""
    out: dict[Path, dict[str, Any]] = {}
    for manifest in [FIXTURES / "manifest.json", *sorted(FIXTURES.glob("*/manifest.json"))]:
        if not manifest.is_file():
            continue
        data = json.loads(manifest.read_text())
        for entry in data.get("fixtures", []):
            if entry.get("format") != fmt:
                continue
            for base in (manifest.parent / str(entry.get("producer", "")), manifest.parent):
                candidate = base / entry["path"]
                if candidate.is_file():
                    out.setdefault(candidate.resolve(), entry)
                    break
    return sorted(out.items())
