"""Every golden fixture with weights, from every producer, resumes in the running environment.

Prints the producer x consumer table; every cell must be ok. Weights-only files are applied
into a model rebuilt from the same case's full-model file (they carry no config).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._frameworks import fresh_graph, keras_flavour
from tests._paths import FIXTURES, is_corpus
from tests.matrix._case_models import CaseModels, base_file, compiled_as_run, optimizer_summary, run_optimizer
from tests.matrix._table_gaps import known_gap

pytestmark = [pytest.mark.framework, pytest.mark.fresh_fixtures]

MANIFEST = FIXTURES / "manifest.json"
SAVED_MODELS = FIXTURES / "saved_model"  # one manifest per producer (fixtures/generate_saved_model.py)


def _saved_model_entries() -> list[dict[str, Any]]:
    """The committed SavedModels as table entries (path relative to fixtures/, kind saved_model)."""
    out = []
    for manifest in sorted(SAVED_MODELS.glob("*/manifest.json")):
        for e in json.loads(manifest.read_text())["fixtures"]:
            out.append({**e, "path": f"saved_model/{e['producer']}/{e['path']}", "kind": "saved_model"})
    return out
_FULL = ("model.keras", "model.h5")


def _fresh_corpus_entries(committed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The generated-corpus files the matrix's phase 1 wrote in every environment
    ($CKPTCOMPAT_FRESH_CORPORA, tools/matrix.py) that are not committed (where only a sample of the
    corpus is): table entries with ``path`` as if committed (``<env>/<case>/<file>``) and ``file``,
    where they are."""
    known = {e["path"] for e in committed}
    out = []
    for folder in filter(None, os.environ.get("CKPTCOMPAT_FRESH_CORPORA", "").split(os.pathsep)):
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        (env,) = manifest["producers"]
        for e in manifest["fixtures"]:
            if is_corpus(e) and f"{env}/{e['path']}" not in known:
                out.append({**e, "path": f"{env}/{e['path']}", "file": str(Path(folder) / e["path"])})
    return out


def _file(entry: dict[str, Any]) -> Path:
    """Where the entry's file is: committed under fixtures/, or generated in this matrix run."""
    return Path(entry["file"]) if "file" in entry else FIXTURES / entry["path"]


