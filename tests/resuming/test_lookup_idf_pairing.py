"""Which stored ``idf_weights`` ``resuming/lookup_idf.py`` takes and to which live layer they go,
without a framework (the live layers are stand-ins); tests/resuming/test_resume_adapted_vocab.py
proves the real layers against native ``load_weights``."""

from __future__ import annotations

import numpy as np

from ckptcompat.resuming.lookup_idf import _pairs, _stored
from ckptcompat.state import TrainingState


class StringLookup:
    output_mode = "tf_idf"

    def __init__(self, name: str) -> None:
        self.name = name


class IntegerLookup(StringLookup):
    pass


def test_a_real_variable_named_idf_weights_and_a_second_copy_are_not_taken() -> None:
    state = TrainingState(weights={
        "custom/idf_weights": np.ones(3),               # a live variable of the model: matched as such
        "text_vectorization_1/idf_weights": np.ones(8),
        "text_vectorization_1/_lookup_layer/idf_weights": np.ones(8),  # its inner lookup's copy
        "dense/kernel": np.ones((2, 2))})
    found, names = _stored(state, {"custom/idf_weights", "dense/kernel"})
    assert list(found) == ["text_vectorization_1"]
    assert names == ["text_vectorization_1/idf_weights", "text_vectorization_1/_lookup_layer/idf_weights"]


def test_a_layer_of_another_class_in_the_config_keeps_its_idf_weights() -> None:
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "MyLayer", "config": {"name": "mine"}},
        {"class_name": "StringLookup", "config": {"name": "given", "vocabulary": ["a"]}}]}}
    state = TrainingState(weights={"mine/idf_weights": np.ones(2), "given/idf_weights": np.ones(3)},
                          model_config=config)
    assert _stored(state, set()) == ({}, [])  # MyLayer's is its own; the given vocabulary's goes with it


def test_pairs_by_path_then_by_class_in_generated_name_order() -> None:
    live = [(f"string_lookup_{i}", StringLookup(f"string_lookup_{i}")) for i in (20, 21, 22)]
    live += [("integer_lookup_5", IntegerLookup("integer_lookup_5")), ("kept", StringLookup("kept"))]
    stored = {"string_lookup_10": np.full(1, 10.0), "string_lookup_2": np.full(1, 2.0),
              "string_lookup": np.full(1, 0.0), "integer_lookup": np.full(1, -1.0), "kept": np.full(1, 7.0)}
    got = {layer.name: float(value[0]) for layer, value in _pairs(live, stored, "f")}
    assert got == {"kept": 7.0, "string_lookup_20": 0.0, "string_lookup_21": 2.0, "string_lookup_22": 10.0,
                   "integer_lookup_5": -1.0}


def test_unequal_counts_of_a_class_pair_nothing_of_it() -> None:
    live = [("a", StringLookup("a")), ("b", StringLookup("b"))]
    assert _pairs(live, {"string_lookup": np.ones(1), "string_lookup_1": np.ones(1),
                         "string_lookup_2": np.ones(1)}, "f") == []
