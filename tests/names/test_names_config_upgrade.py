"""Keras 2 -> Keras 3 config translation (pure functions)."""

from __future__ import annotations

import pytest

from ckptcompat.errors import UnsupportedFormatError
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


# --- rules of names/configs (pure; each asserts the exact translated spelling) ---------------

def test_batch_input_shape_on_any_layer_of_a_sequential() -> None:
    """Keras 2.4+ Sequential: an InputLayer AND batch_input_shape on the first and a later layer."""
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3], "name": "in"}},
        {"class_name": "Conv2D", "config": {"name": "c", "batch_input_shape": [None, 8, 8, 3], "filters": 2}},
        {"class_name": "Dense", "config": {"name": "d", "batch_input_shape": [None, 999], "units": 2}}]}}
    layers = upgrade_model_config(cfg)["config"]["layers"]
    assert [e["class_name"] for e in layers] == ["InputLayer", "Conv2D", "Dense"]
    assert layers[0]["config"]["batch_shape"] == [None, 8, 8, 3]
    assert "batch_input_shape" not in layers[1]["config"] and "batch_input_shape" not in layers[2]["config"]


def test_bare_list_sequential_and_keras1_names() -> None:
    """Keras 1.x: the Sequential config is a list; Convolution2D/nb_filter/border_mode/init/W_regularizer."""
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "Convolution2D", "config": {
            "name": "c", "batch_input_shape": [None, 5, 5, 5], "input_dtype": "float32", "nb_filter": 6,
            "nb_row": 3, "nb_col": 2, "init": "glorot_uniform", "border_mode": "valid", "subsample": [1, 1],
            "dim_ordering": "tf", "W_regularizer": {"name": "WeightRegularizer", "l1": 0.0, "l2": 0.01},
            "b_regularizer": None, "bias": True}},
        {"class_name": "Dropout", "config": {"name": "dr", "p": 0.5}},
        {"class_name": "LSTM", "config": {"name": "l", "output_dim": 6, "inner_init": "orthogonal",
                                          "inner_activation": "hard_sigmoid", "consume_less": "gpu",
                                          "forget_bias_init": "one", "dropout_W": 0.1, "dropout_U": 0.2}}]}
    layers = upgrade_model_config(cfg)["config"]["layers"]
    assert [e["class_name"] for e in layers] == ["InputLayer", "Conv2D", "Dropout", "LSTM"]
    assert layers[0]["config"]["batch_shape"] == [None, 5, 5, 5]
    conv = layers[1]["config"]
    assert (conv["filters"], conv["kernel_size"], conv["padding"], conv["strides"], conv["use_bias"],
            conv["data_format"], conv["kernel_initializer"]) == (6, [3, 2], "valid", [1, 1], True,
                                                                   "channels_last", "glorot_uniform")
    assert conv["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}}
    assert layers[2]["config"]["rate"] == 0.5
    lstm = layers[3]["config"]
    assert (lstm["units"], lstm["recurrent_initializer"], lstm["recurrent_activation"], lstm["dropout"],
            lstm["recurrent_dropout"], lstm["unit_forget_bias"]) == (6, "orthogonal", "hard_sigmoid", 0.1, 0.2, True)
    assert "implementation" not in lstm and "consume_less" not in lstm


def test_keras1_merge_with_function_is_a_named_refusal() -> None:
    import pytest

    from ckptcompat.errors import UnsupportedFormatError

    cfg = {"class_name": "Model", "config": {"name": "m", "layers": [
        {"class_name": "Merge", "name": "mg", "config": {"name": "mg", "mode": ["lambda code", None, None]},
         "inbound_nodes": []}], "input_layers": [], "output_layers": []}}
    with pytest.raises(UnsupportedFormatError, match=r"'mg'.*missing rule: keras1 Merge"):
        upgrade_model_config(cfg, "/x.h5")


def test_rnn_extra_inputs_become_initial_state_and_kwarg_tensors_both_ways() -> None:
    """Keras 2 LSTM node with three tensors = (inputs, h, c); kwargs tensors are [name, node, idx]."""
    from ckptcompat.names.configs.nodes import nodes_to_keras2, nodes_to_keras3

    k2 = [[["dec_in", 0, 0, {}], ["enc", 0, 1, {}], ["enc", 0, 2, {}]]]
    k3 = nodes_to_keras3(k2, "LSTM")
    assert k3[0]["args"][0]["config"]["keras_history"] == ["dec_in", 0, 0]
    assert [t["config"]["keras_history"] for t in k3[0]["kwargs"]["initial_state"]] == [["enc", 0, 1], ["enc", 0, 2]]
    assert nodes_to_keras2(k3, "LSTM") == [[["dec_in", 0, 0, {"initial_state": [["enc", 0, 1], ["enc", 0, 2]]}]]]
    tf_keras_style = [[["emb", 0, 0, {"mask": ["emb", 0, 1], "training": False}]]]
    assert nodes_to_keras3(tf_keras_style, "GRU")[0]["kwargs"]["mask"]["config"]["keras_history"] == ["emb", 0, 1]


def test_old_defaults_and_dtype_policies() -> None:
    from ckptcompat.names.config_downgrade import downgrade_model_config

    gru = upgrade_model_config({"class_name": "GRU", "config": {"name": "g", "units": 2}})
    assert gru["config"]["reset_after"] is False  # Keras <= 2.2 wrote no reset_after
    policy = {"class_name": "Dense", "config": {"name": "d", "units": 1,
                                                "dtype": {"class_name": "Policy", "config": {"name": "mixed_float16"}}}}
    assert upgrade_model_config(policy)["config"]["dtype"] == "mixed_float16"
    k3 = {"class_name": "Dense", "module": "keras.layers", "registered_name": None,
          "config": {"name": "d", "units": 1, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                        "config": {"name": "int64"}, "registered_name": None}}}
    assert downgrade_model_config(k3)["config"]["dtype"] == "int64"


