"""The committed golden fixtures: files present and intact, manifest complete and self-consistent.

Runs in every environment (numpy, h5py and hashlib only; no framework, no ckptcompat reader).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
MANIFEST = FIXTURES / "manifest.json"

PRODUCERS = {"tf212", "tf215", "tf216-keras30", "tf221-keras3", "tf221-tfkeras"}
KINDS = {
    "keras2": {"full_model", "weights", "tf_weights", "keras_zip", "weights_h5", "tf1_saver", "tf_checkpoint"},
    "keras3": {"full_model", "keras_zip", "weights_h5", "tf1_saver", "tf_checkpoint"},
}
FORMAT_OF_KIND = {"full_model": "keras_h5", "weights": "keras_h5", "tf_weights": "tf_bundle",
                  "keras_zip": "keras_zip", "weights_h5": "keras_zip", "tf1_saver": "tf_bundle",
                  "tf_checkpoint": "tf_bundle"}
CORE_CASES = {"mlp_adam", "mlp_sgd", "mlp_rmsprop", "cnn_bn_adam", "rnn_adam", "nested_sgd",
              "metrics_auc_acc_adam", "metrics_accuracy_rmsprop", "tf1_adam", "tf1_momentum"}
LEGACY_CASES = {"mlp_legacyadam", "cnn_legacysgd", "rnn_legacyrmsprop"}
#: old-era producers (fixtures/generate_legacy.py): the kinds each release writes natively
_H5 = {"full_model", "weights"}
_TFK = _H5 | {"tf_weights", "tf_checkpoint"}
OLD_PRODUCERS = {
    "tf14-keras208-py36": _H5 | {"tf1_saver"}, "keras216-tf112-py36": _H5, "keras224-tf112-py36": _H5,
    "keras231-tf115-py37": _H5, "tf115-keras224-py37": _TFK | {"tf1_saver"}, "tf20-py37": _TFK,
    "tf24-py38": _TFK, "tf28-py39": _TFK, "tf211-py310": _TFK,
    "tf221-keras3-py313": {"full_model", "keras_zip", "weights_h5", "tf_checkpoint"},
}
#: Keras 3 on JAX / torch (no TensorFlow): the generated corpus alone (fixtures/generate.py --add-corpus)
BACKEND_PRODUCERS = {"keras3-jax": ("jax",), "keras3-torch": ("torch",)}
#: producers that commit the corpus sample alone, and the file kind the sample keeps
CORPUS_ONLY = {"keras3-jax": "keras_zip", "keras3-torch": "keras_zip", "keras224-tf115-py37": "full_model",
               "keras216-tf115-py37": "full_model"}
OLD_CASES = {"mlp_adam", "mlp_sgd", "mlp_rmsprop", "cnn_bn_adam", "rnn_adam"}
#: standalone Keras <= 2.2 / tf.keras 2.0.8-tf RMSprop keeps ``iterations`` out of its saved weights
NO_COUNTER = {("keras216-tf112-py36", "mlp_rmsprop"), ("keras224-tf112-py36", "mlp_rmsprop"),
              ("tf14-keras208-py36", "mlp_rmsprop"),  # and Keras 2.2's Adagrad and Adadelta
              ("keras224-tf115-py37", "opt_rmsprop"), ("keras224-tf115-py37", "opt_adagrad"),
              ("keras224-tf115-py37", "opt_adadelta"), ("keras216-tf115-py37", "opt_rmsprop"),
              ("keras216-tf115-py37", "opt_adagrad"), ("keras216-tf115-py37", "opt_adadelta"),
              ("tf14-keras208-py36", "opt_rmsprop"), ("tf14-keras208-py36", "opt_adagrad"),
              ("tf14-keras208-py36", "opt_adadelta"),
              # Keras 1.2: RMSprop/Adagrad/Adadelta likewise; SGD advances its counter only with decay
              *(("keras122-tf115-py37", c) for c in ("opt_rmsprop", "opt_adagrad", "opt_adadelta", "opt_sgd",
                                                     "opt_sgd_momentum", "opt_sgd_nesterov", "seq_input_shape_th_sgd"))}
#: Keras 1 producers (fixtures/generate_keras1.py): the corpus in full-model files, whose truth is
#: Keras 2.3's conversion (concatenated gates, transposed kernels: not arrays the file stores)
KERAS1_PRODUCERS = {"keras122-tf115-py37"}
SLOTS = {"Adam": {"m", "v"}, "SGD": {"momentum"}, "RMSprop": {"rms"}}
#: generated corpus (fixtures/_optimizers.py, fixtures/_zoo.py): every optimizer class x slot
#: variant at lr 0.0125 (``opt_*``), every weight-owning layer class in one model per input rank
#: trained with Adam(0.01) (``zoo_rank<r>``)
#: the rate_ corpus is committed by tf14-keras208-py36 only (no matrix row regenerates it): checked
#: everywhere else by tests/matrix/test_generated_fixtures.py
CORPUS_PREFIXES = ("opt_", "zoo_rank", "rate_")
CORPUS_LR = {"opt_": 0.0125, "zoo_rank": 0.01, "rate_": 0.0125}
LEARNING_RATES = {"adam": 0.01, "sgd": 0.05, "rmsprop": 0.005, "legacyadam": 0.01, "legacysgd": 0.05,
                  "legacyrmsprop": 0.005}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def _h5_dataset_shas(f: h5py.File) -> set[str]:
    found: set[str] = set()

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.add(_sha(np.ascontiguousarray(obj[()]).tobytes()))

    f.visititems(visit)
    return found


def _dataset_shas(path: Path) -> set[str]:
    """sha256 of every array stored in an HDF5 file or in the model.weights.h5 of a .keras zip."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            return _h5_dataset_shas(f)
    with h5py.File(path, "r") as f:
        return _h5_dataset_shas(f)


