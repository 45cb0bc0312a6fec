"""The generated Keras 1 corpus (fixtures/generate_keras1.py: Keras 1.2.2 wrote every file), read
without any framework: every weight and optimizer slot as Keras 2.3's own conversion made it (the
manifest's truth, checked by the generator layer by layer against what Keras 1 computed), bitwise.

The resume table (tests/matrix/test_resume_table.py) resumes the same files in every framework
environment; this test says, file by file, what the reader alone gets right.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.formats import keras_h5
from _keras_h5_manifest import read_options

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PRODUCER = "keras122-tf115-py37"


def _entries() -> list[dict[str, Any]]:
    manifest = FIXTURES / PRODUCER / "manifest.json"
    return json.loads(manifest.read_text())["fixtures"] if manifest.is_file() else []


def _sha(value: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["path"])
def test_keras1_file_reads_as_keras_2_3_converts_it(entry: dict[str, Any]) -> None:
    path = FIXTURES / PRODUCER / entry["path"]
    state = keras_h5.read(path, **read_options(path, entry))  # weights.h5: its classes from model.h5's config
    truth = {(t["owner"], t["slot"] or ""): t["sha256"] for t in entry["tensors"]}
    got = {(name, ""): _sha(value) for name, value in state.weights.items()}
    slots = state.optimizer.slots if state.optimizer is not None else {}
    got.update({(name, slot): _sha(value) for name, per in slots.items() for slot, value in per.items()})
    assert sorted(got) == sorted(truth), entry["path"]
    assert [k for k in truth if got[k] != truth[k]] == [], entry["path"]
    if entry["kind"] == "weights":  # save_weights: no optimizer
        assert state.optimizer is None and entry["optimizer"] is None
        return
    assert state.optimizer is not None and state.optimizer.class_name == entry["optimizer"]["class"]
    assert state.optimizer.iterations == entry["optimizer"]["iterations"]


def test_the_keras1_corpus_covers_every_keras1_class_with_weights() -> None:
    corpus = json.loads((FIXTURES / PRODUCER / "manifest.json").read_text())["corpus"][PRODUCER]
    covered = set(corpus["layers"]["covered"])
    assert {"Dense", "Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D", "AtrousConvolution2D",
            "Deconvolution2D", "SeparableConvolution2D", "LSTM", "GRU", "SimpleRNN", "ConvLSTM2D", "Embedding",
            "BatchNormalization", "PReLU", "LocallyConnected1D", "LocallyConnected2D", "Bidirectional",
            "TimeDistributed"} <= covered
    assert {"Highway", "MaxoutDense"} <= set(corpus["layers"]["left_out"])
    assert len(corpus["optimizers"]["cases"]) == 9
