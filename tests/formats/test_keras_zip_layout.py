"""Layer paths and variable names of Keras v3 weight files for the layer classes of the zoo
(fixtures/_zoo.py): pure config walks, no framework."""

from __future__ import annotations

from typing import Any

from ckptcompat.formats.keras_zip._layout import var_specs, walk_model_config


def _model(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(layers)}}


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "config": {"name": name, **cfg}}


def _slots(*layers: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s.h5_path, s.prefix, s.class_name) for s in walk_model_config(_model(*layers))]


def test_conv_lstm_variables_live_in_its_cell() -> None:
    slots = _slots(_layer("ConvLSTM2D", "z", filters=2), _layer("ConvLSTM1D", "y", use_bias=False))
    assert slots == [("layers/conv_lstm2d/cell", "z", "ConvLSTMCell"),
                     ("layers/conv_lstm1d/cell", "y", "ConvLSTMCell")]
    assert [s.name for s in var_specs("ConvLSTMCell", {})] == ["kernel", "recurrent_kernel", "bias"]
    assert [s.name for s in var_specs("ConvLSTMCell", {"use_bias": False})] == ["kernel", "recurrent_kernel"]


def test_attention_layers_hold_their_dense_sublayers() -> None:
    assert _slots(_layer("MultiHeadAttention", "mha", num_heads=2, key_dim=2)) == [
        ("layers/multi_head_attention/query_dense", "mha/query", "EinsumDense"),
        ("layers/multi_head_attention/key_dense", "mha/key", "EinsumDense"),
        ("layers/multi_head_attention/value_dense", "mha/value", "EinsumDense"),
        ("layers/multi_head_attention/output_dense", "mha/attention_output", "EinsumDense")]
    gqa = _slots(_layer("GroupQueryAttention", "g", head_dim=2))  # registered alias; the file uses the class
    assert gqa[0] == ("layers/grouped_query_attention/_query_dense", "g/query", "EinsumDense")
    cfg = walk_model_config(_model(_layer("MultiHeadAttention", "m", use_bias=False)))[0].config
    assert [s.name for s in var_specs("EinsumDense", cfg)] == ["kernel"]


def test_keras3_depthwise_kernel_is_named_kernel() -> None:
    assert [s.name for s in var_specs("DepthwiseConv2D", {}, "keras3")] == ["kernel", "bias"]
    assert [s.name for s in var_specs("DepthwiseConv2D", {})] == ["depthwise_kernel", "bias"]
    assert [s.name for s in var_specs("DepthwiseConv1D", {}, "keras2")] == ["depthwise_kernel", "bias"]


def test_layers_with_one_named_variable() -> None:
    def names(cls: str, **cfg: Any) -> list[str]:
        return [s.name for s in var_specs(cls, cfg) or []]

    assert names("Attention", use_scale=True) == ["scale"] and names("Attention") == []
    assert names("AdditiveAttention") == ["scale"]
    assert names("RMSNormalization") == ["scale"]
    assert names("ReversibleEmbedding") == ["embeddings"]
    assert names("ReversibleEmbedding", tie_weights=False) == ["embeddings", "reverse_embeddings"]
    assert names("Normalization") == ["mean", "variance", "count"]
    assert not any(s.trainable for s in var_specs("Normalization", {}) or [])


def test_guessed_optimizer_flags_become_hyperparameters() -> None:
    """A Keras 3.15 ``.keras`` saved after the model was saved to ``.h5`` keeps no optimizer config: the amsgrad the slots show must reach
    the rebuilt optimizer, or its ``vhat`` slots have nowhere to go."""
    from ckptcompat.formats import keras_zip
    from tests._paths import FIXTURES

    path = FIXTURES / "tf221-keras3" / "opt_adam_amsgrad" / "model.keras"
    if not path.exists():
        import pytest
        pytest.skip("corpus fixture not committed")
    opt = keras_zip.read(path).optimizer
    assert opt is not None and opt.config is None  # guessed, not recorded
    assert opt.hyperparameters.get("amsgrad") is True
    assert {"m", "v", "vhat"} <= set(opt.slots["dense/kernel"])
