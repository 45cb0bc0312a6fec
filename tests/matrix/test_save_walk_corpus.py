"""Keras 3's own pairing, as ckptcompat does it, on every Keras 3 file of the generated corpus.

Where the reader cannot name a file's variables (a layer class it does not know), ``resume`` pairs
them as Keras 3's ``load_weights`` does: the dataset each variable was read from against the place
the live model's own save walk gives each live variable
(:func:`ckptcompat.resuming.file_pairing.after_misfits`: the classes of the layers holding variables
in the live order where the config lists them, then the save walk). This test takes that pairing
alone, without names, on every ``.keras`` and ``.weights.h5`` a Keras 3 producer of the matrix wrote
for the layer zoo (every built-in layer class with weights) and the core compositions (Sequential,
nested, BatchNormalization, recurrent), into a model rebuilt from the case's file and
zeroed: every weight and slot must come back bitwise equal to the truth the producer recorded,
wherever native ``load_weights`` restores the file's weights in this consumer. The table prints
both per file. Without the matrix (the README command) the committed files are read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests._frameworks import fresh_graph
from tests._paths import FIXTURES
from tests.matrix import test_resume_table as table
from tests.matrix._case_models import CaseModels, compiled_as_run

pytestmark = [pytest.mark.backend, pytest.mark.fresh_fixtures]

#: the cases whose layers the walk must place (the optimizer and rate cases share one Dense model)
_CASES = ("zoo_", "mlp_", "cnn_", "rnn_", "nested_", "series_", "metrics_")


def _entries() -> list[dict[str, Any]]:
    """The Keras 3 producers' ``.keras`` / ``.weights.h5`` of those cases, committed and generated."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    flavours = {env: info.get("flavour") for env, info in manifest["producers"].items()}
    entries = [*manifest["fixtures"], *table._fresh_corpus_entries(manifest["fixtures"])]  # noqa: SLF001
    for entry in entries:
        if entry["producer"] not in flavours and "file" in entry:  # a producer only this run generated
            fresh = json.loads((Path(entry["file"]).parent.parent / "manifest.json").read_text())
            flavours.update({env: info.get("flavour") for env, info in fresh["producers"].items()})
    return [e for e in entries if e["kind"] in ("keras_zip", "weights_h5") and e.get("tensors")
            and flavours.get(e["producer"]) == "keras3" and e["case"].startswith(_CASES)]


def _zeroed_model(entry: dict[str, Any], has_slots: bool, cases: CaseModels) -> Any:
    """The case's model rebuilt from its full-model file (once a case), every weight, slot, the
    iterations and the learning rate zero (tests/matrix/_case_models.py)."""
    import ckptcompat

    case_dir = table._file(entry).parent  # noqa: SLF001
    if cases.base_file(case_dir) is None:
        return None
    model = cases.zeroed(case_dir, has_slots, lambda full, compile: ckptcompat.resume(full, compile=compile).model,
                         learning_rate=True)
    return compiled_as_run(model, entry) if has_slots else model


def _walk_cell(entry: dict[str, Any], cases: CaseModels) -> str:
    from ckptcompat import runtime
    from ckptcompat.formats import registry
    from ckptcompat.resuming.file_pairing import after_misfits

    has_slots = any(t["kind"] == "slot" for t in entry["tensors"])
    model = _zeroed_model(entry, has_slots, cases)
    if model is None:
        return "n/a (no full-model file of this case)"
    state = registry.read(table._file(entry))  # noqa: SLF001
    live_vars = runtime.flavour_for(model)._OPS.variables(model)  # noqa: SLF001
    live = {name: tuple(var.shape) for name, var in live_vars.items()}
    through = after_misfits(state, model, live_vars, live)
    if through is None:
        return "no pairing"
    paired, renamed = through.state, through.renamed
    if has_slots and paired.optimizer is not None and paired.optimizer.class_name == "Unknown":
        from ckptcompat.runtime._engine import place_positional  # as resume does: no class stored

        paired = paired.replace(optimizer=place_positional(runtime.flavour_for(model)._OPS, paired, model))  # noqa: SLF001
    runtime.apply(paired if has_slots else paired.replace(optimizer=None), model)
    diffs = table._compare(entry, model, has_slots, renamed=renamed)  # noqa: SLF001
    return "DIFF: " + "; ".join(diffs[:4]) if diffs else f"ok ({len(renamed)} renamed)"


def _native_cell(entry: dict[str, Any], cases: CaseModels) -> str:
    model = _zeroed_model(entry, False, cases)
    if model is None:
        return "n/a"
    try:
        model.load_weights(str(table._file(entry)))  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001 -- the table reports what native does
        return f"fails ({type(exc).__name__})"
    diffs = table._compare(entry, model, False)  # noqa: SLF001
    return f"{len(diffs)} weights differ" if diffs else "ok"


def test_save_walk_pairs_every_keras3_corpus_file(capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ckptcompat")
    entries = _entries()
    assert entries, "no Keras 3 corpus file found (fixtures/tf221-keras3 is committed)"
    lines, bad = [f"{len(entries)} Keras 3 files, paired by the save walk alone (native load_weights beside)"], []
    cases, case = CaseModels(), None
    for entry in entries:
        if (entry["producer"], entry["case"]) != case:  # a case's files share its model
            case, cases = (entry["producer"], entry["case"]), CaseModels()
            fresh_graph()
        try:
            walk = _walk_cell(entry, cases)
        except Exception as exc:  # noqa: BLE001 -- the table reports every failure
            walk = table._removed_layer(exc) or \
                f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"  # noqa: SLF001
        try:
            native = "n/a" if walk.startswith("n/a") else _native_cell(entry, cases)
        except Exception as exc:  # noqa: BLE001 -- the table reports what native does
            native = f"fails ({type(exc).__name__})"
        lines.append(f"  {entry['path']:<58} native: {native:<22} walk: {walk}")
        if not walk.startswith(("ok", "n/a")) and native == "ok":
            bad.append(f"{entry['path']}: {walk} (native load_weights restores it)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not bad, "\n".join(bad)
