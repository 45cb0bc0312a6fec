"""Fixtures just generated in this environment (by tools/matrix.py) against the committed ones.

tools/matrix.py runs ``fixtures/generate.py --fresh --out DIR`` in each environment and sets
$CKPTCOMPAT_GENERATED_FIXTURES=DIR. The fresh run must produce the same cases, formats, tensor
owners, slots, shapes and dtypes as the committed ``fixtures/<env>/manifest.json`` (where only a
sample of the generated corpus is committed, the fresh run writes all of it: the committed files
are then a subset, and the others are the same cases in the release's other formats); training is
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

from _paths import COMMITTED_CPU, CORPUS_CASE_PREFIXES, cpu_isa, cpu_model

pytestmark = pytest.mark.fresh_fixtures

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


#: corpus cases every matrix environment generates but its committed sample may lack (fixtures/README.md:
#: the learning-rate corpus, the layer zoo's ranks without the classes Keras 3 removed): left out of
#: the comparisons with the committed manifests where not committed, checked below
_UNCOMMITTED = ("rate_",)
_UNCOMMITTED_SUFFIX = "_portable"


def _uncommitted(case: str) -> bool:
    return case.startswith(_UNCOMMITTED) or case.endswith(_UNCOMMITTED_SUFFIX)


def _generated() -> tuple[Path, dict[str, Any]]:
    value = os.environ.get("CKPTCOMPAT_GENERATED_FIXTURES")
    if not value:
        pytest.skip("CKPTCOMPAT_GENERATED_FIXTURES is unset (set by tools/matrix.py after running the generator)")
    folder = Path(value)
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"no generated fixtures in {folder} (generator not run in this environment)")
    return folder, json.loads((folder / "manifest.json").read_text())


def _committed(generated: dict[str, Any]) -> dict[str, Any]:
    """The committed manifest of the generated one's producer; of its corpus entries only when
    the fresh run wrote the corpus alone (TF 1.15: ``fixtures/generate.py --add-corpus``, its
    core fixtures come from another environment)."""
    (env,) = generated["producers"]
    path = FIXTURES / env / "manifest.json"
    assert path.is_file(), f"environment {env} has no committed fixtures at {path}"
    committed = json.loads(path.read_text())
    if generated["fixtures"] and all(f["case"].startswith(CORPUS_CASE_PREFIXES) for f in generated["fixtures"]):
        committed["fixtures"] = [f for f in committed["fixtures"] if f["case"].startswith(CORPUS_CASE_PREFIXES)]
    return committed


def _sample(committed: dict[str, Any]) -> bool:
    """Whether the committed manifest holds only a sample of the generated corpus."""
    return any("sample" in part for part in (committed.get("corpus") or {}).values())


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
    golden = _structure(committed)
    fresh = {p: v for p, v in _structure(generated).items() if not _uncommitted(v["case"]) or p in golden}
    if _sample(committed):  # the fresh corpus is whole: every committed file, and the other formats
        extra = sorted(set(fresh) - set(golden))
        assert set(golden) <= set(fresh), sorted(set(golden) - set(fresh))[:10]
        cases = {golden[p]["case"] for p in golden}
        assert all(fresh[p]["case"] in cases for p in extra), [p for p in extra if fresh[p]["case"] not in cases]
        assert all(p.split("/", 1)[0].startswith(CORPUS_CASE_PREFIXES) for p in extra), extra[:10]
    else:
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
        sample = golden.get("sample")
        for key in ("not_written", "left_out_files"):
            if sample:  # what the sample records, bar the formats it leaves out as a sample, holds fresh too
                want = {case: {kind: why for kind, why in kinds.items() if why != sample}
                        for case, kinds in (golden.get(key) or {}).items()}
                got = {case: {kind: why for kind, why in (fresh.get(key) or {}).get(case, {}).items()
                              if kind in want[case]} for case in want}
                assert got == want, key
            else:
                kept = golden.get(key) or {}
                got = {c: k for c, k in (fresh.get(key) or {}).items() if not _uncommitted(c) or c in kept}
                assert got == kept, key
        assert fresh["optimizers"]["cases"] == golden["optimizers"]["cases"]
        assert "sample" not in fresh, "the matrix's fresh run writes the whole corpus (--fresh)"
        if "layers" in golden:
            assert fresh["layers"]["covered"] == golden["layers"]["covered"]


def _writer(producers: dict[str, Any], committed: dict[str, Any]) -> dict[str, Any]:
    """The versions that wrote the files: TensorFlow, tf-keras, flavour, Keras 3's backend and its version
    (jaxlib, torch), and the ``keras``
    distribution unless the committed producer wrote with TF 1.x's own tf.keras (``api``; the
    standalone Keras installed beside it in tf115-py37 writes nothing)."""
    (env, info), (_, golden) = next(iter(producers.items())), next(iter(committed.items()))
    keys = ("tensorflow", "tf_keras", "flavour", "backend", "backend_version") + \
        (() if golden.get("api") == "tf.keras" else ("keras",))
    return {env: {k: info.get(k) for k in keys}}


#: the file kinds the generator tries for every corpus case, by flavour (fixtures/generate.py _save_all)
_KINDS = {"keras2": {"full_model", "weights", "tf_weights", "keras_zip", "weights_h5", "tf_checkpoint"},
          "keras3": {"full_model", "keras_zip", "weights_h5", "tf_checkpoint"}}


def test_fresh_corpus_accounts_for_every_format() -> None:
    """Every corpus case of the fresh run (the whole corpus, also where a sample is committed) holds
    each file kind its flavour writes, or says why not (``not_written``: the release could not;
    ``left_out_files``: the corpus keeps no such file): a format that silently went missing fails."""
    _, generated = _generated()
    (env,) = generated["producers"]
    if "corpus" not in generated:
        pytest.skip(f"{env} commits no corpus")
    info = generated["corpus"][env]
    flavour = generated["producers"][env]["flavour"]
    cases: dict[str, set[str]] = {}
    for f in generated["fixtures"]:
        if f["case"].startswith(CORPUS_CASE_PREFIXES):
            cases.setdefault(f["case"], set()).add(f["kind"])
    assert cases, f"{env}: no corpus case written"
    silent = {case: sorted(_KINDS[flavour] - kinds - set(info["not_written"].get(case, {}))
                           - set(info["left_out_files"].get(case, {})))
              for case, kinds in cases.items()}
    assert not {c: k for c, k in silent.items() if k}, silent


def test_same_tensor_values_as_committed() -> None:
    _, generated = _generated()
    committed = _committed(generated)
    if _writer(generated["producers"], committed["producers"]) != _writer(committed["producers"], committed["producers"]):
        pytest.skip(f"producer versions differ: {generated['producers']} vs {committed['producers']}")
    here, there, isa = cpu_model(), COMMITTED_CPU, cpu_isa()

    def written_here(f: dict[str, Any]) -> bool:  # an entry from another machine says which ("cpu", "isa")
        return f.get("cpu", there) == here and f.get("isa", isa) == isa

    if not any(written_here(f) for f in committed["fixtures"]):
        pytest.skip(f"float results may differ between CPUs: committed values come from {there!r} or "
                    f"{sorted({(f.get('cpu'), f.get('isa')) for f in committed['fixtures'] if 'cpu' in f})}, "
                    f"this machine is {here!r} ({isa})")
    golden = {(f["path"], t["owner"], t["slot"]): t["sha256"] for f in committed["fixtures"]
              if written_here(f) for t in f["tensors"]}
    fresh = {(f["path"], t["owner"], t["slot"]): t["sha256"] for f in generated["fixtures"] for t in f["tensors"]}
    differ = sorted((k for k in golden if fresh.get(k) != golden[k]), key=str)
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:5]}"
    lrs = {f["path"]: f["optimizer"]["learning_rate"] for f in generated["fixtures"] if f["optimizer"]
           and f["path"] in {c["path"] for c in committed["fixtures"]}}
    assert lrs == {f["path"]: f["optimizer"]["learning_rate"] for f in committed["fixtures"] if f["optimizer"]}


def test_learning_rate_corpus_is_written_with_its_truth() -> None:
    """Where the corpus is written, the learning-rate cases (fixtures/_rates.py) are too: every
    schedule class of the release or the reason it is not built; each entry's truth is the rate the
    next step applies (0 < rate <= the initial rate: every schedule of the corpus decays), the
    schedule in place of the fixed rate, and for ``rate_decay`` exactly ``lr / (1 + decay t)``."""
    import numpy as np

    _, generated = _generated()
    (env,) = generated["producers"]
    if "corpus" not in generated:
        pytest.skip(f"{env} commits no corpus")
    info = generated["corpus"][env]["learning_rates"]
    written = {f["case"] for f in generated["fixtures"] if f["case"].startswith("rate_")}
    assert info["cases"] and all(c in written or c in info["not_built"] for c in info["cases"]), info
    assert written <= set(info["cases"])
    lr, f32 = 0.0125, np.float32
    for f in generated["fixtures"]:
        if not f["case"].startswith("rate_"):
            continue
        opt, where = f["optimizer"], f["path"]
        assert opt["iterations"] == 4 and opt["rate_at_step"] is not None, where
        if f["case"] == "rate_decay":
            assert opt["learning_rate"] == float(f32(lr)) and opt["schedule"] is None, where
            divided = f32(lr) / (f32(1) + f32(0.05) * f32(4))  # OptimizerV2; standalone Keras multiplies
            assert f32(opt["rate_at_step"]) in (divided, f32(lr) * (f32(1) / (f32(1) + f32(0.05) * f32(4)))), where
        else:
            assert opt["learning_rate"] is None and opt["schedule"].lower() in f["case"], where
            assert 0 < opt["rate_at_step"] <= float(f32(lr)), where
            assert opt["legacy"] == f["case"].startswith("rate_legacy_"), where


def test_portable_zoo_ranks_are_written_where_a_rank_holds_a_class_keras3_removed() -> None:
    """The whole corpus writes ``zoo_rank<r>_portable`` (that rank without the classes Keras 3
    removed: fixtures/_zoo.py ``KERAS3_REMOVED``) for each rank that holds one, so Keras 3 consumers
    resume every other class of it; the samples of producers with a matrix row may lack them: checked here."""
    from tests._paths import load_script

    _, generated = _generated()
    (env,) = generated["producers"]
    if "corpus" not in generated:
        pytest.skip(f"{env} commits no corpus")
    zoo = load_script(FIXTURES / "_zoo.py", "_zoo")
    covered = generated["corpus"][env]["layers"]["covered"]
    cases = {f["case"] for f in generated["fixtures"]}
    want = {covered[name] + zoo.PORTABLE_SUFFIX for name in zoo.KERAS3_REMOVED if name in covered}
    assert want <= cases, sorted(want - cases)