def test_attention_causal_becomes_a_call_argument() -> None:
    """tf.keras <= 2.9 ``Attention(causal=...)`` (the TF 2.4 layer zoo): Keras 3 has no such
    argument and takes ``use_causal_mask=`` per call instead."""
    def entry(causal: bool) -> dict:
        return {"class_name": "AdditiveAttention", "name": "att",
                "config": {"name": "att", "causal": causal, "use_scale": True},
                "inbound_nodes": [[["q", 0, 0, {}], ["v", 0, 0, {}]]]}

    plain = upgrade_layer(entry(False))
    assert plain["config"] == {"name": "att", "use_scale": True}
    assert plain["inbound_nodes"][0]["kwargs"] == {}
    causal = upgrade_layer(entry(True))
    assert "causal" not in causal["config"]
    assert causal["inbound_nodes"][0]["kwargs"] == {"use_causal_mask": True}
    sequential_layer = upgrade_layer({"class_name": "Attention", "config": {"name": "a", "causal": False}})
    assert "inbound_nodes" not in sequential_layer and sequential_layer["config"] == {"name": "a"}
    with pytest.raises(UnsupportedFormatError, match="causal=True"):  # no call to carry it: named refusal
        upgrade_layer({"class_name": "Attention", "config": {"name": "a", "causal": True}})


def test_multihead_attention_build_config_of_tf_keras_is_dropped() -> None:
    """tf.keras 2.13+ writes a MultiHeadAttention ``build_config`` with one ``input_shape``; Keras 3
    would call ``build(input_shape)`` without the value shape (found by the layer zoo's portable
    rank of tf.keras 2.15 and tf-keras 2.21 ``.keras`` files): dropped, the call builds the layer."""
    from ckptcompat.names.config_upgrade import upgrade_layer

    entry = {"class_name": "MultiHeadAttention", "build_config": {"input_shape": [None, 5, 4]},
             "config": {"name": "mha", "num_heads": 2, "key_dim": 2}}
    assert "build_config" not in upgrade_layer(entry)
    dense = {"class_name": "Dense", "build_config": {"input_shape": [None, 4]}, "config": {"name": "d", "units": 2}}
    assert upgrade_layer(dense)["build_config"] == {"input_shape": [None, 4]}


def test_a_recurrent_build_config_with_initial_state_shapes_is_dropped() -> None:
    """tf-keras 2.21 / tf.keras 2.15 ``.keras``: an LSTM called with ``initial_state`` records the list
    of the sequences' and the states' shapes, which Keras 3's ``build`` refuses (found by the
    seq2seq_state composition of fixtures/layer_configs, now also written as ``.keras``)."""
    from ckptcompat.names.config_upgrade import upgrade_layer

    several = {"class_name": "LSTM", "build_config": {"input_shape": [[None, 2, 5], [None, 3], [None, 3]]},
               "config": {"name": "dec", "units": 3}}
    assert "build_config" not in upgrade_layer(several)
    one = {"class_name": "LSTM", "build_config": {"input_shape": [None, 2, 5]}, "config": {"name": "enc", "units": 3}}
    assert upgrade_layer(one)["build_config"] == {"input_shape": [None, 2, 5]}  # one shape: kept


