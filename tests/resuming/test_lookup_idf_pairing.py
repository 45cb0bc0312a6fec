"""Which stored ``idf_weights`` ``resuming/lookup_idf.py`` takes and to which live layer they go,
without a framework (the live layers are stand-ins); tests/resuming/test_resume_adapted_vocab.py
proves the real layers against native ``load_weights``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ckptcompat.resuming.lookup_idf import _pairs, _stored
from ckptcompat.state import TrainingState


class StringLookup:
    output_mode = "tf_idf"

    def __init__(self, name: str, output_mode: str = "tf_idf") -> None:
        self.name, self.output_mode = name, output_mode


class IntegerLookup(StringLookup):
    pass


class Dense:
    def __init__(self, name: str) -> None:
        self.name = name


class _Model:
    def __init__(self, *layers: Any) -> None:
        self.layers = list(layers)


def _got(pairs: list[tuple[Any, np.ndarray]]) -> dict[str, float]:
    return {layer.name: float(value[0]) for layer, value in pairs}


def test_a_real_variable_named_idf_weights_and_a_second_copy_are_not_taken() -> None:
    state = TrainingState(weights={
        "custom/idf_weights": np.ones(3),               # a live variable of the model: matched as such
        "my_layer_3/idf_weights": np.ones(3),           # no lookup's name, no config: not a lookup's
        "text_vectorization_1/idf_weights": np.ones(8),
        "text_vectorization_1/_lookup_layer/idf_weights": np.ones(8),  # its inner lookup's copy
        "dense/kernel": np.ones((2, 2))})
    found, names = _stored(state, {"custom/idf_weights", "dense/kernel"}, set())
    assert list(found) == ["text_vectorization_1"]
    assert names == ["text_vectorization_1/idf_weights", "text_vectorization_1/_lookup_layer/idf_weights"]


def test_a_layer_of_another_class_in_the_config_keeps_its_idf_weights() -> None:
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "MyLayer", "config": {"name": "string_lookup"}},
        {"class_name": "StringLookup", "config": {"name": "given", "vocabulary": ["a"]}}]}}
    state = TrainingState(weights={"string_lookup/idf_weights": np.ones(2), "given/idf_weights": np.ones(3)},
                          model_config=config)
    assert _stored(state, set(), set()) == ({}, [])  # MyLayer's is its own; the given vocabulary's goes with it


def test_pairs_by_the_files_positions_then_by_path_then_by_generated_name_order() -> None:
    model = _Model(*(StringLookup(f"string_lookup_{i}") for i in (20, 21, 22)), IntegerLookup("integer_lookup_5"),
                   StringLookup("kept"), StringLookup("body"), StringLookup("title"))
    stored = {"string_lookup_10": np.full(1, 10.0), "string_lookup_2": np.full(1, 2.0),
              "string_lookup": np.full(1, 0.0), "integer_lookup": np.full(1, -1.0), "kept": np.full(1, 7.0),
              "label_of_body": np.full(1, 5.0), "label_of_title": np.full(1, 6.0)}
    # Keras 3.8+ labels: the file's positions say which live layer each labelled group was
    positions = {"label_of_body": "body", "label_of_title": "title"}
    got = _got(_pairs(model, stored, positions, "f"))
    assert got == {"kept": 7.0, "body": 5.0, "title": 6.0, "string_lookup_20": 0.0, "string_lookup_21": 2.0,
                   "string_lookup_22": 10.0, "integer_lookup_5": -1.0}
    assert _got(_pairs(model, stored, None, "f")) == {"kept": 7.0}  # a config's names: by path only


def test_a_stored_path_naming_a_layer_that_is_no_tf_idf_lookup_pairs_with_none() -> None:
    model = _Model(StringLookup("string_lookup", output_mode="int"), StringLookup("string_lookup_1"), Dense("dense"))
    assert _pairs(model, {"string_lookup": np.ones(1)}, {}, "f") == []


def test_unequal_counts_of_a_class_pair_nothing_of_it() -> None:
    model = _Model(StringLookup("a"), StringLookup("b"))
    assert _pairs(model, {"string_lookup": np.ones(1), "string_lookup_1": np.ones(1),
                          "string_lookup_2": np.ones(1)}, {}, "f") == []
    assert _pairs(_Model(StringLookup("a")), {"integer_lookup": np.ones(1)}, {}, "f") == []  # class differs


def test_the_files_positions_come_before_names_that_collide() -> None:
    """Created title first, called body first, rebuilt in a fresh process: the file's position
    ``string_lookup`` is the body's, the live layer named ``string_lookup`` the title (native pairs
    by position)."""
    model = _Model(StringLookup("string_lookup_1"), StringLookup("string_lookup"))  # body, title
    stored = {"string_lookup": np.full(1, 1.0), "string_lookup_1": np.full(1, 2.0)}  # body's, title's
    positions = {"string_lookup": "string_lookup_1", "string_lookup_1": "string_lookup"}
    assert _got(_pairs(model, stored, positions, "f")) == {"string_lookup_1": 1.0, "string_lookup": 2.0}