def test_schema_and_producers(manifest: dict[str, Any]) -> None:
    assert manifest["schema_version"] == 1
    assert PRODUCERS <= set(manifest["producers"])
    assert set(OLD_PRODUCERS) | set(BACKEND_PRODUCERS) <= set(manifest["producers"])
    for env, info in manifest["producers"].items():
        assert info["flavour"] in KINDS, env
        assert info["tensorflow"] or info.get("backend") in BACKEND_PRODUCERS.get(env, ()), env
    assert {f["producer"] for f in manifest["fixtures"]} == set(manifest["producers"])


def test_every_file_exists_with_its_sha256(manifest: dict[str, Any]) -> None:
    bad = []
    count = 0
    for fixture in manifest["fixtures"]:
        assert fixture["files"], fixture["path"]
        for rel, digest in fixture["files"].items():
            path = FIXTURES / rel
            count += 1
            if not path.is_file():
                bad.append(f"{rel}: missing")
            elif _sha(path.read_bytes()) != digest:
                bad.append(f"{rel}: sha256 differs")
    assert not bad, bad
    assert count >= 200


def test_each_producer_has_every_kind_and_case(manifest: dict[str, Any]) -> None:
    for env, info in manifest["producers"].items():
        mine = [f for f in manifest["fixtures"] if f["producer"] == env]
        if info.get("era") == "legacy":
            _check_old_producer(env, info, mine)
            continue
        if info.get("era") == "keras1":
            corpus = manifest["corpus"][env]
            assert env in KERAS1_PRODUCERS and {f["kind"] for f in mine} == {"full_model", "weights"}, env
            cases = {f["case"] for f in mine}
            for case in cases:  # model.save of each case, save_weights of each model (one optimizer case's)
                weights = not case.startswith("opt_") or case == "opt_adam"
                assert sorted(f["kind"] for f in mine if f["case"] == case) == \
                    ["full_model", "weights"][:2 if weights else 1], (env, case)
            assert set(corpus["optimizers"]["cases"]) | set(corpus["layers"]["covered"].values()) <= cases, env
            continue
        if env in CORPUS_ONLY:
            _check_corpus_only_producer(env, manifest["corpus"][env], mine, info["flavour"])
            continue
        assert {f["kind"] for f in mine} == KINDS[info["flavour"]], env
        cases = {f["case"] for f in mine}
        assert CORE_CASES <= cases, (env, CORE_CASES - cases)
        if info["tensorflow"].startswith(("2.12.", "2.15.")):
            assert LEGACY_CASES <= cases, env
        corpus = manifest.get("corpus", {}).get(env, {})
        for case in cases - {"tf1_adam", "tf1_momentum"}:
            kinds = {f["kind"] for f in mine if f["case"] == case}
            refused = set(corpus.get("not_written", {}).get(case, {})) if case.startswith(CORPUS_PREFIXES) else set()
            left_out = set(corpus.get("left_out_files", {}).get(case, {}))  # kept small on purpose, with a reason
            assert not left_out & kinds, (env, case)
            assert kinds == KINDS[info["flavour"]] - {"tf1_saver"} - refused - left_out, (env, case)
            if case.startswith(CORPUS_PREFIXES):
                assert {"full_model", "keras_zip", "tf_checkpoint"} & kinds, (env, case)


