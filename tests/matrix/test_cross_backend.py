"""Checkpoints written on one Keras 3 backend resume on another with exact state.

* the committed stores and Keras-saved ``.keras`` files of fixtures/backends/<env> (written by
  fixtures/generate_backends.py on TensorFlow, JAX and torch) resume here: every weight and
  optimizer variable bitwise, iterations, learning rate, the seeded Dropout's SeedGenerator
  state and (stores) the epoch; their Keras-saved ``.weights.h5`` (weights and optimizer
  variables, no config) into the script's compiled model, the same;
* in the JAX and torch matrix environments, the files generate_backends.py just wrote there
  ($CKPTCOMPAT_GENERATED_BACKEND_FIXTURES) hold the committed ones' state and resume here;
* the golden TF-written ``.keras`` fixtures of fixtures/tf221-keras3 resume here with every
  tensor of their manifest bitwise, iterations and learning rate exact.

Runs on every backend (each file is also resumed where it was written: the same code path).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _paths import COMMITTED_CPU, FIXTURES, cpu_model, is_corpus

pytestmark = [pytest.mark.backend, pytest.mark.fresh_fixtures]

BACKENDS = FIXTURES / "backends"
PRODUCERS = sorted(p.name for p in BACKENDS.iterdir() if (p / "expected.json").is_file())
TF_KERAS3 = "tf221-keras3"
TARGETS = ["store", "native.keras", "native.weights.h5"]


def _generator() -> Any:
    sys.path.insert(0, str(FIXTURES))
    try:
        import generate_backends
    finally:
        sys.path.remove(str(FIXTURES))
    return generate_backends


def test_every_backend_has_committed_fixtures() -> None:
    assert {TF_KERAS3, "keras3-jax", "keras3-torch"} <= set(PRODUCERS)


def _resumes_exact(folder: Path, target: str, keras: Any) -> None:
    """``folder/target`` (a generate_backends output) resumes here with the state its
    expected.json recorded."""
    import ckptcompat

    expected = json.loads((folder / "expected.json").read_text())
    keras.backend.clear_session()
    # Keras 3's save_weights keeps the optimizer's variables too but no config: resumed into
    # the script's own compiled model
    model = _generator().build(keras) if target == "native.weights.h5" else None
    run = ckptcompat.resume(folder / target, model=model)
    got = _generator().digest(keras, run.model)
    want = expected["digest"]
    assert got["weights"] == want["weights"]
    assert got["optimizer"] == want["optimizer"]  # iterations, learning rate, every slot
    assert got["iterations"] == want["iterations"] == 10
    assert got["learning_rate"] == want["learning_rate"]
    if target == "store":  # the SeedGenerator state lives in state.json, not in the model file
        assert got["seed_generators"] == want["seed_generators"] != [[1, 0]]
        assert (run.initial_epoch, run.report.iterations) == (expected["epoch"], 10)
    else:  # Keras' own file keeps no seed state: the fresh model's
        assert got["seed_generators"] == [[1, 0]]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_resume_other_backend_exact(producer: str, target: str, keras: Any) -> None:
    _resumes_exact(BACKENDS / producer, target, keras)


def _fresh() -> Path:
    """The fixtures generate_backends.py just wrote in this environment (tools/matrix.py)."""
    value = os.environ.get("CKPTCOMPAT_GENERATED_BACKEND_FIXTURES")
    if not value or not (Path(value) / "expected.json").is_file():
        pytest.skip("no freshly generated backend fixtures (tools/matrix.py writes them in the "
                    "keras3-jax and keras3-torch environments)")
    return Path(value)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_fresh_backend_fixtures_match_committed() -> None:
    """What this environment's generator wrote: the committed fixtures' files and state
    (bitwise when the Keras version and the CPU are those the committed ones came from)."""
    fresh = _fresh()
    got = json.loads((fresh / "expected.json").read_text())
    committed = BACKENDS / got["producer"]
    assert (committed / "expected.json").is_file(), f"{got['producer']} has no committed backend fixtures"
    want = json.loads((committed / "expected.json").read_text())
    assert _files(fresh) == _files(committed)
    assert (got["backend"], got["epoch"]) == (want["backend"], want["epoch"])
    shapes = {k: [(d[0], d[1]) for d in want["digest"][k]] for k in ("weights", "optimizer")}
    assert {k: [(d[0], d[1]) for d in got["digest"][k]] for k in shapes} == shapes
    assert got["digest"]["iterations"] == want["digest"]["iterations"]
    if got["keras"] != want["keras"] or cpu_model() != COMMITTED_CPU:
        pytest.skip(f"values compared only with Keras {want['keras']} on {COMMITTED_CPU!r}")
    assert got["digest"] == want["digest"]


@pytest.mark.parametrize("target", TARGETS)
def test_fresh_backend_fixtures_resume_here(target: str, keras: Any) -> None:
    _resumes_exact(_fresh(), target, keras)


def _fixture_generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_ckpt_fixture_generate", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tf_keras_zip_entries() -> list[dict[str, Any]]:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [f for f in manifest["fixtures"]
            if f["producer"] == TF_KERAS3 and f["kind"] == "keras_zip" and not is_corpus(f)]


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("entry", _tf_keras_zip_entries(), ids=lambda e: e["path"])
def test_tf_written_keras_file_resumes_exact(entry: dict[str, Any], keras: Any) -> None:
    import ckptcompat
    from ckptcompat import runtime

    keras.backend.clear_session()
    model = None
    if entry["optimizer"]["class"] == "SGD":  # Keras' .keras keeps no SGD momentum setting
        gen = _fixture_generator()           # (warned on every backend): the model is given
        model = gen.build_model(keras, entry["case"])
        model.compile(optimizer=gen.build_optimizer(keras, entry["case"]), loss="mse")
    run = ckptcompat.resume(FIXTURES / entry["path"], model=model)
    state = runtime.capture(run.model)
    bad = []
    for t in entry["tensors"]:
        value = (state.weights.get(t["owner"]) if t["kind"] == "weight"
                 else state.optimizer.slots.get(t["owner"], {}).get(t["slot"]))
        if value is None or _sha(value) != t["sha256"] or str(value.dtype) != t["dtype"]:
            bad.append(f"{t['owner']}/{t['slot'] or ''}")
    assert bad == []
    want = entry["optimizer"]
    assert state.optimizer.class_name == want["class"]
    assert state.optimizer.iterations == want["iterations"] == 4
    assert state.optimizer.learning_rate == want["learning_rate"]
