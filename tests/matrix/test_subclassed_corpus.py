"""Subclassed Keras 3 models written by every Keras 3 producer of the matrix resume here.

fixtures/_subclassed.py trains one subclassed model per optimizer in each Keras 3 producer
(3.0 and 3.15; TensorFlow, JAX and torch) and saves ``.keras`` and ``.weights.h5``; their
config describes no layer, so ckptcompat pairs the variables by attribute path, as Keras 3
loads them. Each file is resumed into a fresh instance whose generated layer names differ
(``resume(path, model=fresh)``): every weight and optimizer slot bitwise equal to the truth the
producer recorded from its live objects, keyed by attribute path, and the iterations exact.
Native ``load_weights`` is measured on the same file: the table prints both; ckptcompat must
restore every file. Without the matrix (the README command) the committed files of tf221-keras3
are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._paths import FIXTURES, corpus_truths, write_cell_report

pytestmark = [pytest.mark.backend, pytest.mark.fresh_fixtures]  # the committed ones without a matrix


def _fixture_module() -> Any:
    from tests._paths import load_script

    return load_script(FIXTURES / "_subclassed.py", "_subclassed")


def _fresh(keras: Any, sub: Any, case: str, x: Any) -> Any:
    """An instance of the producer's class whose generated layer names differ, compiled, built."""
    cls = sub.model_class(keras)
    cls(), cls()  # the notebook built it twice before
    model = cls()
    model.compile(sub.optimizer(keras, case), "mse")
    model(x[:1])
    return model


def _differences(sub: Any, model: Any, want: dict[str, Any]) -> list[str]:
    got = sub.variables_truth(model)
    diffs = [f"weight {k}" for k in want["weights"] if got["weights"].get(k) != want["weights"][k]]
    diffs += [f"slot {k}" for k in want["slots"] if got["slots"].get(k) != want["slots"][k]]
    if got["iterations"] != want["iterations"]:
        diffs.append(f"iterations {got['iterations']} != {want['iterations']}")
    return diffs


def _native(keras: Any, sub: Any, case: str, path: Path, want: dict[str, Any]) -> str:
    """What native ``load_weights`` restores into a fresh instance whose optimizer is built
    (Keras skips optimizer variables it has no place for)."""
    x, _ = sub.data()
    model = _fresh(keras, sub, case, x)
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 -- the table reports what native does
        return f"fails ({type(exc).__name__})"
    diffs = _differences(sub, model, want)
    weights = [d for d in diffs if d.startswith("weight ")]
    if weights:
        return f"{len(weights)} weights differ"
    return "ok" if not diffs else "weights only"


def test_subclassed_files_of_every_keras3_producer_resume_here(capsys: pytest.CaptureFixture[str]) -> None:
    import ckptcompat
    from ckptcompat import runtime

    producers = corpus_truths("subclassed")
    if not producers:
        pytest.skip("no subclassed-model files committed or generated (fixtures/_subclassed.py)")
    keras, sub = runtime.keras_module(), _fixture_module()
    x, _ = sub.data()
    lines, bad = [f"consumer: Keras {keras.version()} on {keras.backend.backend()}"], []
    cells: list[dict[str, Any]] = []
    for env, folder, truth in producers:
        for case, want in sorted(truth["cases"].items()):
            assert want["slots"] and want["iterations"] > 0, f"{env}/{case}: the truth records no optimizer state"
            for rel in want["files"]:
                path = folder / rel
                native = _native(keras, sub, case, path, want)
                model = _fresh(keras, sub, case, x)
                try:
                    run = ckptcompat.resume(path, model=model, initial_epoch=2)
                    diffs = _differences(sub, model, want)
                    cell = f"DIFF: {', '.join(diffs[:4])}" if diffs else f"ok ({run.report.matching})"
                except ckptcompat.errors.CkptCompatError as exc:
                    cell = f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                lines.append(f"  {env:>15} (Keras {truth['keras']}, {truth['backend']}) {rel:<32} "
                             f"native load_weights: {native:<16} ckptcompat: {cell}")
                cells.append({"producer": env, "file": Path(rel).name, "case": case,
                              "ok": cell.startswith("ok"), "native_ok": native == "ok"})
                if not cell.startswith("ok"):
                    bad.append(f"{env}/{rel}: {cell}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    write_cell_report("subclassed_table.json", cells)
    assert not bad, "\n".join(bad)
