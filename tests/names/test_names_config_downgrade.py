"""Keras 3 -> Keras 2 config rules: each rule's outcome, and Keras 2 configs pass unchanged."""

from __future__ import annotations

import copy

import pytest

from ckptcompat.names.config_downgrade import (downgrade_model_config, downgrade_optimizer_config,
                                               downgrade_training_config, dropped_optimizer_keys,
                                               is_keras3_config)

K3_DENSE = {
    "module": "keras.layers", "class_name": "Dense", "registered_name": None,
    "build_config": {"input_shape": [None, 4]},
    "config": {"name": "d1", "trainable": True,
               "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                         "registered_name": None},
               "units": 5, "lora_rank": None,
               "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                      "config": {"seed": None, "input_axes": None}, "registered_name": None}},
    "name": "d1",
    "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 4], "dtype": "float32", "keras_history": ["input_layer", 0, 0]}}],
        "kwargs": {"training": False}}],
}
K3_INPUT = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
            "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "input_layer",
                       "optional": False},
            "name": "input_layer", "inbound_nodes": []}
K3_CONCAT = {"class_name": "Concatenate", "name": "cat", "config": {"name": "cat", "axis": -1},
             "inbound_nodes": [{"args": [[
                 {"class_name": "__keras_tensor__", "config": {"keras_history": ["a", 0, 0]}},
                 {"class_name": "__keras_tensor__", "config": {"keras_history": ["b", 1, 0]}}]],
                 "kwargs": {}}]}
K3_MODEL = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "f", "trainable": True, "layers": [K3_INPUT, K3_DENSE],
                       "input_layers": ["input_layer", 0, 0], "output_layers": ["d1", 0, 0]}}


def test_functional_model_downgrade() -> None:
    before = copy.deepcopy(K3_MODEL)
    out = downgrade_model_config(K3_MODEL)
    assert K3_MODEL == before  # input untouched
    assert set(out) == {"class_name", "config"}
    inp, dense = out["config"]["layers"]
    assert inp["config"]["batch_input_shape"] == [None, 4]
    assert "batch_shape" not in inp["config"] and "optional" not in inp["config"]
    assert dense["config"]["dtype"] == "float32"
    assert "lora_rank" not in dense["config"]
    assert dense["config"]["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert dense["inbound_nodes"] == [[["input_layer", 0, 0, {"training": False}]]]
    assert "build_config" not in dense and "module" not in dense
    assert out["config"]["input_layers"] == [["input_layer", 0, 0]]
    assert out["config"]["output_layers"] == [["d1", 0, 0]]
    assert is_keras3_config(K3_MODEL) and not is_keras3_config(out)


def test_multi_input_node_and_mixed_policy() -> None:
    assert downgrade_model_config(K3_CONCAT)["inbound_nodes"] == [[["a", 0, 0, {}], ["b", 1, 0, {}]]]
    layer = {"class_name": "Dense", "config": {"name": "x", "dtype": {"class_name": "DTypePolicy",
                                                                      "config": {"name": "mixed_float16"}}}}
    assert downgrade_model_config(layer)["config"]["dtype"] == {"class_name": "Policy",
                                                                "config": {"name": "mixed_float16"}}


def test_keras2_config_unchanged() -> None:
    k2 = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32",
                                                "name": "in"}, "name": "in", "inbound_nodes": []},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "dtype": "float32"}, "name": "d",
         "inbound_nodes": [[["in", 0, 0, {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}}
    assert downgrade_model_config(k2) == k2


def test_optimizer_config() -> None:
    k3 = {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
          "config": {"name": "adam", "learning_rate": 0.01, "loss_scale_factor": None,
                     "gradient_accumulation_steps": None, "beta_1": 0.9, "amsgrad": False}}
    out = downgrade_optimizer_config(k3)
    assert out == {"class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.01, "beta_1": 0.9,
                                                    "amsgrad": False, "jit_compile": False,
                                                    "is_legacy_optimizer": False}}
    assert dropped_optimizer_keys(k3) == ["gradient_accumulation_steps", "loss_scale_factor"]
    legacy = downgrade_optimizer_config({"class_name": "Custom>SGD", "config": {"lr": 0.1, "decay": 0.0}})
    assert legacy["class_name"] == "SGD" and legacy["config"]["learning_rate"] == 0.1
    assert "decay" not in legacy["config"] and "lr" not in legacy["config"]
    # Keras 2's decay: the same rate as tf.keras 2.11+'s InverseTimeDecay; Nadam's is its momentum schedule
    decayed = downgrade_optimizer_config({"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.1,
                                                                           "decay": 0.01}})["config"]
    assert decayed["learning_rate"] == {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.01, "staircase": False}}
    assert "decay" not in decayed
    # the multi-backend API's (no name): lr * (1 / (1 + decay t)), named for resume to keep the product
    product = downgrade_optimizer_config({"class_name": "Adam", "config": {"lr": 0.1, "decay": 0.01}})["config"]
    assert product["learning_rate"]["config"]["name"] == "ckptcompat_lr_times_inverse_decay"
    nadam = downgrade_optimizer_config({"class_name": "Nadam", "config": {"learning_rate": 0.1, "decay": 0.004}})
    assert nadam["config"]["learning_rate"] == 0.1 and "decay" not in nadam["config"]
    with pytest.raises(ValueError, match="decay"):  # a rate already a schedule: no equal form
        downgrade_optimizer_config({"class_name": "Adam", "config": {
            "learning_rate": {"class_name": "ExponentialDecay", "config": {}}, "decay": 0.01}})


