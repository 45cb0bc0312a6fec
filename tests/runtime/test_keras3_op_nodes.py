"""Keras's own operation nodes in a functional ``.h5`` config (runtime/keras3.py ``_op_classes``):
Keras 3.15 records an ``Embedding(mask_zero=True)`` mask as a ``NotEqual`` node, which Keras's
legacy ``.h5`` deserializer cannot find (its own ``load_model`` fails, 3.15 included). Only a node
whose config is its name alone is resolved, only from Keras's ops modules; a user's layer that
happens to share an operation's name, or a node naming another module, is left to the usual
"pass custom_objects" refusal. tests/names/test_names_config_layers.py resumes the real file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _frameworks import keras_backend

pytestmark = pytest.mark.backend  # Keras 3 on any backend (skips on Keras 2)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def op_classes() -> Any:
    if keras_backend() is None:
        pytest.skip("Keras 3 only")
    from ckptcompat.runtime.keras3 import _op_classes

    return _op_classes


def _config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(entries)}}


def test_the_recorded_mask_node_resolves_to_keras_own_operation(op_classes: Any) -> None:
    written = json.loads((ROOT / "fixtures/layer_configs/tf221-keras3/masked_rnn.json").read_text())
    found = op_classes(written)
    assert list(found) == ["NotEqual"] and found["NotEqual"].__module__ == "keras.src.ops.numpy"
    legacy = {"class_name": "NotEqual", "config": {"name": "not_equal_1"}, "name": "not_equal_1"}  # .h5: no module
    assert list(op_classes(_config(legacy))) == ["NotEqual"]


def test_a_users_layer_named_like_an_operation_is_not_replaced(op_classes: Any) -> None:
    mine = {"class_name": "Square", "config": {"name": "square", "trainable": True, "dtype": "float32"},
            "name": "square"}
    assert op_classes(_config(mine)) == {}


@pytest.mark.parametrize("module", ["keras.src.ops.operation_test", "keras.src.ops.function", "my_pkg.ops"])
def test_no_module_outside_keras_ops_is_imported(op_classes: Any, module: str) -> None:
    import sys

    before = set(sys.modules)
    node = {"module": module, "class_name": "OpWithMultipleInputs", "config": {"name": "x"}, "name": "x"}
    assert op_classes(_config(node, {**node, "class_name": "Function"})) == {}
    assert not {m for m in set(sys.modules) - before if m.startswith(("keras.src.ops.operation_test", "my_pkg"))}


def test_an_operation_named_like_another_keras_object_is_not_given(op_classes: Any) -> None:
    # custom_objects apply to the whole model: an operation "Mean" would shadow keras.metrics.Mean
    node = {"class_name": "Mean", "config": {"name": "mean"}, "name": "mean"}
    assert op_classes(_config(node)) == {}


def test_a_nested_models_mask_node_resolves(op_classes: Any) -> None:
    legacy = {"class_name": "NotEqual", "config": {"name": "not_equal"}, "name": "not_equal"}
    nested = {"class_name": "Functional", "name": "inner", "config": {"name": "inner", "layers": [legacy]}}
    assert list(op_classes(_config(nested))) == ["NotEqual"]


def test_a_deeply_nested_config_is_searched_to_a_bound(op_classes: Any) -> None:
    config: dict[str, Any] = {"class_name": "NotEqual", "config": {"name": "not_equal"}, "name": "not_equal"}
    for depth in range(500):
        config = {"class_name": "Functional", "name": f"m{depth}", "config": {"name": f"m{depth}", "layers": [config]}}
    assert op_classes(config) == {}  # beyond the bound: not searched, and no RecursionError


def test_a_masked_recurrent_nested_model_in_h5_resumes_bitwise(tmp_path: Path) -> None:
    """Keras 3 writes the nested model's NotEqual node too; its own load_model refuses the file."""
    if keras_backend() is None:
        pytest.skip("Keras 3 only")
    import keras
    import numpy as np

    import ckptcompat

    ids = keras.Input((5,), dtype="int32")
    seq = keras.layers.LSTM(3, return_sequences=True)(keras.layers.Embedding(20, 4, mask_zero=True)(ids))
    inner = keras.Model(ids, seq, name="inner")
    outer_in = keras.Input((5,), dtype="int32")
    model = keras.Model(outer_in, keras.layers.GRU(2)(inner(outer_in)))
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.integers(0, 20, (8, 5)), rng.random((8, 2)), verbose=0)
    model.save(tmp_path / "nested.h5")
    nested_layers = json.loads(model.to_json())["config"]["layers"][1]["config"]["layers"]
    assert "NotEqual" in [entry["class_name"] for entry in nested_layers]  # what this test is about
    result = ckptcompat.resume(tmp_path / "nested.h5")
    assert all(np.array_equal(a, b) for a, b in zip(result.model.get_weights(), model.get_weights(), strict=True))
    assert len(result.report.restored_slots) == len(model.optimizer.variables) - 2  # all but iterations, lr