def _check_corpus_only_producer(env: str, corpus: dict[str, Any], mine: list[dict[str, Any]], flavour: str) -> None:
    """Keras 3 on JAX / torch, standalone Keras 2.2: the corpus sample alone, each case in the
    release's native full-model file; every other kind of the flavour left out as a sample or not
    written (no ``tf.train.Checkpoint`` without TensorFlow; standalone Keras writes HDF5 only)."""
    cases = {f["case"] for f in mine}
    assert cases and all(c.startswith(CORPUS_PREFIXES) for c in cases), env
    assert {f["kind"] for f in mine} == {CORPUS_ONLY[env]}, env
    assert corpus.get("sample"), env
    for case in cases:
        assert "tf_checkpoint" in corpus["not_written"][case], (env, case)
        accounted = {CORPUS_ONLY[env], *corpus["not_written"][case], *corpus["left_out_files"].get(case, {})}
        assert KINDS[flavour] - {"tf1_saver"} <= accounted, (env, case)


def _check_old_producer(env: str, info: dict[str, Any], mine: list[dict[str, Any]]) -> None:
    assert {f["kind"] for f in mine} == OLD_PRODUCERS[env], env
    assert info["python"] and info["api"] in ("standalone", "tf.keras", "keras3"), env
    cases = {f["case"] for f in mine}
    assert OLD_CASES <= cases, (env, OLD_CASES - cases)
    if info["api"] == "standalone":  # ModelCheckpoint series: one full model per epoch
        assert sorted(f["epoch"] for f in mine if f["case"] == "series_adam") == [1, 2], env
    for case in cases & OLD_CASES:
        kinds = {f["kind"] for f in mine if f["case"] == case}
        assert kinds == OLD_PRODUCERS[env] - {"tf1_saver"}, (env, case)


def test_fixture_entries_are_consistent(manifest: dict[str, Any]) -> None:
    legacy_envs = {f["producer"] for f in manifest["fixtures"] if f["case"].startswith("opt_legacy_")}
    for f in manifest["fixtures"]:
        where = f["path"]
        assert f["format"] == FORMAT_OF_KIND[f["kind"]], where
        assert f["path"].startswith(f["producer"] + "/"), where
        weights = {t["owner"]: t for t in f["tensors"] if t["kind"] == "weight"}
        slots = [t for t in f["tensors"] if t["kind"] == "slot"]
        assert weights, where
        assert len(weights) == sum(t["kind"] == "weight" for t in f["tensors"]), f"{where}: duplicate owner"
        for t in f["tensors"]:
            assert len(t["sha256"]) == 64 and t["dtype"] and isinstance(t["shape"], list), where
        opt = f["optimizer"]
        if opt is None:
            assert not slots, where
            continue
        if (f["producer"], f["case"]) in NO_COUNTER:
            assert opt["iterations"] is None, where
        else:
            assert isinstance(opt["iterations"], int) and opt["iterations"] > 0, where
        if f["case"].startswith(CORPUS_PREFIXES):
            _check_corpus_entry(f, weights, slots, legacy_envs)
            continue
        assert opt["class"] in SLOTS, where
        assert opt["config"]["learning_rate"] == pytest.approx(opt["learning_rate"], rel=1e-6), where
        if opt["class"] == "SGD":
            assert opt["config"]["momentum"] == pytest.approx(0.9, rel=1e-6), where
        tf1_rms = f["case"] == "tf1_rmsprop"  # tf.train.RMSPropOptimizer always has a momentum slot
        assert {t["slot"] for t in slots} == SLOTS[opt["class"]] | ({"momentum"} if tf1_rms else set()), where
        for t in slots:  # a slot has its variable's shape
            assert weights[t["owner"]]["shape"] == t["shape"], (where, t["owner"])
        if f["kind"] == "tf1_saver":
            assert opt["learning_rate"] == {"tf1_adam": 1e-3, "tf1_momentum": 0.01, "tf1_rmsprop": 0.01}[f["case"]], where
            assert opt["iterations"] == 3 and f["model_class"] is None, where
            assert all("/" in name and name.startswith("layer_") for name in weights), where
            continue
        expected_lr = LEARNING_RATES[f["case"].rsplit("_", 1)[-1]]
        assert opt["learning_rate"] == float(np.float32(expected_lr)), where  # stored as float32
        if f["case"] != "series_adam":
            assert f["epoch"] == 2, where
        assert opt["iterations"] in (2 * f["epoch"], None), where  # 2 batches per epoch
        assert opt["legacy"] == ("legacy" in f["case"]), where


