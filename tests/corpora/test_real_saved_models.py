"""The real SavedModel sets of the shared corpus (MANIFEST.tsv kind S) resume, or raise the
typed error named here with its reason.

Written by TF 2.3-2.17 (with and without ``keras_metadata.pb``, ``.OPTIMIZER_SLOT`` and
``optimizer/_variables/N`` layouts) and two TF1 ``SavedModelBuilder`` folders. For each set
that resumes, every live model and optimizer variable must be bitwise one of the tensors
TensorFlow's own ``tf.train.load_checkpoint`` reads from ``variables/`` (an independent
reader), and ``iterations`` must equal the stored one. The table is printed (``-s``).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import CkptCompatError
from _paths import REAL_CHECKPOINTS

pytestmark = pytest.mark.framework

#: set_id -> (error type, text the message must contain, why) for sets that cannot resume
EXPECTED_FAILURES: dict[str, tuple[str, str, str]] = {
    "4n4nd/oc-tf-model-serving:1": (
        "InvalidArgumentError", "model=", "TF1 SavedModelBuilder folder: no Keras model in it"),
    "brianschardt/iris_keras_tensorflow_serving:1": (
        "InvalidArgumentError", "model=", "TF1 SavedModelBuilder folder: no Keras model in it"),
    "GameChangerSensor/aerogel-predictor:.": (
        "InvalidArgumentError", "model=", "tf.saved_model.save of a tf.Module (TF 2.17): no Keras metadata"),
    "Bettychenonly/CathayLifeProject_1c:model_0615": (
        "InvalidArgumentError", "LSTMClassifier", "subclassed model class LSTMClassifier (user code)"),
    "Jeong-Kyu/A_study:structured_data_regressor/best_model": (
        "InvalidArgumentError", "MultiCategoryEncoding", "AutoKeras custom layer MultiCategoryEncoding"),
}
# RCasatta/estimate_ml_fee (TF 2.4, two IntegerLookup tables) resumes in both generations: the
# vocabularies from its lookup-table tensors, tf.keras 2.4's preprocessing spellings upgraded for
# Keras 3; tf-keras's own load_model cannot load it, and its outputs equal the serving graph's

# 6sephiruth/NID (TF 2.5: every layer frozen after training) resumes too: the Adam slots of its
# frozen variables are left out with a warning where the optimizer keeps none (Keras 3.0 keeps them)


def _sets() -> list[tuple[str, Path]]:
    manifest = REAL_CHECKPOINTS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="", encoding="utf-8") as fh:
        ids = sorted({(r["set_id"], r["repo"]) for r in csv.DictReader(fh, delimiter="\t") if r["kind"] == "S"})
    return [(sid, REAL_CHECKPOINTS / repo.replace("/", "__") / sid.split(":", 1)[1]) for sid, repo in ids]


SETS = _sets()


def _sha(a: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _native_tensors(folder: Path) -> dict[str, np.ndarray] | None:
    """Every tensor of ``variables/`` as TensorFlow reads it, or None when it cannot."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
        return {k: np.asarray(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()
                if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    except Exception:  # noqa: BLE001 -- a column of the table, not the test
        return None


def _live_variables(run: Any) -> list[np.ndarray]:
    model = run.model
    out = [np.asarray(v) for v in model.weights]
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        out += [np.asarray(v) for v in getattr(opt, "variables", lambda: [])()] \
            if callable(getattr(opt, "variables", None)) else [np.asarray(v) for v in opt.variables]
    return out


def _resume(sid: str, folder: Path) -> tuple[str, str, str]:
    """(ckptcompat read, resume outcome, reason); asserts exactness of what resumed."""
    import ckptcompat
    from ckptcompat.formats import saved_model

    try:
        saved_model.read(folder)
        read = "ok"
    except CkptCompatError as exc:
        read = type(exc).__name__
    try:
        run = ckptcompat.resume(folder)
    except CkptCompatError as exc:
        kind, text, why = EXPECTED_FAILURES.get(sid, ("", "", ""))
        assert (type(exc).__name__, text in str(exc)) == (kind, True), f"{sid}: unexpected {exc!r}"
        return read, type(exc).__name__, why
    assert sid not in EXPECTED_FAILURES, f"{sid} resumed but is listed as an expected failure"
    native = _native_tensors(folder)
    assert native is not None, f"{sid}: TensorFlow cannot read variables/ but ckptcompat resumed it"
    stored = Counter(_sha(v) for v in native.values())
    live = [v for v in _live_variables(run)]
    missing = [v.shape for v in live if _sha(v) not in stored]
    # a never-stepped optimizer (iterations 0) holds fresh zero slots that are not stored
    fresh = run.global_step in (0, None)
    assert missing == [] or fresh, f"{sid}: live variables not in the file: {missing}"
    it = run.model.optimizer.iterations if getattr(run.model, "optimizer", None) is not None else None
    stored_iters = [int(v) for k, v in native.items() if k.startswith("optimizer/iter")]
    if it is not None and stored_iters:
        assert int(np.asarray(it)) == stored_iters[0]
    served = _serving_outputs_match(folder, run.model)
    assert served is not False, f"{sid}: the resumed model computes other outputs than the SavedModel's own graph"
    return read, f"ok (iterations {run.global_step}{', outputs = serving_default' if served else ''})", ""


def _serving_outputs_match(folder: Path, model: Any) -> bool | None:
    """Whether the resumed model computes what the SavedModel's own ``serving_default`` graph
    computes on the same inputs; None where that cannot be compared (no signature, other input
    names, a graph TensorFlow cannot load)."""
    import tensorflow as tf

    try:
        signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
        spec = signature.structured_input_signature[1]
        rng = np.random.default_rng(0)
        feeds = {k: tf.constant(rng.integers(0, 8, [3] + [d or 1 for d in v.shape[1:]]), dtype=v.dtype)
                 if v.dtype.is_integer else tf.constant(rng.random([3] + [d or 1 for d in v.shape[1:]]), dtype=v.dtype)
                 for k, v in spec.items()}
        want = [o.numpy() for o in signature(**feeds).values()]
    except Exception:  # noqa: BLE001 -- not comparable: a column of the table, not the test
        return None
    names = [str(getattr(i, "name", "")).split(":")[0] for i in model.inputs]
    if sorted(names) != sorted(feeds) or len(want) != 1:
        return None
    got = model.predict({n: feeds[n] for n in names}, verbose=0)
    return bool(np.allclose(np.asarray(got), want[0], rtol=1e-5, atol=1e-6))


@pytest.mark.skipif(not SETS, reason="the real-checkpoint corpus is absent")
def test_real_saved_models_resume_or_raise_typed(real_checkpoints: Path, keras: Any) -> None:
    rows = []
    for sid, folder in SETS:
        keras.backend.clear_session()
        native = "ok" if _native_tensors(folder) is not None else "no"
        read, outcome, why = _resume(sid, folder)
        rows.append((sid, native, read, outcome, why))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'set':<{width}} | TF reads variables/ | ckptcompat read | resume | reason")
    for sid, native, read, outcome, why in rows:
        print(f"{sid:<{width}} | {native:<19} | {read:<15} | {outcome} | {why}")
    assert len(rows) == 22, len(rows)
    assert all(r[2] == "ok" for r in rows), "every set must read without a framework"
    assert {r[0] for r in rows if not r[3].startswith("ok")} == set(EXPECTED_FAILURES)
