"""Real checkpoints nobody here wrote (shared corpus): read them, and resume the full models.

1. Every checkpoint set (MANIFEST.tsv ``set_id``) of kinds A-D goes through
   ``ckptcompat.inspect``, kind E sidecars through ``read_legacy_sidecar``: it reads, or raises
   a typed ``CkptCompatError`` naming the path.
2. Every full model of kinds B (HDF5) and C (.keras) is resumed with ``ckptcompat.resume`` and
   compared, file by file, with native ``load_model(path, compile=True)`` run in a child
   process: ckptcompat restores every file native restores (all weights, and every optimizer
   slot the file holds). A file that does not resume must raise the typed error listed for it
   in :data:`EXPECTED_ERRORS` (reviewed reasons), never anything else. Run with ``-s`` to see
   the per-environment table. Skipped when the corpus is absent.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ckptcompat
from ckptcompat.errors import CkptCompatError, InvalidArgumentError, UnsupportedFormatError
from ckptcompat.formats import registry
from ckptcompat.formats.sidecar import read_legacy_sidecar

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "real-checkpoints"

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


# --------------------------------------------------------------------------------------------
# Full models (kinds B and C): ckptcompat must resume every file native Keras loads, and more.
# --------------------------------------------------------------------------------------------

#: Files that cannot resume, reviewed one by one: set_id -> (error type, substring of the
#: message, why). A file listed here that resumes, or fails differently, fails the test.
#: A value may also be ``{flavour: (type, substring, why)}`` when only one generation refuses.
#: A reason starting with "pending:" belongs to another deliverable of issue #13: where native
#: restores such a file the test is an xfail naming it (the table shows it), never a pass.
EXPECTED_ERRORS: dict[str, Any] = {}
_LAMBDA = (UnsupportedFormatError, "Lambda", "Lambda layer: marshalled Python byte-code is never executed")
_CUSTOM = (InvalidArgumentError, "does not know", "custom layer class; needs custom_objects")
_M = "malfaro2/dl4j-test-resources:src/main/resources/modelimport/keras/"
for _sid, _why in {
    "MichaelHopf/CarND-Behavioral-Cloning-P3:model.hdf5": _LAMBDA,
    "1524045patrick/CarND-BehavioiurCloning-P3:model.h5": _LAMBDA,
    "2015131141143821/CarND-Behavioral-Cloning-Project:model.h5": _LAMBDA,
    "eljefec/CarND-Behavioral-Cloning-P3:candidates/model-nvda-earlystop-corr0.04-drop0.2.h5": _LAMBDA,
    "iamfaisalkhan/CarND-Behavioral-Cloning:model.h5": _LAMBDA,
    _M + "examples/lambda/sequential_lambda.h5": _LAMBDA,
    "paalpri/autoencoder:midi_processing-master/encoder_model.h5": _LAMBDA,
    "paalpri/autoencoder:midi_processing-master/vae_model.h5": _LAMBDA,
    "trojerz/Ear-Detection:adadelta.h5": _LAMBDA,  # also a custom AnchorBoxes layer
    "trojerz/Ear-Detection:adamax.h5": _LAMBDA,  # its Keras 2.3.1 m_i/u_i Adamax slots read now
    "AlgoDM-Fall2023-Team2/Visual-Search-Using-Variational-Autoencoders:model.keras": _CUSTOM,
}.items():
    EXPECTED_ERRORS[_sid] = _why

#: Files native Keras resumes and ckptcompat does not yet, because of another part of issue #13
#: (strict xfail: fixing them turns the test red until the entry is removed).
KNOWN_GAPS: dict[str, str] = {
}


def _has_model_config(path: Path) -> bool:
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return "config.json" in zf.namelist()
    try:
        import h5py

        with h5py.File(path, "r") as h5:
            return "model_config" in h5.attrs
    except (OSError, ImportError):
        return False


def _full_models() -> list[_Set]:
    out = []
    for s in SETS:
        if s.kind in ("B", "C"):
            target = _target(s)
            if target.is_file() and _has_model_config(target):
                out.append(s)
    return out


FULL_MODELS = _full_models()


@pytest.fixture(scope="session")
def native_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """``{path: [ok, n_optimizer_variables, reason]}`` from native ``load_model`` in a child process."""
    if keras_flavour() is None:
        pytest.skip("no framework installed")
    tmp = tmp_path_factory.mktemp("native")
    (tmp / "in.json").write_text(json.dumps([str(_target(s)) for s in FULL_MODELS]), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, str(Path(__file__).with_name("_real_native.py")), str(tmp / "in.json"),
                    str(tmp / "out.json")], check=True, timeout=600, env=env, capture_output=True)
    return json.loads((tmp / "out.json").read_text(encoding="utf-8"))


_TABLE: dict[str, tuple[str, str, str, str]] = {}


def keras_flavour() -> str | None:
    """The running flavour ("keras2" / "keras3"), or None without a framework."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    from ckptcompat import runtime

    return runtime.detect()