def _check_corpus_entry(f: dict[str, Any], weights: dict[str, Any], slots: list[dict[str, Any]],
                        legacy_envs: set[str]) -> None:
    from ckptcompat.names.variables import CANONICAL_SLOTS

    opt, where = f["optimizer"], f["path"]
    lr = next(v for prefix, v in CORPUS_LR.items() if f["case"].startswith(prefix))
    if opt.get("schedule"):  # rate_<schedule>: the rate is the schedule's (fixtures/_rates.py), none fixed
        assert opt["learning_rate"] is None and isinstance(opt["schedule_config"], dict), where
        assert isinstance(opt["rate_at_step"], float), where
    else:
        assert opt["learning_rate"] == float(np.float32(lr)), where
    assert opt["iterations"] == (None if (f["producer"], f["case"]) in NO_COUNTER else 4) and f["epoch"] == 2, where
    # rate_decay: the Adam that takes Keras 2's decay, from ``optimizers.legacy`` where the release has both
    legacy = f["case"].startswith(("opt_legacy_", "rate_legacy_")) or \
        (f["case"] == "rate_decay" and f["producer"] in legacy_envs)
    assert opt["legacy"] == legacy, where
    for t in slots:
        assert t["owner"] in weights, (where, t["owner"])
        if opt["class"] in CANONICAL_SLOTS and t["shape"] == weights[t["owner"]]["shape"]:
            assert t["slot"] in CANONICAL_SLOTS[opt["class"]], (where, t["slot"])


def test_corpus_covers_what_each_release_ships(manifest: dict[str, Any]) -> None:
    """Every enumerated optimizer case has files or a reason; every layer class is in the zoo or has a reason."""
    for env, corpus in manifest.get("corpus", {}).items():
        cases = {f["case"] for f in manifest["fixtures"] if f["producer"] == env}
        opts = corpus["optimizers"]
        # TF 2.4: 8 classes, 13 cases with the variants; standalone Keras 2.3: 7 classes, 10 cases;
        # tf.keras 2.0.8 (TF 1.4): 7 classes, 9 cases (no amsgrad yet)
        least = 9 if env in ("tf14-keras208-py36", *KERAS1_PRODUCERS) else 10 if env in STANDALONE_NAMES else 13
        assert len(opts["cases"]) >= least, env
        for case in opts["cases"]:
            assert case in cases or case in opts["not_built"], (env, case)
        if "sample" in corpus:  # the optimizer cases and the zoo in the native full-model file only
            kinds = {f["kind"] for f in manifest["fixtures"] if f["producer"] == env
                     and f["case"].startswith(CORPUS_PREFIXES)}
            assert len(kinds) == 1 and kinds <= {"full_model", "keras_zip"}, (env, kinds)
        layers = corpus["layers"]
        known = set(layers["covered"]) | {a for c in layers["covered"] for a in layers.get("aliases", {}).get(c, [])}
        assert {"Dense", "Conv2D", "LSTM", "BatchNormalization", "Embedding"} <= known, env
        assert not set(layers["covered"]) & set(layers["left_out"]), env
        assert all(reason for reason in layers["left_out"].values()), env
        for case in set(layers["covered"].values()):  # a class the release cannot save is left out (TF 2.0)
            assert case in cases or case in layers["not_built"], (env, case)
        if env in NO_MATRIX_ROW:  # no matrix run generates their portable ranks: committed
            removed = {"LocallyConnected1D", "LocallyConnected2D"} & set(layers["covered"])
            assert {layers["covered"][name] + "_portable" for name in removed} <= cases, env