def _sha(a: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _dropped(run: Any) -> set[str]:
    """``<variable>/<slot>`` of the slots the resume dropped as inert and reported (``report.translated``:
    e.g. a tf-keras SGD(momentum=0) file keeps zero momentum slots Keras 3 never creates)."""
    notes = getattr(getattr(run, "report", None), "translated", ()) or ()
    return {n.split(" ", 1)[1].split(":", 1)[0] for n in notes if n.startswith("dropped ")}


def _placeholder(entry: dict[str, Any], t: dict[str, Any], value: np.ndarray) -> bool:
    """A slot both sides keep as an all-zero scalar placeholder (Keras 3.0 float32, later int32)."""
    from ckptcompat.names.slot_meaning import is_inert_for_shape

    cls = (entry.get("optimizer") or {}).get("class", "")
    return t["kind"] == "slot" and t["shape"] == [] and value.shape == () and not np.any(value) \
        and is_inert_for_shape(cls, t["slot"], ()) and t["sha256"] in _ZERO_SCALARS


def _same_integers(t: dict[str, Any], value: np.ndarray) -> bool:
    """An integer variable whose width is the backend's (Keras 3 ``Normalization.count``: int32 on
    JAX/torch, int64 on TensorFlow) holding exactly the recorded values."""
    return np.issubdtype(value.dtype, np.integer) and np.issubdtype(np.dtype(t["dtype"]), np.integer) \
        and np.array_equal(value.astype(t["dtype"]), value) and _sha(value.astype(t["dtype"])) == t["sha256"]


#: sha256 of a zero scalar in each dtype a placeholder has had
_ZERO_SCALARS = {hashlib.sha256(np.zeros((), dtype).tobytes()).hexdigest() for dtype in ("int32", "float32", "int64")}


_LEAF_ALIAS = {"kernel": "depthwise_kernel", "depthwise_kernel": "kernel"}


def _compare(entry: dict[str, Any], model: Any, has_optimizer: bool, dropped: frozenset[str] = frozenset(),
             renamed: dict[str, str] | None = None) -> list[str]:
    """Differences between the entry's tensors and the live model; ``renamed``: the pairing
    resume reported (``report.by_structure``: the file's name -> the live name)."""
    from ckptcompat import runtime

    state = runtime.capture(model)
    diffs = []
    for t in entry["tensors"]:
        owner = (renamed or {}).get(t["owner"], t["owner"])
        if owner not in state.weights:  # Keras 3 DepthwiseConv "kernel" is Keras 2's "depthwise_kernel"
            head, _, leaf = owner.rpartition("/")
            alias = f"{head}/{_LEAF_ALIAS.get(leaf, leaf)}"
            owner = alias if alias in state.weights else owner
        if t["kind"] == "weight":
            value = state.weights.get(owner)
        elif not has_optimizer:
            continue
        else:
            value = (state.optimizer.slots.get(owner, {}) if state.optimizer else {}).get(t["slot"])
            if value is None and f"{t['owner']}/{t['slot']}" in dropped:
                continue  # dropped as inert by meaning and reported: accounted for
        if value is None:
            diffs.append(f"missing {t['kind']} {t['owner']} {t['slot'] or ''}".strip())
        elif _sha(value) != t["sha256"] or str(value.dtype) != t["dtype"]:
            if _placeholder(entry, t, value):
                continue  # an inert placeholder (Adafactor r/c of a 1-D variable): 0 in the release's dtype
            if _same_integers(t, value):
                continue  # a counter in the consumer backend's integer width (Normalization count)
            diffs.append(f"{t['kind']} {t['owner']} {t['slot'] or ''} differs".strip())
    opt = entry.get("optimizer")
    if has_optimizer and opt:
        live = state.optimizer
        if live is None:
            return diffs + ["no optimizer"]
        if live.class_name != opt["class"]:
            diffs.append(f"optimizer {live.class_name} != {opt['class']}")
        if opt.get("iterations") is not None and live.iterations != opt["iterations"]:
            diffs.append(f"iterations {live.iterations} != {opt['iterations']}")
        if opt.get("learning_rate") is not None and opt.get("rate_at_step") is None and \
                np.float32(live.learning_rate) != np.float32(opt["learning_rate"]):
            diffs.append(f"learning_rate {live.learning_rate} != {opt['learning_rate']}")
        if opt.get("rate_at_step") is not None:  # the rate, schedule or decay continues where it was
            # (Keras 2's decay resumed where no optimizer takes it: the equal InverseTimeDecay)
            rate = _rate_at_step(model.optimizer)
            if np.float32(rate) != np.float32(opt["rate_at_step"]):
                diffs.append(f"rate at step {opt.get('iterations')} {rate!r} != {opt['rate_at_step']!r}"
                             + (f" ({opt['schedule']})" if opt.get("schedule") else ""))
    return diffs


def _rate_at_step(optimizer: Any) -> float:
    """The rate the live optimizer's next step applies (fixtures/_truth.py: as the generator
    recorded the truth); a loss-scale wrapper's inner optimizer."""
    from ckptcompat import runtime
    from tests._paths import load_script

    truth = sys.modules.get("_truth") or load_script(FIXTURES / "_truth.py", "_truth")
    return truth.rate_at_step(runtime.keras_module(), getattr(optimizer, "inner_optimizer", None) or optimizer)


_base_file = base_file  # test_save_walk_corpus builds its models as the table does


def _compiled_by_caller(entry: dict[str, Any], path: Path, fits: tuple[str, ...]) -> str:
    """A file whose optimizer variables fit several configurations equally: alone it is refused
    with the typed error naming them; into a model compiled with the run's optimizer it resumes."""
    import ckptcompat

    try:
        ckptcompat.resume(path)
        return "DIFF: an ambiguous optimizer layout was guessed instead of refused"
    except ckptcompat.IncompatibleStateError as e:
        if not all(f in str(e) for f in fits):
            return f"DIFF: the refusal does not name {fits}: {e}"
    base = ckptcompat.resume(path, compile=False)
    base.model.compile(optimizer=run_optimizer(entry), loss="mse")
    run = ckptcompat.resume(path, model=base.model)
    diffs = _compare(entry, run.model, True)
    return "DIFF: " + "; ".join(diffs) if diffs else f"ok ({' / '.join(fits)} fit: model compiled by caller)"


def _cell(entry: dict[str, Any], cases: CaseModels) -> str:
    import ckptcompat

    path = _file(entry)
    if entry["kind"] == "tf1_saver":
        return "n/a (TF1 graph variables: runtime.tf1, not a Keras model)"
    if entry["kind"] == "saved_model":  # a full model: rebuilt from keras_metadata.pb
        run = ckptcompat.resume(path)
        diffs = _compare(entry, run.model, True)
        want = (entry.get("optimizer") or {}).get("loss_scale")
        if want:  # the wrapper's dynamic scale continues where it was
            from ckptcompat.runtime import _loss_scale

            live = _loss_scale.live_variables(run.model.optimizer)
            got = {k: np.asarray(v).item() for k, v in live.items()}
            if got != {_loss_scale.CURRENT: want["current_loss_scale"], _loss_scale.GOOD_STEPS: want["good_steps"]}:
                diffs.append(f"loss scale {got} != {want}")
        return "DIFF: " + "; ".join(diffs[:4]) if diffs else "ok"
    if entry.get("missing_in_file"):
        return _incomplete_file(entry, path)
    tensors_have_slots = any(t["kind"] == "slot" for t in entry["tensors"])
    if Path(entry["path"]).name in _FULL:
        opt = optimizer_summary(path)
        if opt is not None and opt.class_name == "Unknown":
            run = ckptcompat.resume(path)
            diffs = _compare(entry, run.model, False)
            return "DIFF: " + "; ".join(diffs) if diffs else "ok (file records no optimizer class)"
        slots = opt.slots if opt else frozenset()
        if opt is not None and opt.class_name == "SGD" and "momentum" in slots \
                and "momentum" not in opt.hyperparameters:
            from ckptcompat import runtime

            keras = runtime.keras_module()
            base = ckptcompat.resume(path, compile=False)
            cfg = entry["optimizer"]["config"]
            base.model.compile(optimizer=keras.optimizers.SGD(
                learning_rate=cfg["learning_rate"], momentum=cfg["momentum"]), loss="mse")
            run = ckptcompat.resume(path, model=base.model)
            diffs = _compare(entry, run.model, True)
            return "DIFF: " + "; ".join(diffs) if diffs else \
                "ok (SGD momentum not in file: model compiled by caller)"
        if opt is not None and opt.fits:
            return _compiled_by_caller(entry, path, opt.fits)
        run = ckptcompat.resume(path)
        cases.remember(_case_dir(entry, path), path, run.model)
    else:
        case_dir = _case_dir(entry, path)
        if cases.base_file(case_dir) is None:
            return "n/a (no full-model file of this case to build the model)"
        # into the case's model, every weight, slot and the iterations zeroed (tests/matrix/_case_models.py)
        model = cases.zeroed(case_dir, tensors_have_slots,
                             lambda full, compile: ckptcompat.resume(full, compile=compile).model)
        if tensors_have_slots:  # its full-model file may record no optimizer class: compiled as a user would
            model = compiled_as_run(model, entry)
        run = ckptcompat.resume(path, model=model)
    dropped = frozenset(_dropped(run))
    diffs = _compare(entry, run.model, tensors_have_slots, dropped, dict(run.report.by_structure))
    if diffs:
        return "DIFF: " + "; ".join(diffs[:4]) + (f" (+{len(diffs) - 4})" if len(diffs) > 4 else "")
    if dropped:
        return f"ok ({len(dropped)} inert slots dropped, reported)"
    return "ok" if tensors_have_slots else "ok (no optimizer in file)"


def _case_dir(entry: dict[str, Any], path: Path) -> Path:
    """The folder of the entry's case (a bundle prefix sits one folder deeper)."""
    return path.parent if path.parent.name == entry["case"] else path.parent.parent


def _incomplete_file(entry: dict[str, Any], path: Path) -> str:
    """A file its release wrote without some of the model's variables (``missing_in_file``, found
    by the generator with TensorFlow's reader): resume refuses, naming each; ``partial=True``
    restores every other tensor exactly."""
    import ckptcompat

    missing = entry["missing_in_file"]
    full = _base_file(path.parent.parent)
    if full is None:
        return "n/a (no full-model file of this case to build the model)"
    has_slots = any(t["kind"] == "slot" for t in entry["tensors"])
    model = ckptcompat.resume(full, compile=has_slots).model
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # what resume restores shows
    try:
        ckptcompat.resume(path, model=model)
        return f"DIFF: resumed although the file lacks {missing}"
    except ckptcompat.IncompatibleStateError as exc:
        unnamed = [m for m in missing if m not in str(exc)]
        if unnamed:
            return f"DIFF: the refusal does not name {unnamed}"
    run = ckptcompat.resume(path, model=model, partial=True)
    rest = {**entry, "tensors": [t for t in entry["tensors"] if t["owner"] not in missing]}
    diffs = _compare(rest, run.model, has_slots, frozenset(_dropped(run)), dict(run.report.by_structure))
    from ckptcompat import runtime

    live = runtime.capture(run.model).weights
    diffs += [f"{m} changed although the file lacks it" for m in missing if np.any(live.get(m, 0))]
    if diffs:
        return "DIFF (partial): " + "; ".join(diffs[:4])
    return (f"ok (partial: the file lacks {len(missing)} variable(s) its writer left out, named in the "
            f"refusal; partial=True restored the rest exactly)")


def _absent_class(entry: dict[str, Any]) -> str | None:
    """An "n/a" cell when the producer's optimizer class does not exist in the running Keras
    (Lion before TF 2.13, Lamb/Muon in Keras 2): ckptcompat refused with a typed error naming
    it, the only right answer. None when the class exists here (then the failure counts)."""
    from ckptcompat import runtime
    from ckptcompat.names.variables import canonical_optimizer_class

    opt = entry.get("optimizer") or {}
    if not opt.get("class"):
        return None
    name = canonical_optimizer_class(opt["class"])
    if runtime.flavour().find_optimizer_class(name, legacy=bool(opt.get("legacy"))) is not None:
        return None
    return f"n/a ({name} does not exist in this Keras: typed refusal)"


def _removed_layer(exc: Exception) -> str | None:
    """An "n/a" cell when the file holds a layer class the running Keras does not have
    (LocallyConnected2D in Keras 3, GroupQueryAttention in Keras 2), or a loss-scale wrapper that
    tf.keras < 2.4 has only in its experimental form, and ckptcompat refused with the typed
    error naming it; checked against the running Keras, not taken on trust."""
    import ckptcompat
    from ckptcompat import runtime

    text = str(exc)
    if isinstance(exc, ckptcompat.UnsupportedFormatError) and "removed in Keras 3 (no equivalent layer)" in text:
        layer = text.split("(", 1)[1].split(")", 1)[0] if "(" in text else "a layer"
        if not hasattr(runtime.keras_module().layers, layer):
            return f"n/a ({layer} removed in Keras 3: typed refusal)"
    if isinstance(exc, ckptcompat.UnsupportedFormatError) and "loss-scale wrapper" in text and \
            not hasattr(getattr(runtime.keras_module(), "mixed_precision", None), "LossScaleOptimizer"):
        return "n/a (LossScaleOptimizer: this Keras has only the experimental wrapper, typed refusal)"
    marker = "the model uses class(es) this Keras does not know: "
    if isinstance(exc, ckptcompat.InvalidArgumentError) and marker in text:
        names = [n.strip() for n in text.split(marker, 1)[1].split(" Hint", 1)[0].split(". ", 1)[0].split(",")]
        if names and not any(hasattr(runtime.keras_module().layers, n) for n in names):
            return f"n/a ({', '.join(names)}: not in this Keras, typed refusal)"
    return None


@pytest.mark.skipif(not MANIFEST.exists(), reason="fixtures/manifest.json not generated yet")
def test_every_fixture_resumes_here(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ckptcompat")  # restored after the test
    manifest = json.loads(MANIFEST.read_text())
    fresh = _fresh_corpus_entries(manifest["fixtures"])
    generated = {e["path"] for e in fresh}
    manifest = {**manifest, "fixtures": [*manifest["fixtures"], *_saved_model_entries(), *fresh]}
    rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
    cases, case = CaseModels(), None
    for entry in manifest["fixtures"]:
        if not entry.get("tensors"):
            continue
        if (entry["producer"], entry.get("case")) != case:  # a case's files share its model (and graph)
            case, cases = (entry["producer"], entry.get("case")), CaseModels()
            fresh_graph()
        try:
            cell = _cell(entry, cases)
        except Exception as exc:  # noqa: BLE001 -- the table reports every failure
            cell = _absent_class(entry) or _removed_layer(exc) or f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        rows[entry["producer"]].append((entry["path"], cell))
    consumer = keras_flavour()
    lines = [f"consumer: {consumer} ({_env_versions()})",
             f"+ {len(fresh)} corpus files generated in this matrix run, not committed (marked *)"]
    bad = []
    for producer, cells in sorted(rows.items()):
        ok = sum(c.startswith(("ok", "n/a")) for _, c in cells)
        lines.append(f"{producer:>15} -> here: {ok}/{len(cells)} ok")
        for i, (path, cell) in enumerate(cells):
            gap = None if cell.startswith(("ok", "n/a")) else known_gap(path, cell)
            if gap:  # reviewed, native fails too: the table and the report say so, not FAIL
                cell = f"gap ({gap}): {cell}"
                cells[i] = (path, cell)
            mark = "*" if path in generated else " "
            lines.append(f"   {mark}{path:<55} {cell}")
            if not cell.startswith(("ok", "n/a", "gap")):
                bad.append(f"{path}: {cell}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    _write_report(manifest, rows, generated)
    assert not bad, "\n".join(bad)


def _write_report(manifest: dict[str, Any], rows: dict[str, list[tuple[str, str]]], generated: set[str]) -> None:
    """For tools/compat_page.py: the table as JSON under $CKPTCOMPAT_REPORT_DIR (set by the matrix);
    ``generated``: the paths of files generated in this matrix run (not committed)."""
    folder = os.environ.get("CKPTCOMPAT_REPORT_DIR")
    if not folder:
        return
    kinds = {entry["path"]: entry["kind"] for entry in manifest["fixtures"]}
    report = {"consumer": os.environ.get("CKPTCOMPAT_MATRIX_ENV") or str(keras_flavour()),
              "versions": _env_versions(),
              "cells": [{"producer": producer, "kind": kinds[path], "path": path, "result": cell,
                         **({"generated": True} if path in generated else {})}
                        for producer, cells in sorted(rows.items()) for path, cell in cells]}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "resume_table.json").write_text(json.dumps(report, indent=1))


def _env_versions() -> str:
    from ckptcompat._compat import PackageNotFoundError, distribution_version

    out = ["Python " + ".".join(map(str, sys.version_info[:3]))]
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "tf-keras"):
        try:
            out.append(f"{dist} {distribution_version(dist)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)
