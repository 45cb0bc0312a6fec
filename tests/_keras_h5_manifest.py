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


def read_options(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """``keras_h5.read`` options for a manifest file: a Keras 1 ``save_weights`` file records no
    layer classes, so the config of the ``model.h5`` written beside it names them (as the live
    model does for ``resume(path, model=...)``), read without any framework."""
    if entry.get("kind") != "weights" or not str(entry.get("producer", "")).startswith("keras1"):
        return {}
    import h5py

    with h5py.File(path.parent / "model.h5", "r") as h5:
        config = h5.attrs["model_config"]
    return {"config": json.loads(config.decode() if isinstance(config, bytes) else config)}