def test_tf_keras_2_4_preprocessing_spellings_are_upgraded() -> None:
    """tf.keras 2.4-2.5 spellings (a real TF 2.4 SavedModel has them): Keras 3 refuses them."""
    from ckptcompat.names.config_upgrade import upgrade_layer

    lookup = upgrade_layer({"class_name": "IntegerLookup", "config": {
        "name": "ids", "max_values": 24, "mask_value": 0, "oov_value": -1, "output_mode": "int"}})
    assert {k: lookup["config"][k] for k in ("max_tokens", "mask_token", "oov_token")} == \
        {"max_tokens": 24, "mask_token": 0, "oov_token": -1}
    assert not {"max_values", "mask_value", "oov_value"} & set(lookup["config"])
    encoding = upgrade_layer({"class_name": "CategoryEncoding", "config": {
        "name": "enc", "max_tokens": 7, "output_mode": "binary"}})
    assert encoding["config"]["num_tokens"] == 7 and encoding["config"]["output_mode"] == "multi_hot"
    assert "max_tokens" not in encoding["config"]
    current = {"class_name": "IntegerLookup", "config": {"name": "ids", "max_tokens": 5, "output_mode": "count"}}
    assert upgrade_layer(current)["config"]["output_mode"] == "count"
    assert upgrade_layer({"class_name": "StringLookup", "config": {"name": "s", "output_mode": "tf-idf"}}
                         )["config"]["output_mode"] == "tf_idf"
    user = {"class_name": "MyHead", "config": {"name": "h", "output_mode": "binary"}}
    assert upgrade_layer(user)["config"]["output_mode"] == "binary", "a user layer's own argument is not renamed"


def test_keras1_embedding_locally_connected_and_convlstm_configs() -> None:
    """Found by the generated Keras 1 corpus: an Embedding's ``input_dtype`` is its integer input's
    (the Keras 3 InputLayer's; as the layer's ``dtype`` its weights would be int32); LocallyConnected
    and ConvLSTM2D take the convolution (and recurrent) renames."""
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "Embedding", "config": {"name": "e", "batch_input_shape": [None, 5], "input_dtype": "int32",
                                               "input_dim": 10, "output_dim": 4, "mask_zero": True}},
        {"class_name": "LocallyConnected1D", "config": {"name": "lc", "nb_filter": 3, "filter_length": 2,
                                                        "border_mode": "valid", "subsample_length": 1}},
        {"class_name": "ConvLSTM2D", "config": {"name": "cl", "nb_filter": 2, "nb_row": 2, "nb_col": 3,
                                                "dim_ordering": "th", "border_mode": "valid",
                                                "inner_init": "orthogonal",
                                                "inner_activation": "hard_sigmoid", "forget_bias_init": "one",
                                                "dropout_W": 0.1, "dropout_U": 0.2, "subsample": [1, 1]}}]}
    from ckptcompat.names.configs.keras1 import keras1_to_keras2_model

    layers = keras1_to_keras2_model(cfg)["config"]["layers"]
    assert "dtype" not in layers[0]["config"]
    upgraded = upgrade_model_config({"class_name": "Sequential", "config": cfg["config"][:1]})["config"]["layers"]
    assert upgraded[1]["class_name"] == "Embedding" and upgraded[1]["config"].get("dtype") != "int32"
    assert upgraded[0]["class_name"] == "InputLayer" and upgraded[0]["config"]["dtype"] == "int32"
    lc = next(e["config"] for e in layers if e["class_name"] == "LocallyConnected1D")
    assert (lc["filters"], lc["kernel_size"], lc["padding"], lc["strides"]) == (3, 2, "valid", 1)
    cl = next(e["config"] for e in layers if e["class_name"] == "ConvLSTM2D")
    assert (cl["filters"], cl["kernel_size"], cl["data_format"], cl["recurrent_initializer"],
            cl["recurrent_activation"], cl["dropout"], cl["recurrent_dropout"], cl["unit_forget_bias"]) == (
        2, [2, 3], "channels_first", "orthogonal", "hard_sigmoid", 0.1, 0.2, True)


def test_keras2_hard_sigmoid_is_warned_in_keras3(caplog: pytest.LogCaptureFixture) -> None:
    """Keras 1/2 ``hard_sigmoid`` (0.2x + 0.5) is not Keras 3's (x/6 + 0.5): kept, and said."""
    lstm = {"class_name": "LSTM", "config": {"name": "l", "units": 3, "recurrent_activation": "hard_sigmoid"}}
    with caplog.at_level("WARNING"):
        out = upgrade_layer(lstm)
    assert out["config"]["recurrent_activation"] == "hard_sigmoid"
    assert "recurrent_activation='hard_sigmoid'" in caplog.text and "'l'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        upgrade_layer(out)  # a Keras 3 entry (it names its module): Keras 3's own meaning, nothing to say
        upgrade_layer({"class_name": "LSTM", "config": {"name": "s", "recurrent_activation": "sigmoid"}})
    assert "hard_sigmoid" not in caplog.text


def test_keras3_hard_sigmoid_is_warned_in_keras2(caplog: pytest.LogCaptureFixture) -> None:
    from ckptcompat.names.config_downgrade import downgrade_layer

    keras3 = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
              "config": {"name": "d", "units": 2, "activation": "hard_sigmoid"}}
    with caplog.at_level("WARNING"):
        out = downgrade_layer(keras3)
    assert out["config"]["activation"] == "hard_sigmoid" and "activation='hard_sigmoid'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        downgrade_layer({"class_name": "Dense", "config": {"name": "k2", "units": 2, "activation": "hard_sigmoid"}})
    assert "hard_sigmoid" not in caplog.text  # a Keras 2 config in a Keras 2 consumer: the same function