#: producers whose corpus no matrix environment regenerates (tools/legacy_producers.sh writes them)
NO_MATRIX_ROW = {"tf20-py37", "tf28-py39", "keras231-tf115-py37", "keras224-tf115-py37", "keras216-tf115-py37",
                 "tf14-keras208-py36"}


STANDALONE_NAMES = {"keras216-tf112-py36", "keras224-tf112-py36", "keras231-tf115-py37", "tf14-keras208-py36",
                    "keras224-tf115-py37", "keras216-tf115-py37"}


def test_canonical_names(manifest: dict[str, Any]) -> None:
    for f in manifest["fixtures"]:
        owners = {t["owner"] for t in f["tensors"]}
        if f["case"] == "mlp_adam" and f["producer"] in STANDALONE_NAMES:  # Keras <= 2.3: 1-based names
            assert owners == {"dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"}, f["path"]
        elif f["case"] == "mlp_adam":
            assert owners == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}, f["path"]
        elif f["case"] == "nested_sgd":
            assert owners == {"inner/dense/kernel", "inner/dense/bias", "head/kernel", "head/bias"}, f["path"]
        elif f["case"] == "rnn_adam":
            assert {"lstm/kernel", "lstm/recurrent_kernel", "gru/recurrent_kernel"} <= owners, f["path"]
        elif f["case"] == "cnn_bn_adam":
            assert {"bn/moving_mean", "bn/moving_variance", "conv/kernel"} <= owners, f["path"]
            assert not [t for t in f["tensors"] if t["kind"] == "slot" and t["owner"].startswith("bn/moving")]
        elif f["case"] == "tf1_adam":
            assert "layer_conv1/kernel" in owners and "layer_fc2/bias" in owners, f["path"]


def test_metric_names(manifest: dict[str, Any]) -> None:
    for f in manifest["fixtures"]:
        names = set(f["metric_names"])
        if f["case"] == "metrics_auc_acc_adam":
            assert {"loss", "acc", "auc", "auc_1", "val_acc", "val_auc_1", "val_loss"} <= names, f["path"]
        elif f["case"] == "metrics_accuracy_rmsprop":
            assert {"accuracy", "val_accuracy"} <= names, f["path"]
        elif f["kind"] != "tf1_saver":
            assert {"loss", "val_loss"} <= names, f["path"]


def test_h5_files_hold_the_manifest_tensors(manifest: dict[str, Any]) -> None:
    """Every listed tensor of an HDF5/zip fixture is one of the arrays stored in the file."""
    missing = []
    for f in manifest["fixtures"]:
        if f["format"] not in ("keras_h5", "keras_zip"):
            continue
        if f["producer"] in KERAS1_PRODUCERS:  # converted (tests/corpora/test_keras1_corpus.py)
            continue
        stored = _dataset_shas(FIXTURES / f["path"])
        missing += [f"{f['path']}: {t['owner']} {t['slot']}" for t in f["tensors"] if t["sha256"] not in stored]
    assert not missing, missing


def test_merged_manifest_matches_per_env_manifests(manifest: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location("_fixture_generate", FIXTURES / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.merge(FIXTURES, write=False) == manifest


def test_generator_refuses_without_framework(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here; the refusal is for framework-less environments")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, str(FIXTURES / "generate.py"), "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "TensorFlow is not installed" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.backend  # selected in the keras3-jax / keras3-torch rows (Keras 3, no TensorFlow)
def test_generator_writes_only_the_corpus_with_keras3_without_tensorflow(tmp_path: Path) -> None:
    """Keras 3 on JAX / torch: the core fixtures need TensorFlow, so the plain generator refuses
    and names ``--add-corpus`` (the corpus alone), writing nothing."""
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here; the refusal is for Keras 3 without it")
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND") or "jax"}
    proc = subprocess.run([sys.executable, str(FIXTURES / "generate.py"), "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "only the corpus is written" in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()


def test_standalone_generator_refuses_without_a_corpus_folder(tmp_path: Path) -> None:
    """``--standalone`` writes the corpus only: without ``--add-corpus[-sample] DIR`` it refuses
    before importing any framework (it went on to write core fixtures with tf.keras)."""
    proc = subprocess.run([sys.executable, str(FIXTURES / "generate.py"), "--standalone", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--standalone writes the corpus only" in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()
