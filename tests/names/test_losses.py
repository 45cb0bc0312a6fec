"""Loss configs spelled for Keras 3's deserializer (``ckptcompat.names.losses``)."""

from __future__ import annotations

from ckptcompat.names.losses import BUILT_IN_LOSSES, loss_for_keras3


def test_a_built_in_loss_class_gets_its_keras3_module() -> None:
    legacy = {"class_name": "MeanSquaredError", "config": {"name": "mse", "reduction": "auto"}}
    assert loss_for_keras3(legacy) == {
        "module": "keras.losses", "class_name": "MeanSquaredError", "registered_name": None,
        "config": {"name": "mse", "reduction": "sum_over_batch_size"}}
    assert legacy["config"]["reduction"] == "auto"  # the input is not changed


def test_names_custom_classes_and_complete_configs_are_left_alone() -> None:
    assert loss_for_keras3("mse") == "mse"
    custom = {"class_name": "MyLoss", "config": {}}
    assert loss_for_keras3(custom) == custom
    done = {"module": "keras.losses", "class_name": "Huber", "config": {"delta": 2.0},
            "registered_name": None}
    assert loss_for_keras3(done) == done and loss_for_keras3(done) is not done


def test_per_output_and_listed_losses_are_each_spelled() -> None:
    cce = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    out = loss_for_keras3({"head": cce, "aux": "mae"})
    assert out["head"]["module"] == "keras.losses" and out["aux"] == "mae"
    assert loss_for_keras3([cce, "mse"])[0]["module"] == "keras.losses"
    assert {"MeanSquaredError", "SparseCategoricalCrossentropy", "Huber"} <= BUILT_IN_LOSSES


def test_reduction_auto_is_spelled_even_with_a_module() -> None:
    """tf.keras 2.13-2.15 .keras files carry the module and Keras 2's reduction."""
    tf_keras = {"module": "keras.losses", "class_name": "Huber", "registered_name": None,
                "config": {"delta": 1.0, "reduction": "auto", "name": "huber_loss"}}
    out = loss_for_keras3(tf_keras)
    assert out["config"] == {"delta": 1.0, "reduction": "sum_over_batch_size", "name": "huber_loss"}
    assert out["module"] == "keras.losses" and tf_keras["config"]["reduction"] == "auto"
