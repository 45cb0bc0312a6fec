"""Keras 2 -> Keras 3 config translation (pure functions)."""

from __future__ import annotations

from ckptcompat.names.config_upgrade import (convert_inbound_nodes, upgrade_layer, upgrade_model_config,
                                             upgrade_optimizer_config)


def test_input_layer_batch_shape_and_ragged() -> None:
    out = upgrade_layer({"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "ragged": False,
                                                              "name": "x"}})
    assert out["config"] == {"batch_shape": [None, 4], "name": "x"}
    assert out["module"] == "keras.layers"


def test_inbound_nodes_single_and_multi() -> None:
    single = convert_inbound_nodes([[["bn", 0, 0, {}]]])
    assert single == [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None], "dtype": "float32", "keras_history": ["bn", 0, 0]}}], "kwargs": {}}]
    multi = convert_inbound_nodes([[["a", 0, 0, {}], ["b", 1, 0, {"training": True}]]])
    assert [t["config"]["keras_history"] for t in multi[0]["args"][0]] == [["a", 0, 0], ["b", 1, 0]]
    assert multi[0]["kwargs"] == {"training": True}
    assert convert_inbound_nodes(single) is single  # Keras 3 form passes through


def test_keras2_only_keys_dtype_policy_axis_initializer() -> None:
    gru = upgrade_layer({"class_name": "GRU", "config": {"time_major": False, "reset_after": True, "units": 3,
                                                        "recurrent_initializer": {"class_name": "Orthogonal",
                                                                                  "config": {}}}})
    assert "time_major" not in gru["config"] and gru["config"]["reset_after"] is True
    assert gru["config"]["recurrent_initializer"]["class_name"] == "OrthogonalInitializer"
    bn = upgrade_layer({"class_name": "BatchNormalization", "config": {
        "axis": [3], "fused": None, "dtype": {"class_name": "Policy", "config": {"name": "mixed_float16"}}}})
    assert bn["config"] == {"axis": 3, "dtype": "mixed_float16"}


def test_model_config_nested_and_sequential_input() -> None:
    cfg = {"class_name": "Model", "config": {"name": "m", "layers": [
        {"class_name": "Sequential", "config": {"name": "inner", "layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 2, "batch_input_shape": [None, 3]}}]},
         "inbound_nodes": [[["x", 0, 0, {}]]]}]}}
    out = upgrade_model_config(cfg)
    assert cfg["class_name"] == "Model"  # input not mutated
    assert out["class_name"] == "Functional"
    inner = out["config"]["layers"][0]
    assert [e["class_name"] for e in inner["config"]["layers"]] == ["InputLayer", "Dense"]
    assert inner["config"]["layers"][0]["config"]["batch_shape"] == [None, 3]
    assert "batch_input_shape" not in inner["config"]["layers"][1]["config"]
    assert upgrade_model_config(out) == out  # idempotent


def test_optimizer_config() -> None:
    out = upgrade_optimizer_config({"class_name": "Custom>Adam", "config": {
        "name": "Adam", "lr": 0.01, "decay": 0.0, "is_legacy_optimizer": False, "jit_compile": True, "beta_1": 0.8}})
    assert out == {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
                   "config": {"name": "adam", "learning_rate": 0.01, "beta_1": 0.8}}
    assert upgrade_optimizer_config("rmsprop")["class_name"] == "RMSprop"
