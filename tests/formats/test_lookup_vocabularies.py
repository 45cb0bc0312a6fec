"""Where adapted lookup vocabularies live in files, read into the layer config (no framework).

``.keras``: ``assets/<object path>/vocabulary.txt`` plus a ``tf_idf`` layer's ``idf_weights``
stored by name among its variables (``formats/keras_zip/_assets.py``); SavedModel: the
``_table`` key/value tensors (``formats/saved_model/_tables.py``). The files the releases
write themselves are resumed in tests/resuming/test_resume_adapted_vocab.py and the
``adapted_lookup`` fixtures; the real TF 2.4 SavedModel in tests/corpora/test_real_saved_models.py.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from ckptcompat.formats.keras_zip._assets import config_with_vocabularies, read_vocabularies
from ckptcompat.formats.saved_model._tables import _vocabulary, config_with_table_vocabularies


def _config(*layers: tuple[str, str, dict]) -> dict:
    return {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": cls, "config": {"name": name, **cfg}} for cls, name, cfg in layers]}}


def test_assets_fill_the_vocabulary_and_take_tf_idf_weights_out_of_the_weights(tmp_path: Path) -> None:
    config = _config(("InputLayer", "in", {}),
                     ("StringLookup", "words", {"output_mode": "tf_idf", "vocabulary": None, "max_tokens": 6,
                                                "pad_to_max_tokens": True}),
                     ("IntegerLookup", "ids", {"vocabulary": None, "vocabulary_dtype": "int64"}),
                     ("Dense", "dense", {}))
    weights = {"words/idf_weights": np.array([0.5, 1.0, 1.5, 0.0, 0.0, 0.0], "float32"),
               "dense/kernel": np.ones((2, 2), "float32")}
    vocabularies = {"layers/string_lookup": "[UNK]\na\nb\n", "layers/integer_lookup": "-1\n9\n5",
                    "layers/text_vectorization/_lookup_layer": "ignored"}
    out = config_with_vocabularies(config, vocabularies, weights, tmp_path / "m.keras")
    words, ids = out["config"]["layers"][1]["config"], out["config"]["layers"][2]["config"]
    assert words["vocabulary"] == ["[UNK]", "a", "b"] and words["idf_weights"] == [0.5, 1.0, 1.5]
    assert ids["vocabulary"] == [-1, 9, 5]
    assert list(weights) == ["dense/kernel"]
    assert config["config"]["layers"][1]["config"]["vocabulary"] is None, "the caller's config is not changed"


def test_a_vocabulary_given_to_the_constructor_is_kept(tmp_path: Path) -> None:
    config = _config(("StringLookup", "words", {"vocabulary": ["x", "y"]}))
    out = config_with_vocabularies(config, {"layers/string_lookup": "[UNK]\na"}, {}, tmp_path / "m.keras")
    assert out["config"]["layers"][0]["config"]["vocabulary"] == ["x", "y"]


def test_vocabulary_assets_are_read_windows_line_ends_too_and_non_utf8_left_out(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("assets/layers/string_lookup/vocabulary.txt", "[UNK]\r\nä\r\nb")
        zf.writestr("assets/layers/other/notes.txt", "no")
        zf.writestr("assets/layers/integer_lookup/vocabulary.txt", b"\xff\xfe")
    with zipfile.ZipFile(path) as zf:
        assert read_vocabularies(zf, path) == {"layers/string_lookup": "[UNK]\nä\nb"}


def test_an_adapted_empty_string_token_on_the_last_line_is_kept(tmp_path: Path) -> None:
    config = _config(("StringLookup", "words", {"vocabulary": None, "vocabulary_size": 3}))
    out = config_with_vocabularies(config, {"layers/string_lookup": "[UNK]\na\n"}, {}, tmp_path / "m.keras")
    assert out["config"]["layers"][0]["config"]["vocabulary"] == ["[UNK]", "a", ""]


def test_given_vocabulary_keeps_its_idf_and_text_vectorization_idf_is_taken(tmp_path: Path) -> None:
    config = _config(("StringLookup", "given", {"output_mode": "tf_idf", "vocabulary": ["a", "b"],
                                                "idf_weights": [0.5, 0.7]}),
                     ("TextVectorization", "text", {"output_mode": "tf_idf", "vocabulary": None}))
    weights = {"given/idf_weights": np.array([0.6, 0.5, 0.7], "float32"),
               "text/_lookup_layer/idf_weights": np.array([0.1, 0.2], "float32")}
    out = config_with_vocabularies(config, {"layers/text_vectorization": "[UNK]\nx"}, weights, tmp_path / "m.keras")
    given, text = out["config"]["layers"][0]["config"], out["config"]["layers"][1]["config"]
    assert given["idf_weights"] == [0.5, 0.7] and given["vocabulary"] == ["a", "b"]
    assert text["vocabulary"] == ["[UNK]", "x"] and text["idf_weights"] == pytest.approx([0.1, 0.2])
    assert weights == {}


def test_a_lookup_table_is_its_keys_in_index_order() -> None:
    keys, values = np.array([2, 5, 3, 0, -1], "int64"), np.array([3, 2, 4, 0, 1], "int64")
    assert _vocabulary(keys, values) == [0, -1, 5, 2, 3]
    assert _vocabulary(np.array([b"b", b"a"]), np.array([3, 2])) == ["a", "b"]
    assert _vocabulary(keys, np.array([0, 1, 2, 3, 9])) is None, "indices with a gap are no vocabulary"
    # an inverted IntegerLookup's table maps index -> token, both integers
    assert _vocabulary(np.array([2, 3, 4]), np.array([12, 11, 10]), invert=True) == [12, 11, 10]


def test_saved_model_tables_fill_the_named_lookup_layer(tmp_path: Path) -> None:
    config = _config(("IntegerLookup", "integer_lookup", {"max_values": 4}), ("Dense", "dense", {}))
    tensors = {"layer_with_weights-0/_table/.ATTRIBUTES/table-keys": np.array([7, 0, -1], "int64"),
               "layer_with_weights-0/_table/.ATTRIBUTES/table-values": np.array([2, 0, 1], "int64"),
               "layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.ones(2)}
    out = config_with_table_vocabularies(config, tensors, {("layer_with_weights-0",): "integer_lookup"}, tmp_path)
    assert out["config"]["layers"][0]["config"]["vocabulary"] == [0, -1, 7]
    assert config_with_table_vocabularies(config, {}, {}, tmp_path) is config


def test_the_idf_array_is_the_one_keras_builds_from_the_config() -> None:
    """What the writers emit for a tf_idf layer (formats/_lookup_idf.py), as Keras's own
    ``set_vocabulary`` builds it: a vocabulary with its OOV token as given, one without it gets the
    average idf in front (tf-keras 2.21's own .h5: [0.7, 0.5, 0.7, 0.9] for [0.5, 0.7, 0.9]),
    ``pad_to_max_tokens`` zeros up to ``max_tokens`` (Keras 3.15's own ``vars/idf_weights``)."""
    from ckptcompat.formats._lookup_idf import idf_array

    given = {"output_mode": "tf_idf", "vocabulary": ["a", "b", "c"], "idf_weights": [0.5, 0.7, 0.9]}
    assert idf_array("StringLookup", given).tolist() == np.float32([0.7, 0.5, 0.7, 0.9]).tolist()
    assert idf_array("TextVectorization", {**given, "idf_weights": [0.3, 0.4], "vocabulary": ["x", "y"]}
                     ).tolist() == np.float32([0.35, 0.3, 0.4]).tolist()
    adapted = {"output_mode": "tf_idf", "vocabulary": ["[UNK]", "a", "d"], "idf_weights": [1.25, 0.5, 1.5],
               "max_tokens": 6, "pad_to_max_tokens": True}
    assert idf_array("StringLookup", adapted).tolist() == [1.25, 0.5, 1.5, 0.0, 0.0, 0.0]
    assert idf_array("IntegerLookup", {**adapted, "vocabulary": [-1, 9, 5], "max_tokens": None}).tolist() == \
        [1.25, 0.5, 1.5]
    two_oov = {**given, "num_oov_indices": 2, "vocabulary": ["[UNK]", "[UNK]", "a"], "idf_weights": [1, 1, 2]}
    assert idf_array("StringLookup", two_oov).dtype == np.float32
    assert idf_array("StringLookup", two_oov).tolist() == [1.0, 1.0, 2.0]
    # Keras pads the given list in its own dtype: an int average is truncated ([1, 1, 2] -> 1)
    assert idf_array("StringLookup", {**given, "idf_weights": [1, 1, 2]}).tolist() == [1.0, 1.0, 1.0, 2.0]
    no_oov = {**given, "num_oov_indices": 0}
    assert idf_array("StringLookup", no_oov).tolist() == np.float32([0.5, 0.7, 0.9]).tolist()
    old_int = {"output_mode": "tf-idf", "vocabulary": [-7, 4], "idf_weights": [0.5, 1.5], "oov_value": -7,
               "max_values": 4, "pad_to_max_values": True}  # tf.keras 2.4-2.5 IntegerLookup spellings
    assert idf_array("IntegerLookup", old_int).tolist() == [0.5, 1.5, 0.0, 0.0]
    for cls, cfg in (("StringLookup", {**given, "output_mode": "int"}),
                     ("StringLookup", {**given, "vocabulary": "v.txt"}),
                     ("StringLookup", {**given, "idf_weights": None}), ("Dense", given)):
        assert idf_array(cls, cfg) is None, (cls, cfg)

def test_an_h5_lookup_weight_is_left_out_or_taken_into_the_config(caplog: pytest.LogCaptureFixture) -> None:
    """The legacy .h5 reader leaves a lookup layer's weights out where its config carries the
    vocabulary; an idf weight other than what the config builds (``set_vocabulary`` after the
    constructor) goes into the config's idf_weights, warned."""
    from ckptcompat.formats._lookup_idf import derived_lookup_weights

    given = {"output_mode": "tf_idf", "vocabulary": ["a", "b", "c"], "idf_weights": [0.5, 0.7, 0.9]}
    entries = [("words", {"class_name": "StringLookup", "config": dict(given)}),
               ("other", {"class_name": "StringLookup", "config": dict(given)}),
               ("adapted", {"class_name": "StringLookup", "config": {"vocabulary": None}}),
               ("dense", {"class_name": "Dense", "config": {}})]
    # the front average as Keras stored it (of the float64 list, one ulp off that of the float32 copy)
    arrays = {"words/Variable": np.float32([np.average([0.5, 0.7, 0.9]), 0.5, 0.7, 0.9]),
              "other/Variable": np.float32([np.average([0.1, 0.2, 0.7]), 0.1, 0.2, 0.7]),
              "adapted/Variable": np.zeros(2), "dense/kernel": np.zeros(2), "wordsmith/kernel": np.zeros(2)}
    assert derived_lookup_weights(entries, arrays, "m.h5") == ["words/Variable", "other/Variable"]
    assert entries[0][1]["config"]["idf_weights"] == [0.5, 0.7, 0.9]
    assert entries[1][1]["config"]["idf_weights"] == [float(np.float32(v)) for v in (0.1, 0.2, 0.7)]
    assert [r.getMessage() for r in caplog.records] == \
        ["m.h5: other: the stored idf weights differ from the layer config's: the stored ones are taken into it"]


def test_written_files_hold_the_idf_where_keras_loads_it(tmp_path: Path) -> None:
    """Keras 3.15's own adapted_lookup .keras (a tf_idf StringLookup padded to max_tokens 8),
    read (idf into the config) and written again as .keras and .weights.h5: ``vars/idf_weights``
    holds Keras's own array bitwise (its load_own_variables reads it from there); the .weights.h5
    (no config inside) reads back with it as one more weight, which the write's check allows."""
    import h5py

    from ckptcompat import formats

    src = Path(__file__).resolve().parents[2] / "fixtures" / "layer_configs" / "tf221-keras3" / "adapted_lookup.keras"
    with zipfile.ZipFile(src) as zf, zf.open("model.weights.h5") as fh, h5py.File(fh, "r") as h5:
        native = h5["layers/string_lookup/vars/idf_weights"][()]
    state = formats.read(src)
    for name in ("out.keras", "out.weights.h5"):
        formats.write(tmp_path / name, state, format="keras_zip")
    with zipfile.ZipFile(tmp_path / "out.keras") as zf, zf.open("model.weights.h5") as fh, h5py.File(fh, "r") as h5:
        assert np.array_equal(h5["layers/string_lookup/vars/idf_weights"][()], native)
    with h5py.File(tmp_path / "out.weights.h5", "r") as h5:
        assert np.array_equal(h5["layers/string_lookup/vars/idf_weights"][()], native)
    assert formats.read(tmp_path / "out.keras").weights.keys() == state.weights.keys()