def _resume_row(s: _Set, native: list[Any]) -> tuple[bool, str, str]:
    """(ok, optimizer restored, reason) of ckptcompat.resume; asserts the outcome file by file."""
    import logging

    target = _target(s)
    logging.disable(logging.WARNING)
    try:
        result = ckptcompat.resume(target)
    except CkptCompatError as exc:
        return False, "-", f"{type(exc).__name__}: {exc}"
    finally:
        logging.disable(logging.NOTSET)
    state, report = result.state, result.report
    assert len(report.restored_weights) == len(state.weights), f"{s.set_id}: weights not all restored"
    slots = state.optimizer.slot_count if state.optimizer is not None else 0
    dropped = sum(note.startswith("dropped ") for note in report.translated)
    created = sum(note.startswith("created ") for note in report.translated)
    if slots:
        # every slot of the file is restored, or dropped as inert by meaning (reported);
        # optimizer-level variables (``optimizer/u_product``) are not per-variable slots
        per_variable = [n for n in report.restored_slots if not n.startswith("optimizer/")]
        assert len(per_variable) - created + dropped == slots, f"{s.set_id}: {slots} slots in the file, " \
            f"{len(per_variable)} restored, {dropped} dropped as inert, {created} created"
    opt = f"yes ({slots} slots" + (f", {dropped} inert dropped" if dropped else "") + ")" if slots else "no slots in file"
    if slots and native[0] and native[1] <= 2:
        opt += "; native drops them"
    return True, opt, ""


def _param_full(s: _Set) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[s.set_id])] if s.set_id in KNOWN_GAPS else []
    return pytest.param(s, id=s.set_id, marks=marks)


@pytest.mark.framework
@pytest.mark.parametrize("s", [_param_full(s) for s in FULL_MODELS] or [pytest.param(None, id="no-corpus")])
def test_full_model_resumes_where_native_does(real_checkpoints: Path, native_results: dict[str, list[Any]],
                                              s: _Set | None) -> None:
    """ckptcompat ⊇ native, file by file; every refusal is a reviewed, typed, named reason."""
    if s is None:
        pytest.skip("no full models in the corpus")
    native = native_results[str(_target(s))]
    try:
        ok, opt, reason = _resume_row(s, native)
    except Exception as exc:  # noqa: BLE001 -- an untyped failure is a defect: name it
        _TABLE[s.set_id] = ("ok" if native[0] else "no", "UNTYPED", "-", f"{type(exc).__name__}: {exc}"[:120])
        raise
    _TABLE[s.set_id] = ("ok" if native[0] else "no", "ok" if ok else "no", opt,
                        (reason or ("" if native[0] else native[2]))[:120])
    expected = _expected(s.set_id)
    if ok:
        assert expected is None, f"{s.set_id} resumes now: remove it from EXPECTED_ERRORS"
        return
    assert expected is not None, f"{s.set_id}: not resumed and not reviewed: {reason}"
    err_type, substring, why = expected
    assert reason.startswith(err_type.__name__ + ":") and substring in reason, reason
    if native[0]:
        assert why.startswith("pending:"), f"{s.set_id}: native load_model restores it, ckptcompat refuses: {reason}"
        pytest.xfail(f"native restores it; {why}")


def _expected(set_id: str) -> tuple[type[CkptCompatError], str, str] | None:
    spec = EXPECTED_ERRORS.get(set_id)
    if isinstance(spec, dict):
        return spec.get(keras_flavour() or "")
    return spec


@pytest.mark.framework
def test_print_resume_table(real_checkpoints: Path, native_results: dict[str, list[Any]]) -> None:
    """Print the per-environment table (run after the per-file tests; -s shows it)."""
    flavour = keras_flavour()
    lines = [f"real full models in this environment ({flavour}): {len(FULL_MODELS)}",
             f"{'file':70} | native | ckptcompat | optimizer restored | reason"]
    for sid, (nat, ck, opt, why) in sorted(_TABLE.items()):
        lines.append(f"{sid[:70]:70} | {nat:6} | {ck:10} | {opt:18} | {why}")
    native_ok = sum(1 for v in native_results.values() if v[0])
    ck_ok = sum(1 for row in _TABLE.values() if row[1] == "ok")
    lines.append(f"native restores {native_ok}, ckptcompat {ck_ok} of {len(FULL_MODELS)}")
    print("\n".join(lines))
