"""Fixtures just generated in this environment (by tools/matrix.py) against the committed ones.

tools/matrix.py runs ``fixtures/generate.py --out DIR`` in each environment and sets
$CKPTCOMPAT_GENERATED_FIXTURES=DIR. The fresh run must produce the same cases, formats, tensor
owners, slots, shapes and dtypes as the committed ``fixtures/<env>/manifest.json``; training is
bit-reproducible on CPU (checked on every env), so tensor sha256 values must match too when the
producer versions are the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from _paths import COMMITTED_CPU, cpu_model

pytestmark = pytest.mark.fresh_fixtures

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


def _generated() -> tuple[Path, dict[str, Any]]:
    value = os.environ.get("CKPTCOMPAT_GENERATED_FIXTURES")
    if not value:
        pytest.skip("CKPTCOMPAT_GENERATED_FIXTURES is unset (set by tools/matrix.py after running the generator)")
    folder = Path(value)
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"no generated fixtures in {folder} (generator not run in this environment)")
    return folder, json.loads((folder / "manifest.json").read_text())


def _committed(generated: dict[str, Any]) -> dict[str, Any]:
    (env,) = generated["producers"]
    path = FIXTURES / env / "manifest.json"
    assert path.is_file(), f"environment {env} has no committed fixtures at {path}"
    return json.loads(path.read_text())


def _structure(manifest: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for f in manifest["fixtures"]:
        opt = f["optimizer"] and {k: f["optimizer"][k] for k in ("class", "iterations", "legacy")}
        out[f["path"]] = {
            "format": f["format"], "kind": f["kind"], "case": f["case"], "model_class": f["model_class"],
            "epoch": f["epoch"], "metric_names": sorted(f["metric_names"]), "optimizer": opt,
            "files": sorted(f["files"]),
            "tensors": sorted((t["owner"], t["kind"], str(t["slot"]), tuple(t["shape"]), t["dtype"])
                              for t in f["tensors"]),
        }
    return out


def test_generated_files_match_their_manifest() -> None:
    folder, generated = _generated()
    bad = [rel for f in generated["fixtures"] for rel, digest in f["files"].items()
           if hashlib.sha256((folder / rel).read_bytes()).hexdigest() != digest]
    assert not bad, bad


def test_same_cases_formats_and_tensors_as_committed() -> None:
    _, generated = _generated()
    committed = _committed(generated)
    fresh, golden = _structure(generated), _structure(committed)
    assert sorted(fresh) == sorted(golden)
    diffs = [path for path in golden if fresh[path] != golden[path]]
    assert not diffs, {p: (fresh[p], golden[p]) for p in diffs[:5]}


def test_corpus_written_where_committed() -> None:
    """The generated corpus (opt_*, zoo_rank*) is committed for some environments only; the
    generator writes it exactly there (by default as committed: fixtures/generate.py corpus_mode), and the
    files it leaves out on purpose are the committed ones' (fixtures/README.md)."""
    _, generated = _generated()
    committed = _committed(generated)
    assert ("corpus" in generated) == ("corpus" in committed)
    if "corpus" in committed:
        (env,) = generated["producers"]
        fresh, golden = generated["corpus"][env], committed["corpus"][env]
        for key in ("not_written", "left_out_files"):
            assert fresh.get(key) == golden.get(key), key
        assert fresh["optimizers"]["cases"] == golden["optimizers"]["cases"]
        assert fresh.get("sample") == golden.get("sample")
        if "layers" in golden:
            assert fresh["layers"]["covered"] == golden["layers"]["covered"]


def test_same_tensor_values_as_committed() -> None:
    _, generated = _generated()
    committed = _committed(generated)
    if generated["producers"] != committed["producers"]:
        pytest.skip(f"producer versions differ: {generated['producers']} vs {committed['producers']}")
    here, there = cpu_model(), COMMITTED_CPU
    if here != there and not any(f.get("cpu") == here for f in committed["fixtures"]):
        pytest.skip(f"float results may differ between CPUs: committed values come from {there!r}, "
                    f"this machine is {here!r}")
    # an entry added later on another machine says so ("cpu"); its values compare on that CPU only
    golden = {(f["path"], t["owner"], t["slot"]): t["sha256"] for f in committed["fixtures"]
              if f.get("cpu", there) == here for t in f["tensors"]}
    fresh = {(f["path"], t["owner"], t["slot"]): t["sha256"] for f in generated["fixtures"] for t in f["tensors"]}
    differ = sorted((k for k in golden if fresh.get(k) != golden[k]), key=str)
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:5]}"
    lrs = {f["path"]: f["optimizer"]["learning_rate"] for f in generated["fixtures"] if f["optimizer"]}
    assert lrs == {f["path"]: f["optimizer"]["learning_rate"] for f in committed["fixtures"] if f["optimizer"]}
