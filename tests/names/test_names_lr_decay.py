"""Which saved ``decay`` multiplies by the reciprocal (the multi-backend Keras API) and which divides
(OptimizerV2), told from the optimizer config alone; the schedule description each continues as."""

from __future__ import annotations

from ckptcompat.names.lr_decay import PRODUCT_DECAY_NAME, decay_schedule_config, decays_by_product, is_decay_schedule


def test_a_config_without_name_is_the_multi_backend_api() -> None:
    tf14 = {"class_name": "Adam", "config": {"lr": 0.0125, "beta_1": 0.9, "decay": 0.05, "epsilon": 1e-08}}
    keras231 = {"class_name": "SGD", "config": {"learning_rate": 0.01, "momentum": 0.0, "decay": 0.1,
                                                "nesterov": False}}
    assert decays_by_product(tf14) and decays_by_product(keras231)
    assert decays_by_product(tf14["config"])  # the inner config alone


def test_an_optimizer_v2_config_names_itself() -> None:
    tf24 = {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.0125, "decay": 0.05,
                                             "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}
    assert not decays_by_product(tf24)
    assert not decays_by_product(None) and not decays_by_product({}) and not decays_by_product({"config": {}})
    assert not decays_by_product({"class_name": "Adam"}) and not decays_by_product({"class_name": "Adam", "config": None})


def test_the_product_schedule_is_an_inverse_time_decay_with_its_name() -> None:
    product = decay_schedule_config(0.0125, 0.05, product=True)
    assert product["class_name"] == "InverseTimeDecay" and product["config"]["name"] == PRODUCT_DECAY_NAME
    assert "name" not in decay_schedule_config(0.0125, 0.05)["config"]
    assert is_decay_schedule(product, 0.0125, 0.05)  # the same decay either way, for the rate checks
