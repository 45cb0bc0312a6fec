"""Arguments later tf.keras releases added are dropped (at their neutral value) for older ones."""

from __future__ import annotations

import pytest

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.names.configs.keras2_releases import for_keras2_release, release_tuple


def _model(synchronized: object) -> dict:
    bn = {"class_name": "BatchNormalization", "config": {"name": "bn", "synchronized": synchronized}}
    wrapped = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": bn}}
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [bn, wrapped]}}


def _bn_configs(config: dict) -> list[dict]:
    layers = config["config"]["layers"]
    return [layers[0]["config"], layers[1]["config"]["layer"]["config"]]


def test_an_older_release_gets_the_argument_dropped_everywhere() -> None:
    source = _model(False)
    out = for_keras2_release(source, "2.11.0")
    assert all("synchronized" not in cfg for cfg in _bn_configs(out))
    assert all(cfg["synchronized"] is False for cfg in _bn_configs(source))  # the input is untouched


@pytest.mark.parametrize("version", ["2.12.0", "2.15.1", "2.21.0", "unknown"])
def test_a_release_that_knows_the_argument_keeps_it(version: str) -> None:
    assert all(cfg["synchronized"] is False for cfg in _bn_configs(for_keras2_release(_model(False), version)))


def test_a_value_the_older_release_cannot_express_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"'bn' \(BatchNormalization\): synchronized=True needs "
                                                     r"tf.keras 2.12\+; this is 2.4.0"):
        for_keras2_release(_model(True), "2.4.0", path="m.h5")


def test_release_tuple() -> None:
    assert release_tuple("2.4.0") == (2, 4) and release_tuple("2.11.0-rc1") == (2, 11)
    assert release_tuple("nightly") == (99, 0)


def test_pooling_keepdims_and_loss_axis_for_tf24() -> None:
    pool = {"class_name": "GlobalAveragePooling1D", "config": {"name": "gap", "keepdims": False}}
    training = {"loss": {"class_name": "BinaryCrossentropy", "config": {"axis": -1, "from_logits": False}}}
    assert "keepdims" not in for_keras2_release(pool, "2.4.0")["config"]
    assert for_keras2_release(training, "2.4.0")["loss"]["config"] == {"from_logits": False}
    assert for_keras2_release(training, "2.11.0") == training   # 2.11 accepts it
    with pytest.raises(UnsupportedFormatError, match="keepdims=True"):
        for_keras2_release({**pool, "config": {"keepdims": True}}, "2.4.0")


def test_tf20_gets_model_for_functional_and_no_conv_groups() -> None:
    conv = {"class_name": "Conv2D", "config": {"name": "c", "groups": 1, "filters": 4}}
    model = {"class_name": "Functional", "config": {"name": "m", "layers": [conv]}}
    old = for_keras2_release(model, "2.2.4-tf")
    assert old["class_name"] == "Model" and old["config"]["layers"][0]["config"] == {"name": "c", "filters": 4}
    assert for_keras2_release(model, "2.4.0") == model


def test_multi_head_attention_shapes_are_metadata_before_tf_keras_2_5() -> None:
    """tf.keras 2.5+ write and require query/key/value_shape (to build at once); 2.4 refuses them
    and builds the layer at its first call: dropped at any value there, kept from 2.5."""
    shapes = {"query_shape": [None, 5, 4], "key_shape": [None, 5, 4], "value_shape": None}
    mha = {"class_name": "MultiHeadAttention", "config": {"name": "mha", "num_heads": 2, **shapes}}
    assert for_keras2_release(mha, "2.4.0")["config"] == {"name": "mha", "num_heads": 2}
    assert for_keras2_release(mha, "2.11.0")["config"] == mha["config"]


def test_attention_dropout_before_tf_keras_2_4() -> None:
    """tf.keras 2.2.4-tf (TF 1.15) Attention has no dropout: dropped at 0.0, refused otherwise."""
    def att(rate: float) -> dict:
        return {"class_name": "AdditiveAttention", "config": {"name": "att", "dropout": rate, "use_scale": True}}

    assert for_keras2_release(att(0.0), "2.2.4-tf")["config"] == {"name": "att", "use_scale": True}
    assert for_keras2_release(att(0.0), "2.4.0")["config"]["dropout"] == 0.0
    with pytest.raises(UnsupportedFormatError, match=r"dropout=0.5 needs tf.keras 2.4\+"):
        for_keras2_release(att(0.5), "2.2.4-tf")
