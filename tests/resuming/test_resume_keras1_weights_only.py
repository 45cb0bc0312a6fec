"""A Keras 1 ``save_weights`` file (no config) resumed into a model built in this process.

Keras 2.0-2.3's ``load_weights`` converted such a file through the live layers' classes, paired
in order; tf.keras and Keras 3 dropped that (Keras 3 refuses a channels-first kernel's shape).
ckptcompat converts it the same way (resuming/keras1_pairing.py). The files are the Keras 1.2.2
corpus's ``weights.h5`` (fixtures/generate_keras1.py, beside each ``model.h5`` holding the same
weights); the live model is the case's model rebuilt with every layer renamed, as a new process
names them, so neither the names nor the file's missing config can pair anything: only the
classes in order. The tensors must equal what ckptcompat restores from the case's ``model.h5``
(which the resume table checks against Keras 2.3's own conversion), bitwise.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pytest

import ckptcompat
from ckptcompat import runtime
from ckptcompat.errors import IncompatibleStateError
from _paths import FIXTURES

pytestmark = pytest.mark.framework

CORPUS = FIXTURES / "keras122-tf115-py37"
#: every rank's zoo with channels-first kernels, and the compositions (one Dense-only model is
#: enough of the nine optimizer cases: they share it)
CASES = ["zoo_rank2_tf", "zoo_rank3_tf", "zoo_rank4_th", "zoo_rank5_th", "seq_input_shape_th_sgd",
         "masked_rnn_adam", "multi_io_shared_adam", "nested_seq_adam", "nested_frozen_adam", "opt_adam"]


def _layer_names(config: Any) -> set[str]:
    out: set[str] = set()
    layers = config.get("layers") if isinstance(config, dict) else None
    for entry in layers or []:
        inner = entry.get("config") or {}
        out.add(inner.get("name") or entry.get("name"))
        out |= _layer_names(inner)
    return out - {None}


def _renamed(value: Any, names: set[str]) -> Any:
    """Every string naming a layer, renamed (the nodes' references with the layers)."""
    if isinstance(value, str):
        return f"fresh_{value}" if value in names else value
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    return value


def _fresh(model: Any) -> Any:
    config = json.loads(json.dumps(model.get_config()))  # tuples as lists
    names = _layer_names(config)
    fresh = type(model).from_config(_renamed(config, names))
    assert names and not names & {layer.name for layer in fresh.layers}
    return fresh


@pytest.mark.parametrize("case", CASES)
def test_keras1_weights_file_resumes_into_a_fresh_model(keras, case: str, caplog) -> None:
    base = ckptcompat.resume(CORPUS / case / "model.h5", compile=False).model
    fresh = _fresh(base)
    with caplog.at_level(logging.INFO, logger="ckptcompat"):
        run = ckptcompat.resume(CORPUS / case / "weights.h5", model=fresh)
    assert "a Keras 1 weights file without config, converted through the live layers' classes" in caplog.text
    assert run.report.matching == "structure" and run.report.by_structure
    want = list(runtime.capture(base).weights.values())  # model order; the names differ
    got = list(runtime.capture(fresh).weights.values())
    assert len(got) == len(want)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want))


def test_keras1_weights_file_into_another_architecture_lists_every_misfit(keras) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7), keras.layers.Dense(3)])
    with pytest.raises(IncompatibleStateError) as info:
        ckptcompat.resume(CORPUS / "opt_adam" / "weights.h5", model=model)
    assert len(info.value.mismatches) >= 4 and "dense_1_W" in str(info.value)
    bias = [v for v in runtime.capture(model).weights.values() if np.shape(v) == (7,)]
    assert len(bias) == 1 and not np.any(bias[0])  # nothing assigned


def test_keras1_weights_file_inspects_and_tells_the_way_on(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="ckptcompat"):
        info = ckptcompat.inspect(CORPUS / "zoo_rank4_th" / "weights.h5")
    assert info.variables and "resume(path, model=...)" in caplog.text
