"""Keras 3.15's recorded Embedding mask (a ``NotEqual`` node) dropped for Keras 2, which propagates
the same mask by itself (names/configs/mask_ops.py); on the config Keras 3.15 wrote for
``Embedding(mask_zero=True) -> LSTM -> GRU`` (fixtures/layer_configs/tf221-keras3/masked_rnn.json).
tests/names/test_names_config_layers.py restores that model's .h5 bitwise in tf-keras."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ckptcompat.names.configs.mask_ops import without_embedding_masks

ROOT = Path(__file__).resolve().parents[2]


def _written() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / "fixtures/layer_configs/tf221-keras3/masked_rnn.json").read_text())
    return config["config"]


def _layer(cfg: dict[str, Any], cls: str) -> dict[str, Any]:
    return next(e for e in cfg["layers"] if e["class_name"] == cls)


def test_the_recorded_embedding_mask_is_dropped() -> None:
    cfg = _written()
    assert [e["class_name"] for e in cfg["layers"]] == ["InputLayer", "Embedding", "NotEqual", "LSTM", "GRU"]
    out = without_embedding_masks(cfg)
    assert [e["class_name"] for e in out["layers"]] == ["InputLayer", "Embedding", "LSTM", "GRU"]
    for cls in ("LSTM", "GRU"):
        assert "mask" in _layer(cfg, cls)["inbound_nodes"][0]["kwargs"]  # the input is left alone
        assert "mask" not in _layer(out, cls)["inbound_nodes"][0]["kwargs"]


def _unchanged(cfg: dict[str, Any]) -> None:
    assert without_embedding_masks(cfg) == cfg


def test_a_not_equal_used_otherwise_is_kept() -> None:
    cfg = _written()
    gru = _layer(cfg, "GRU")["inbound_nodes"][0]
    gru["args"] = [gru["kwargs"]["mask"]]  # the mask fed as data: Keras 2 has no node for it
    _unchanged(cfg)
    cfg = _written()
    cfg["output_layers"] = [_layer(cfg, "NotEqual")["name"], 0, 0]  # the model outputs the mask
    _unchanged(cfg)


def test_a_mask_in_a_list_is_kept() -> None:
    cfg = _written()
    gru = _layer(cfg, "GRU")["inbound_nodes"][0]
    gru["kwargs"]["mask"] = [gru["kwargs"]["mask"], None]  # Concatenate([emb, x]) gets [mask, None]
    _unchanged(cfg)


def test_a_mask_for_a_layer_the_embedding_does_not_feed_is_kept() -> None:
    cfg = _written()
    other = copy.deepcopy(_layer(cfg, "GRU"))
    other["name"] = other["config"]["name"] = "gru_elsewhere"
    inp = _layer(cfg, "InputLayer")["name"]
    other["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = [inp, 0, 0]  # fed the ids directly
    cfg["layers"].append(other)
    _unchanged(cfg)


@pytest.mark.parametrize("between", [{"class_name": "Conv1D", "config": {"name": "between", "filters": 3}},
                                     {"class_name": "LSTM", "config": {"name": "between", "units": 3}}])
def test_a_mask_after_a_layer_that_drops_it_is_kept(between: dict[str, Any]) -> None:
    # Embedding -> Conv1D (Keras 2 drops the mask) or LSTM without return_sequences -> LSTM(mask=...)
    cfg = _written()
    lstm = _layer(cfg, "LSTM")
    entry = {**between, "name": "between", "inbound_nodes": copy.deepcopy(lstm["inbound_nodes"])}
    del entry["inbound_nodes"][0]["kwargs"]["mask"]
    cfg["layers"].insert(cfg["layers"].index(lstm), entry)
    lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["between", 0, 0]
    _unchanged(cfg)


def test_a_shared_embedding_is_kept() -> None:
    cfg = _written()
    emb = _layer(cfg, "Embedding")
    emb["inbound_nodes"].append(copy.deepcopy(emb["inbound_nodes"][0]))  # called on a second input
    _unchanged(cfg)


def test_not_the_embeddings_mask_is_kept() -> None:
    cfg = _written()
    _layer(cfg, "NotEqual")["inbound_nodes"][0]["args"][1] = 1  # ids != 1 is not mask_zero's mask
    _unchanged(cfg)
    cfg = _written()
    _layer(cfg, "Embedding")["config"]["mask_zero"] = False
    _unchanged(cfg)


@pytest.mark.parametrize("damage", ["kwargs_list", "history_list", "config_list", "args_dict"])
def test_odd_configs_are_left_to_the_downgrade(damage: str) -> None:
    cfg = _written()
    gru = _layer(cfg, "GRU")
    if damage == "kwargs_list":
        gru["inbound_nodes"][0]["kwargs"] = [1]
    elif damage == "history_list":
        gru["inbound_nodes"][0]["kwargs"]["mask"]["config"]["keras_history"] = [["x"], 0, 0]
    elif damage == "config_list":
        _layer(cfg, "LSTM")["config"] = ["odd"]  # on the path from the embedding to the GRU
    else:
        _layer(cfg, "NotEqual")["inbound_nodes"][0]["args"] = {"odd": 1}
    _unchanged(cfg)
