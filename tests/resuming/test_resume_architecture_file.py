"""resume(weights.h5) without model= where the script kept ``model.to_json()`` beside its
``save_weights`` file (``model.json``, or ``<stem>.json``): the model is rebuilt from that document.

Keras 1 files: the Keras 1.2.2 corpus's ``weights.h5`` with the ``to_json()`` Keras 1.2.2 wrote for
the same model (``architecture.json``, copied beside it as ``model.json``, the name scripts used);
every tensor must equal the manifest's truth (Keras 2.3's own conversion), bitwise. Keras 2 files:
written here by the running tf.keras / tf-keras itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from ckptcompat import runtime
from ckptcompat.errors import InvalidArgumentError, UnsupportedFormatError
from ckptcompat.formats import keras_h5
from ckptcompat.formats.keras_h5.architecture_file import with_architecture
from _paths import FIXTURES

CORPUS = FIXTURES / "keras122-tf115-py37"
CASES = ["zoo_rank2_tf", "zoo_rank4_th", "masked_rnn_adam", "multi_io_shared_adam", "nested_frozen_adam"]


def _pair(tmp_path: Path, case: str, name: str = "model.json", architecture_of: str | None = None) -> Path:
    shutil.copyfile(CORPUS / case / "weights.h5", tmp_path / "weights.h5")
    shutil.copyfile(CORPUS / (architecture_of or case) / "architecture.json", tmp_path / name)
    return tmp_path / "weights.h5"


def _truth(case: str) -> dict[str, str]:
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    entry = next(e for e in manifest["fixtures"] if e["path"] == f"{case}/weights.h5")
    return {t["owner"]: t["sha256"] for t in entry["tensors"]}


def _sha(value: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def test_the_document_beside_converts_keras1_weights_without_a_framework(tmp_path: Path, caplog) -> None:
    path = _pair(tmp_path, "zoo_rank4_th")
    with caplog.at_level(logging.INFO, logger="ckptcompat"):
        state = with_architecture(keras_h5.read(path), path)[0]
    assert "the model architecture from model.json" in caplog.text
    assert state.model_config is not None and state.model_config["class_name"] == "Model"
    assert {name: _sha(value) for name, value in state.weights.items()} == _truth("zoo_rank4_th")


def test_a_stem_named_document_is_used_too(tmp_path: Path) -> None:
    path = _pair(tmp_path, "opt_adam", name="weights.json")
    assert with_architecture(keras_h5.read(path), path)[0].model_config is not None


def test_another_models_document_is_not_used(tmp_path: Path, caplog) -> None:
    path = _pair(tmp_path, "zoo_rank4_th", architecture_of="opt_adam")
    state = with_architecture(keras_h5.read(path), path)[0]
    assert state.model_config is None and "whose layers are not this file's" in caplog.text


def test_two_fitting_documents_are_not_chosen_between(tmp_path: Path, caplog) -> None:
    path = _pair(tmp_path, "opt_adam")
    shutil.copyfile(tmp_path / "model.json", tmp_path / "weights.json")
    assert with_architecture(keras_h5.read(path), path)[0].model_config is None
    assert "none used" in caplog.text


@pytest.mark.framework
@pytest.mark.parametrize("case", CASES)
def test_keras1_weights_resume_without_a_model_through_model_json(tmp_path: Path, case: str) -> None:
    run = ckptcompat.resume(_pair(tmp_path, case))
    weights = runtime.capture(run.model).weights
    truth = _truth(case)
    assert {name: _sha(weights[name]) for name in truth if name in weights} == truth


@pytest.mark.framework
def test_without_a_fitting_document_the_way_on_is_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="holds no model config"):
        ckptcompat.resume(_pair(tmp_path, "zoo_rank4_th", architecture_of="opt_adam"))


@pytest.mark.keras2
def test_keras2_to_json_and_save_weights_resume_without_a_model(keras, tmp_path: Path) -> None:
    layers = keras.layers
    model = keras.Sequential([layers.Conv2D(3, 2, input_shape=(6, 6, 2)), layers.BatchNormalization(),
                              layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 6, 6, 2)), rng.random((8, 2)), epochs=1, verbose=0)
    (tmp_path / "model.json").write_text(model.to_json())
    model.save_weights(str(tmp_path / "model.h5"))
    run = ckptcompat.resume(tmp_path / "model.h5")
    want, got = runtime.capture(model).weights, runtime.capture(run.model).weights
    assert list(got) == list(want) and all(np.array_equal(got[n], want[n]) for n in want)


def test_a_document_that_does_not_convert_the_keras1_weights_is_not_used(tmp_path: Path, caplog) -> None:
    path = _pair(tmp_path, "zoo_rank4_th")  # its Convolution2D spelled the Keras 2 way: no conversion rule
    doc = tmp_path / "model.json"
    doc.write_text(doc.read_text().replace('"Convolution2D"', '"Conv2D"'))
    state = with_architecture(keras_h5.read(path), path)[0]
    assert state.model_config is None and "does not convert its Keras 1 weights" in caplog.text


def test_inspect_reports_the_document_and_the_converted_weights(tmp_path: Path) -> None:
    path = _pair(tmp_path, "zoo_rank4_th")
    info = ckptcompat.inspect(path)
    assert (info.model_class, info.model_config_from) == ("Model", "model.json")
    assert "(from model.json beside it; the file records none)" in info.to_text()
    assert info.to_dict()["model_config_from"] == "model.json"
    assert {v.name for v in info.variables} == set(_truth("zoo_rank4_th"))  # converted, as resume reads them
    (tmp_path / "model.json").unlink()
    alone = ckptcompat.inspect(path)
    assert (alone.model_class, alone.model_config_from) == (None, None)


def test_migrate_to_keras3_takes_the_model_from_the_document(tmp_path: Path) -> None:
    path = _pair(tmp_path, "zoo_rank4_th")
    report = ckptcompat.migrate(path, tmp_path / "out.keras", to="keras3")
    assert report.model_config_from == tmp_path / "model.json" and report.verified
    assert "model.json (the source records none)" in report.summary()
    back = ckptcompat.read(tmp_path / "out.keras")
    assert back.model_config is not None and back.model_config["class_name"] in ("Model", "Functional")
    assert {name: _sha(value) for name, value in back.weights.items()} == _truth("zoo_rank4_th")


def test_migrate_to_keras3_without_a_document_names_the_source_and_the_ways_on(tmp_path: Path) -> None:
    path = _pair(tmp_path, "zoo_rank4_th")
    (tmp_path / "model.json").unlink()
    with pytest.raises(UnsupportedFormatError, match="records no model config") as caught:
        ckptcompat.migrate(path, tmp_path / "out.keras", to="keras3")
    assert caught.value.path == str(path) and "weights.json or model.json" in caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.h5"]  # nothing written


@pytest.mark.keras3
def test_keras3_loads_the_migrated_file_natively(keras, tmp_path: Path) -> None:
    path = _pair(tmp_path, "masked_rnn_adam")
    ckptcompat.migrate(path, tmp_path / "out.keras", to="keras3")
    model = keras.models.load_model(str(tmp_path / "out.keras"), compile=False)
    truth = _truth("masked_rnn_adam")
    weights = runtime.capture(model).weights
    assert {name: _sha(weights[name]) for name in truth} == truth