def test_training_config_keeps_compile_keys() -> None:
    out = downgrade_training_config({"loss": {"module": "keras.losses", "class_name": "MeanSquaredError",
                                              "config": {"name": "mse"}, "registered_name": None},
                                     "metrics": ["mae"], "run_eagerly": False, "steps_per_execution": 1,
                                     "optimizer_config": {"class_name": "SGD", "config": {"learning_rate": 0.1}}})
    assert set(out) == {"loss", "metrics", "weighted_metrics", "loss_weights", "optimizer_config"}
    assert out["loss"] == {"class_name": "MeanSquaredError", "config": {"name": "mse"}}
    assert out["optimizer_config"]["config"]["learning_rate"] == 0.1


def test_nested_model_node_index_shifted() -> None:
    inner = {"class_name": "Functional", "name": "inner", "config": {
        "name": "inner", "layers": [], "input_layers": ["i", 0, 0], "output_layers": ["d", 0, 0]},
        "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                     "config": {"keras_history": ["in", 0, 0]}}], "kwargs": {}}]}
    head = {"class_name": "Dense", "name": "head", "config": {"name": "head"},
            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                         "config": {"keras_history": ["inner", 0, 0]}}], "kwargs": {}}]}
    outer = {"class_name": "Functional", "config": {"name": "o", "layers": [inner, head],
                                                    "input_layers": [["in", 0, 0]],
                                                    "output_layers": [["inner", 0, 0]]}}
    out = downgrade_model_config(outer)
    assert out["config"]["layers"][1]["inbound_nodes"] == [[["inner", 1, 0, {}]]]
    assert out["config"]["layers"][0]["inbound_nodes"] == [[["in", 0, 0, {}]]]
    assert out["config"]["output_layers"] == [["inner", 1, 0]]


def test_null_call_masks_are_not_passed_to_keras2() -> None:
    """Keras 3 records ``mask: null`` for inputs without a mask (Keras 3.0 on BatchNormalization,
    ``[null, null]`` on attention); tf.keras 2.11's BatchNormalization.call() takes no mask. A real
    mask tensor stays."""
    def entry(mask: object) -> dict:
        node = {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["x", 0, 0]}}],
                "kwargs": {"mask": mask, "training": False}}
        return {"class_name": "BatchNormalization", "name": "bn", "config": {"name": "bn"}, "inbound_nodes": [node]}

    for empty in (None, [None, None]):
        assert downgrade_model_config(entry(empty))["inbound_nodes"] == [[["x", 0, 0, {"training": False}]]]
    tensor = {"class_name": "__keras_tensor__", "config": {"keras_history": ["emb", 0, 1]}}
    kwargs = downgrade_model_config(entry(tensor))["inbound_nodes"][0][0][3]
    assert kwargs["mask"] == ["emb", 0, 1]


@pytest.mark.parametrize(("cls", "dtype", "kept"), [
    ("IntegerLookup", {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}, False),
    ("StringLookup", "float32", False),
    ("TextVectorization", {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}, False),
    ("IntegerLookup", "int32", True),  # a dtype Keras 2 reads as this layer's output dtype: kept
    ("TextVectorization", "string", True),
    ("Dense", "float32", True),  # a compute policy: kept
])
def test_a_lookups_float_policy_is_left_to_keras2s_default(cls: str, dtype: object, kept: bool) -> None:
    """Keras 3 writes its float compute policy for lookups and TextVectorization, whose Keras 2
    ``dtype`` is the output (int64) / input (string) dtype and refuses a float one."""
    from ckptcompat.names.config_downgrade import downgrade_layer

    layer = {"class_name": cls, "config": {"name": "x", "dtype": copy.deepcopy(dtype), "output_mode": "int"}}
    out = downgrade_layer(layer)["config"]
    assert ("dtype" in out) is kept
    if kept:
        assert out["dtype"] == dtype
