"""SavedModel folders written by real TF 2.15 / tf-keras 2.21 (fixtures/saved_model/<env>/).

The reader runs without any framework; the truth is each fixture's manifest (sha256 of every
weight and slot read from the live objects at save time, optimizer class, learning rate,
iterations). Tests marked ``framework`` resume every fixture in the running Keras (Keras 3,
tf-keras or TF 2.15) and compare the live model with the same truth.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import (CorruptCheckpointError, InvalidArgumentError, UnsupportedFormatError)
from ckptcompat.formats import registry, saved_model

from _frameworks import keras_backend
from _paths import COMMITTED_CPU, FIXTURES, ROOT, cpu_model

SM_FIXTURES = FIXTURES / "saved_model"


def _entries() -> list[dict[str, Any]]:
    out = []
    for manifest in sorted(SM_FIXTURES.glob("*/manifest.json")):
        env = manifest.parent.name
        for e in json.loads(manifest.read_text())["fixtures"]:
            out.append({**e, "path": f"{env}/{e['path']}", "root": str(manifest.parent)})
    return out


ENTRIES = _entries()
SERIES = sorted({str(Path(e["path"]).parent) for e in ENTRIES if e["case"].startswith("series")})
#: what resume is given: each model folder, and each series folder (it resumes from model-03)
RESUMED = [e for e in ENTRIES if not e["case"].startswith("series") or e["path"].endswith("/model-03")]


def _sha(a: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _mismatches(weights: dict[str, Any], slots: dict[str, dict[str, Any]], entry: dict[str, Any]) -> list[str]:
    bad = []
    for t in entry["tensors"]:
        value = weights.get(t["owner"]) if t["kind"] == "weight" else slots.get(t["owner"], {}).get(t["slot"])
        if value is None or _sha(value) != t["sha256"] or list(np.shape(value)) != t["shape"] \
                or str(np.asarray(value).dtype) != t["dtype"]:
            bad.append(f"{t['owner']}/{t['slot'] or ''}")
    return bad


#: old producers (tools/legacy_producers.sh): no LossScaleOptimizer before tf.keras 2.4, no
#: optimizers.legacy before 2.11
OLD_SAVED_MODELS = {"tf20-py37": 4, "tf24-py38": 5, "tf28-py39": 5, "tf211-py310": 6}


def test_fixtures_present() -> None:
    envs = {e["producer"] for e in ENTRIES}
    assert {"tf212", "tf215", "tf221-tfkeras", *OLD_SAVED_MODELS} <= envs, envs
    for env, n in OLD_SAVED_MODELS.items():
        assert len({e["case"] for e in ENTRIES if e["producer"] == env}) == n, env
    cases = {(e["producer"], e["case"]) for e in ENTRIES}
    for env in ("tf212", "tf215", "tf221-tfkeras"):
        for case in ("mlp_adam", "cnn_bn_rmsprop", "rnn_lstm_sgdm", "series_mlp_adam", "mlp_legacyadam",
                     "mlp_lso_adam"):
            assert (env, case) in cases


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["path"])
def test_read_matches_live_truth(entry: dict[str, Any]) -> None:
    folder = SM_FIXTURES / entry["path"]
    for rel, sha in entry["files"].items():  # the committed bytes are the bytes the release wrote
        assert hashlib.sha256((Path(entry["root"]) / rel).read_bytes()).hexdigest() == sha, rel
    assert registry.detect(folder) == "saved_model"
    state = saved_model.read(folder)
    opt = state.optimizer
    assert opt is not None
    assert _mismatches(dict(state.weights), {k: dict(v) for k, v in opt.slots.items()}, entry) == []
    n_weights = sum(t["kind"] == "weight" for t in entry["tensors"])
    n_slots = sum(t["kind"] == "slot" for t in entry["tensors"])
    assert (len(state.weights), opt.slot_count) == (n_weights, n_slots)  # nothing extra (no metric totals)
    assert list(state.weights) == [t["owner"] for t in entry["tensors"] if t["kind"] == "weight"]  # model order
    want = entry["optimizer"]
    assert (opt.class_name, opt.iterations, opt.learning_rate) == (want["class"], want["iterations"],
                                                                   want["learning_rate"])
    if "loss_scale" in want:  # LossScaleOptimizer: its state rides in optimizer.extra
        assert float(opt.extra["loss_scale/current_loss_scale"]) == want["loss_scale"]["current_loss_scale"]
        assert int(opt.extra["loss_scale/good_steps"]) == want["loss_scale"]["good_steps"]
    assert state.model_config["class_name"] == "Sequential"
    assert state.training_config["loss"] == "sparse_categorical_crossentropy"
    assert state.producer.format == "saved_model" and state.producer.framework in ("tf.keras", "tf-keras")
    written_by = json.loads((Path(entry["root"]) / "manifest.json").read_text())["producers"][entry["producer"]]
    assert state.producer.versions["tensorflow"] == written_by["tensorflow"]


def test_files_lists_every_file() -> None:
    entry = next(e for e in ENTRIES if e["producer"] == "tf212")  # TF 2.5+: keras_metadata.pb
    folder = SM_FIXTURES / entry["path"]
    listed = {p.relative_to(Path(entry["root"])).as_posix() for p in saved_model.files(folder)}
    assert listed == set(entry["files"])
    assert {"saved_model.pb", "keras_metadata.pb", "variables.index"} <= {Path(p).name for p in listed}


@pytest.mark.parametrize("series", SERIES)
def test_series_orders_by_epoch_and_picks_newest(series: str) -> None:
    from ckptcompat.discovery import find_checkpoints, select

    cands = find_checkpoints(SM_FIXTURES / series)
    assert [(c.name, c.epoch, c.format) for c in cands] == [
        ("model-01", 1, "saved_model"), ("model-02", 2, "saved_model"), ("model-03", 3, "saved_model")]
    assert select(cands).name == "model-03"


def test_damaged_newest_falls_back(tmp_path: Path) -> None:
    from ckptcompat.resuming.read import pick_and_read

    series = tmp_path / "ckpt"
    shutil.copytree(SM_FIXTURES / SERIES[0], series)
    data = series / "model-03" / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    cand, state = pick_and_read(series, "latest", monitor=None, mode=None, pattern=None)
    assert (cand.name, cand.epoch) == ("model-02", 2)
    entry = next(e for e in ENTRIES if e["path"] == f"{SERIES[0]}/model-02")
    assert state.optimizer is not None and state.optimizer.iterations == entry["optimizer"]["iterations"]


def test_damage_is_typed(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(SM_FIXTURES / ENTRIES[0]["path"], folder)
    (folder / "saved_model.pb").write_bytes(b"\x0a\xff\xff")
    with pytest.raises(CorruptCheckpointError, match="saved_model|SavedModel"):
        saved_model.read(folder)
    shutil.rmtree(folder / "variables")
    with pytest.raises(CorruptCheckpointError, match="variables"):
        saved_model.read(folder)
    with pytest.raises(UnsupportedFormatError, match="writing a SavedModel"):
        saved_model.write(tmp_path / "out", saved_model.read(SM_FIXTURES / ENTRIES[0]["path"]))


def test_without_keras_metadata_reads_weights_and_resume_needs_model(tmp_path: Path) -> None:
    entry = next(e for e in ENTRIES if e["case"] == "mlp_adam" and e["producer"] == "tf212")
    folder = tmp_path / "module"
    shutil.copytree(SM_FIXTURES / entry["path"], folder)
    (folder / "keras_metadata.pb").unlink()  # TF 2.5+ keeps the Keras metadata only there
    state = saved_model.read(folder)
    assert state.model_config is None and state.training_config is None
    assert _mismatches(dict(state.weights), {k: dict(v) for k, v in state.optimizer.slots.items()}, entry) == []
    from ckptcompat.resuming.build import build_model

    with pytest.raises(InvalidArgumentError, match="model=model"):
        build_model(state, "keras3", None, None, str(folder))


def test_inspect_does_not_import_tensorflow() -> None:
    folder = SM_FIXTURES / ENTRIES[0]["path"]
    code = ("import sys, ckptcompat, json\n"
            f"info = ckptcompat.inspect({str(folder)!r})\n"
            "assert info.format == 'saved_model', info.format\n"
            "assert info.optimizer is not None and info.optimizer.iterations > 0\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "assert not bad, bad\n"
            "print('OK', info.weight_count)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("OK ")


# --------------------------------------------------------------------------- live resume
def _live(model: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]], int, float]:
    from ckptcompat import runtime

    state = runtime.capture(model)
    opt = state.optimizer
    lr = float(np.asarray(model.optimizer.learning_rate))
    return (dict(state.weights), {k: dict(v) for k, v in opt.slots.items()}, int(opt.iterations), lr)


@pytest.mark.framework
@pytest.mark.parametrize("entry", RESUMED, ids=lambda e: e["path"])
def test_resume_is_exact(entry: dict[str, Any], keras: Any) -> None:
    _resume_exactly(entry, keras)


@pytest.mark.backend
@pytest.mark.parametrize("entry", RESUMED, ids=lambda e: e["path"])
def test_resume_is_exact_on_jax_and_torch(entry: dict[str, Any], keras: Any) -> None:
    """The same SavedModels (written by TensorFlow) resume bitwise into Keras 3 on JAX and torch:
    the reader needs no TensorFlow and the state goes in through ``keras.ops``."""
    if keras_backend() == "tensorflow":
        pytest.skip("Keras 3 on TensorFlow: test_resume_is_exact")
    _resume_exactly(entry, keras)


def _resume_exactly(entry: dict[str, Any], keras: Any) -> None:
    import ckptcompat

    keras.backend.clear_session()
    target = SM_FIXTURES / (str(Path(entry["path"]).parent) if entry["case"].startswith("series")
                            else entry["path"])
    run = ckptcompat.resume(target)
    weights, slots, iterations, lr = _live(run.model)
    assert _mismatches(weights, slots, entry) == []
    want = entry["optimizer"]
    assert iterations == want["iterations"] == run.global_step
    assert np.float32(lr) == np.float32(want["learning_rate"])
    assert run.source.format == "saved_model"
    if "loss_scale" in want:  # the wrapper is rebuilt and its dynamic scale continues exactly
        from ckptcompat.runtime import _loss_scale

        live = _loss_scale.live_variables(run.model.optimizer)
        assert float(np.asarray(live[_loss_scale.CURRENT])) == want["loss_scale"]["current_loss_scale"]
        assert int(np.asarray(live[_loss_scale.GOOD_STEPS])) == want["loss_scale"]["good_steps"]
    if entry["case"].startswith("series"):
        assert (run.initial_epoch, run.source.epoch_source) == (3, "filename")


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("to,suffix", [("keras3", ".keras"), ("h5", ".h5")])
def test_cli_inspect_verify_migrate(to: str, suffix: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from ckptcompat.cli.commands import main

    entry = next(e for e in ENTRIES if e["case"] == "cnn_bn_rmsprop")
    folder = SM_FIXTURES / entry["path"]
    assert main(["inspect", str(folder)]) == 0
    assert "saved_model" in capsys.readouterr().out
    assert main(["verify", str(folder.parent)]) == 0
    out = tmp_path / f"model{suffix}"
    assert main(["migrate", str(folder), str(out), "--to", to]) == 0
    assert "bitwise equal" in capsys.readouterr().out
    back = registry.read(out)
    assert _mismatches(dict(back.weights), {k: dict(v) for k, v in back.optimizer.slots.items()}, entry) == []
    assert (back.optimizer.class_name, back.optimizer.iterations) == ("RMSprop", entry["optimizer"]["iterations"])


@pytest.mark.framework
@pytest.mark.parametrize("to,suffix", [("keras3", ".keras"), ("h5", ".h5")])
def test_migrated_savedmodel_resumes_exactly(to: str, suffix: str, tmp_path: Path, keras: Any) -> None:
    import ckptcompat
    from _frameworks import keras_flavour

    if to == "keras3" and keras_flavour() != "keras3":
        pytest.skip("a Keras 3 .keras file is resumed by Keras 3")
    entry = next(e for e in ENTRIES if e["case"] == "rnn_lstm_sgdm" and e["producer"] == "tf215")
    out = tmp_path / f"model{suffix}"
    from ckptcompat import migrate

    migrate(SM_FIXTURES / entry["path"], out, to=to)
    keras.backend.clear_session()
    run = ckptcompat.resume(out)
    weights, slots, iterations, lr = _live(run.model)
    assert _mismatches(weights, slots, entry) == []
    assert (iterations, np.float32(lr)) == (entry["optimizer"]["iterations"],
                                           np.float32(entry["optimizer"]["learning_rate"]))


# --------------------------------------------------------------------------- fresh matrix run
def _generated() -> list[dict[str, Any]]:
    import os

    folder = os.environ.get("CKPTCOMPAT_GENERATED_SAVED_MODELS")
    manifest = Path(folder) / "manifest.json" if folder else None
    if manifest is None or not manifest.is_file():
        return []
    return [{**e, "root": str(manifest.parent)} for e in json.loads(manifest.read_text())["fixtures"]]


def _layout(tensors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(t["owner"], t["kind"], str(t["slot"]), tuple(t["shape"]), t["dtype"]) for t in tensors]


@pytest.mark.fresh_fixtures
@pytest.mark.parametrize("entry", _generated() or [pytest.param(None, id="none-generated")],
                         ids=lambda e: e["path"] if e else "none")
def test_fresh_matrix_savedmodels_read_exactly(entry: dict[str, Any] | None) -> None:
    """SavedModels written just now by this matrix environment (tools/matrix.py) read exactly,
    and their truth equals the committed one for the same producer."""
    if entry is None:
        pytest.skip("CKPTCOMPAT_GENERATED_SAVED_MODELS is not set or holds no SavedModel (Keras 3 env)")
    state = saved_model.read(Path(entry["root"]) / entry["path"])
    slots = {k: dict(v) for k, v in state.optimizer.slots.items()}
    assert _mismatches(dict(state.weights), slots, entry) == []
    assert state.optimizer.iterations == entry["optimizer"]["iterations"]
    committed = SM_FIXTURES / entry["producer"] / "manifest.json"
    if committed.is_file():
        same = [e for e in json.loads(committed.read_text())["fixtures"] if e["path"] == entry["path"]]
        assert same, f"{entry['path']} is not among the committed SavedModels of {entry['producer']}"
        if cpu_model() == COMMITTED_CPU:  # float results may differ between CPUs
            assert same[0]["tensors"] == entry["tensors"], "training is no longer reproducible"
        else:
            assert _layout(same[0]["tensors"]) == _layout(entry["tensors"])


@pytest.mark.framework
def test_without_keras_metadata_resumes_into_given_model(tmp_path: Path, keras: Any) -> None:
    import ckptcompat

    entry = next(e for e in ENTRIES if e["case"] == "cnn_bn_rmsprop" and e["producer"] == "tf215")
    folder = tmp_path / "model"
    shutil.copytree(SM_FIXTURES / entry["path"], folder)
    (folder / "keras_metadata.pb").unlink()
    with pytest.raises(InvalidArgumentError, match="model="):
        ckptcompat.resume(folder)
    keras.backend.clear_session()
    L = keras.layers
    model = keras.Sequential([keras.Input(shape=(6, 6, 1)), L.Conv2D(2, 3, name="conv"),
                              L.BatchNormalization(name="bn"), L.Flatten(name="flat"),
                              L.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.001), loss="sparse_categorical_crossentropy")
    run = ckptcompat.resume(folder, model=model)
    weights, slots, iterations, lr = _live(run.model)
    assert _mismatches(weights, slots, entry) == []
    assert (iterations, np.float32(lr)) == (entry["optimizer"]["iterations"],
                                           np.float32(entry["optimizer"]["learning_rate"]))


def test_inspect_of_a_series_folder_names_the_savedmodels() -> None:
    import ckptcompat

    with pytest.raises(UnsupportedFormatError, match=r"found: model-01/, model-02/, model-03/"):
        ckptcompat.inspect(SM_FIXTURES / SERIES[0])
