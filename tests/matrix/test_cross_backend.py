"""Checkpoints written on one Keras 3 backend resume on another with exact state.

* the committed stores and Keras-saved ``.keras`` files of fixtures/backends/<env> (written by
  fixtures/generate_backends.py on TensorFlow, JAX and torch) resume here: every weight and
  optimizer variable bitwise, iterations, learning rate, the seeded Dropout's SeedGenerator
  state and (stores) the epoch;
* the golden TF-written ``.keras`` fixtures of fixtures/tf221-keras3 resume here with every
  tensor of their manifest bitwise, iterations and learning rate exact.

Runs on every backend (each file is also resumed where it was written: the same code path).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import numpy as np
import pytest

from _paths import FIXTURES, is_corpus

pytestmark = [pytest.mark.backend]

BACKENDS = FIXTURES / "backends"
PRODUCERS = sorted(p.name for p in BACKENDS.iterdir() if (p / "expected.json").is_file())
TF_KERAS3 = "tf221-keras3"


def _generator() -> Any:
    sys.path.insert(0, str(FIXTURES))
    try:
        import generate_backends
    finally:
        sys.path.remove(str(FIXTURES))
    return generate_backends


def test_every_backend_has_committed_fixtures() -> None:
    assert {TF_KERAS3, "keras3-jax", "keras3-torch"} <= set(PRODUCERS)


@pytest.mark.parametrize("target", ["store", "native.keras"])
@pytest.mark.parametrize("producer", PRODUCERS)
def test_resume_other_backend_exact(producer: str, target: str, keras: Any) -> None:
    import ckptcompat

    expected = json.loads((BACKENDS / producer / "expected.json").read_text())
    keras.backend.clear_session()
    run = ckptcompat.resume(BACKENDS / producer / target)
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
