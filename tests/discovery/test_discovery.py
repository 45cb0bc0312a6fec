"""ckptcompat.discovery: finding checkpoints in folders of every layout, and choosing one."""

from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
from pathlib import Path

import pytest

from ckptcompat.discovery.names import parse_generic, parse_with_pattern
from ckptcompat.discovery import Candidate, find_checkpoint, find_checkpoints, select
from ckptcompat.errors import CheckpointNotFoundError, InvalidArgumentError
from ckptcompat.formats import sidecar
from ckptcompat.state import Progress, TrainingState
from ckptcompat.store import CheckpointStore

from _paths import FIXTURES

K2 = FIXTURES / "tf212" / "mlp_adam"          # real tf.keras 2.12 outputs
K3 = FIXTURES / "tf221-keras3" / "mlp_adam"   # real Keras 3.15 outputs
TF1 = FIXTURES / "tf212" / "tf1_adam" / "tf1"
PATTERN = "checkpoints/model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5"


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _copy_bundle(src_prefix: Path, dst_prefix: Path) -> None:
    for f in src_prefix.parent.iterdir():
        if f.name.startswith(src_prefix.name + ".") and f.name != "checkpoint":
            _copy(f, dst_prefix.parent / (dst_prefix.name + f.name[len(src_prefix.name):]))


def _summary(cands: list[Candidate]) -> list[tuple[object, ...]]:
    return [(c.name, c.format, c.epoch, c.step, c.global_step, dict(c.metrics), c.source,
             c.problem, c.ambiguous) for c in cands]


# ---------------------------------------------------------------- workflow 1: named series
@pytest.fixture
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    for name in ("model-03-0.91-9.10.h5", "model-10-0.94-8.92.h5", "model-07-0.96-8.95.h5"):
        _copy(K2 / "model.h5", folder / name)
    (folder / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "history.json").write_text('{"loss": [1.0, 0.5]}')
    (folder / "log.txt").write_text("epoch 1\n")
    return folder


def test_pattern_series_order_metrics_latest_best(series: Path) -> None:
    cands = find_checkpoints(series, pattern=PATTERN)
    assert [c.epoch for c in cands] == [3, 7, 10]
    assert [c.name for c in cands] == ["model-03-0.91-9.10.h5", "model-07-0.96-8.95.h5",
                                       "model-10-0.94-8.92.h5"]
    assert all(c.format == "keras_h5" and c.source == "filename" and c.step == 0 for c in cands)
    assert dict(cands[0].metrics) == {"val_acc": 0.91, "val_loss": 9.10}
    assert cands[0].canonical_metrics == {"val_accuracy": 0.91, "val_loss": 9.10}
    assert select(cands, "latest").epoch == 10
    for alias in ("val_acc", "val_accuracy"):
        assert select(cands, "best", monitor=alias).epoch == 7
    assert select(cands, "best", monitor="val_loss").epoch == 10
    assert select(cands, "best", monitor="val_loss", mode="max").epoch == 3


def test_series_without_pattern_uses_first_number(series: Path) -> None:
    cands = find_checkpoints(series)
    assert [(c.epoch, c.ambiguous, dict(c.metrics)) for c in cands] == [(3, None, {}), (7, None, {}),
                                                                        (10, None, {})]
    with pytest.raises(CheckpointNotFoundError, match="val_acc"):
        select(cands, "best", monitor="val_acc", where=series)


def test_order_independent_of_listing_order(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy(K2 / "model.h5", series / "model-05-0.50-1.00.h5")
    _copy(K3 / "model.keras", series / "model-12-0.97-8.00.keras")
    expected = _summary(find_checkpoints(series, pattern=PATTERN))
    real_listdir, real_scandir, real_iterdir = os.listdir, os.scandir, Path.iterdir
    for seed in ("reversed", 1, 2, 3):
        def shuffle(items: list) -> list:  # noqa: ANN001
            items = list(items)
            if seed == "reversed":
                return sorted(items, key=str, reverse=True)
            random.Random(seed).shuffle(items)
            return items

        class _Scandir:
            def __init__(self, path: object = ".") -> None:
                with real_scandir(path) as it:  # type: ignore[arg-type]
                    self.entries = shuffle(list(it))

            def __iter__(self):  # noqa: ANN204
                return iter(self.entries)

            def __enter__(self):  # noqa: ANN204
                return self

            def __exit__(self, *exc: object) -> None:
                pass

        monkeypatch.setattr(os, "listdir", lambda p=".": shuffle(real_listdir(p)))
        monkeypatch.setattr(os, "scandir", _Scandir)
        monkeypatch.setattr(Path, "iterdir", lambda self: iter(shuffle(list(real_iterdir(self)))))
        assert os.listdir(series) != sorted(os.listdir(series)) or seed != "reversed"
        assert _summary(find_checkpoints(series, pattern=PATTERN)) == expected
    assert [e[2] for e in expected] == [3, 5, 7, 10, 12]


# ---------------------------------------------------------------- workflow 2: epoch_N.hdf5
def test_epoch_keyword_series(tmp_path: Path) -> None:
    folder = tmp_path / "output" / "checkpoints"
    for n in (5, 40, 10):
        _copy(K2 / "model.h5", folder / f"epoch_{n}.hdf5")
    (folder.parent / "fashion.png").write_bytes(b"png")
    cands = find_checkpoints(folder)
    assert [(c.name, c.epoch, c.source, c.ambiguous) for c in cands] == [
        ("epoch_5.hdf5", 5, "filename", None), ("epoch_10.hdf5", 10, "filename", None),
        ("epoch_40.hdf5", 40, "filename", None)]
    chosen = find_checkpoint(folder)
    assert (chosen.epoch, chosen.file) == (40, folder / "epoch_40.hdf5")
    single = find_checkpoints(folder / "epoch_10.hdf5")
    assert [(c.name, c.epoch) for c in single] == [("epoch_10.hdf5", 10)]


# ---------------------------------------------------------------- workflow 3: pickle sidecars
def _pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=4))


def test_pickle_sidecar_epoch_is_zero_based(tmp_path: Path) -> None:
    run = tmp_path / "00001-test-train"
    _copy(K2 / "model.h5", run / "model.h5")
    _pickle(run / "model.pkl", {"optimizer": {"name": "Adam", "learning_rate": 0.001}, "epoch": 4})
    (run / "log.txt").write_text("tee'd stdout\n")
    [cand] = find_checkpoints(run)
    assert (cand.epoch, cand.step, cand.source, cand.sidecar) == (5, 0, "sidecar", run / "model.pkl")
    [raw] = find_checkpoints(run, sidecar_epoch_offset=0)
    assert raw.epoch == 4
    [direct] = find_checkpoints(run / "model.h5")
    assert (direct.epoch, direct.sidecar) == (5, run / "model.pkl")


def test_sidecar_series_and_unsafe_sidecar(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in (0, 1, 2):
        _copy(K2 / "model.h5", tmp_path / f"weights_{'abc'[i]}.h5")
        _pickle(tmp_path / f"weights_{'abc'[i]}.h5.pkl", {"optimizer": {"name": "SGD"}, "epoch": 2 - i})
    cands = find_checkpoints(tmp_path)
    assert [(c.name, c.epoch) for c in cands] == [("weights_c.h5", 1), ("weights_b.h5", 2),
                                                  ("weights_a.h5", 3)]
    (tmp_path / "weights_a.h5.pkl").write_bytes(
        b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02ls\x85R.")
    with caplog.at_level(logging.WARNING, logger="ckptcompat.discovery"):
        cands = find_checkpoints(tmp_path)
    unsafe = next(c for c in cands if c.name == "weights_a.h5")
    assert (unsafe.epoch, unsafe.source) == (None, "unknown")
    assert "sidecar not used" in caplog.text
    assert cands[0] is unsafe  # unknown epochs sort first: never taken as "latest" by accident


# ---------------------------------------------------------------- single files, our attributes
def test_single_file_without_epoch(tmp_path: Path) -> None:
    f = _copy(K2 / "model.h5", tmp_path / "feature_extraction.h5")
    [cand] = find_checkpoints(f)
    assert (cand.epoch, cand.step, cand.source, cand.format, cand.problem) == (
        None, None, "unknown", "keras_h5", None)
    assert select([cand]) == cand


def test_state_json_and_h5_attributes(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    _copy(K2 / "model.h5", tmp_path / "model-03.h5")
    sidecar.write(tmp_path / "model-03.state.json",
                  TrainingState(progress=Progress(epoch=7, step=2, global_step=72),
                                history={"val_loss": [0.5, 0.25]}))
    f = _copy(K2 / "model.h5", tmp_path / "other-09.h5")
    with h5py.File(f, "a") as h5:
        h5.attrs["ckptcompat_epoch"] = 11
        h5.attrs["ckptcompat_step"] = 0
    cands = find_checkpoints(tmp_path)
    assert [(c.name, c.epoch, c.step, c.source) for c in cands] == [
        ("model-03.h5", 7, 2, "attributes"), ("other-09.h5", 11, 0, "attributes")]
    assert (cands[0].global_step, cands[0].state_json, cands[0].metric("val_loss")) == (
        72, tmp_path / "model-03.state.json", 0.25)


def test_keras_files(tmp_path: Path) -> None:
    for n in (2, 11, 1):
        _copy(K3 / "model.keras", tmp_path / f"model-{n:02d}.keras")
    _copy(K3 / "model.weights.h5", tmp_path / "model-05.weights.h5")
    cands = find_checkpoints(tmp_path)
    assert [(c.name, c.epoch, c.format) for c in cands] == [
        ("model-01.keras", 1, "keras_zip"), ("model-02.keras", 2, "keras_zip"),
        ("model-05.weights.h5", 5, "keras_zip"), ("model-11.keras", 11, "keras_zip")]
    assert all(c.ambiguous for c in cands)  # a lone number is a guess, and says so


# ---------------------------------------------------------------- TensorFlow bundles
def test_tf_format_weights_with_state_file(tmp_path: Path) -> None:
    shutil.copytree(K2 / "tf_weights", tmp_path / "w")
    [cand] = find_checkpoints(tmp_path / "w")
    assert (cand.name, cand.format, cand.epoch, cand.source, cand.file) == (
        "ckpt", "tf_bundle", None, "state_file", tmp_path / "w" / "ckpt")
    assert [c.path for c in find_checkpoints(tmp_path / "w" / "ckpt.index")] == [tmp_path / "w" / "ckpt"]
    for n in (1, 12, 3):
        _copy_bundle(K2 / "tf_weights" / "ckpt", tmp_path / "series" / f"cp-{n:04d}.ckpt")
    cands = find_checkpoints(tmp_path / "series", pattern="training/cp-{epoch:04d}.ckpt")
    assert [(c.name, c.epoch, c.source, c.ambiguous) for c in cands] == [
        ("cp-0001.ckpt", 1, "filename", None), ("cp-0003.ckpt", 3, "filename", None),
        ("cp-0012.ckpt", 12, "filename", None)]


def test_tf1_saver_global_steps(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    for step in (100, 1000, 200):
        _copy_bundle(TF1 / "model.ckpt", folder / f"model.ckpt-{step}")
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\n'
                                       'all_model_checkpoint_paths: "model.ckpt-100"\n'
                                       'all_model_checkpoint_paths: "model.ckpt-200"\n'
                                       'all_model_checkpoint_paths: "model.ckpt-1000"\n')
    cands = find_checkpoints(folder)
    assert [(c.name, c.epoch, c.global_step, c.format) for c in cands] == [
        ("model.ckpt-100", None, 100, "tf_bundle"), ("model.ckpt-200", None, 200, "tf_bundle"),
        ("model.ckpt-1000", None, 1000, "tf_bundle")]
    assert select(cands).global_step == 1000
    [meta] = find_checkpoints(folder / "model.ckpt-200.meta")
    assert (meta.path, meta.global_step, meta.state_order) == (folder / "model.ckpt-200", 200, 1)
    plain = tmp_path / "best_validation"
    shutil.copytree(TF1, plain)
    [cand] = find_checkpoints(plain / "checkpoint")
    assert (cand.name, cand.source, cand.problem) == ("model.ckpt", "state_file", None)


def test_object_checkpoint_counter_is_flagged(tmp_path: Path) -> None:
    for n in (2, 1):
        _copy_bundle(K2 / "tf_checkpoint" / "ckpt-1", tmp_path / f"ckpt-{n}")
    cands = find_checkpoints(tmp_path)
    assert [(c.name, c.epoch) for c in cands] == [("ckpt-1", 1), ("ckpt-2", 2)]
    assert "counts saves" in (cands[1].ambiguous or "")


def test_truncated_bundle_and_missing_data(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        _copy_bundle(K2 / "tf_weights" / "ckpt", tmp_path / f"cp-{n:04d}.ckpt")
    data = tmp_path / "cp-0003.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    (tmp_path / "cp-0002.ckpt.index").unlink()
    cands = find_checkpoints(tmp_path)
    assert [(c.epoch, c.problem is None) for c in cands] == [(1, True), (2, False), (3, False)]
    assert "truncated" in (cands[2].problem or "") and "index is missing" in (cands[1].problem or "")
    assert select(cands).name == "cp-0001.ckpt"


# ---------------------------------------------------------------- damaged files, errors
def test_damaged_newest_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _copy(K2 / "model.h5", tmp_path / "model-04-0.90-1.00.h5")
    (tmp_path / "model-05-0.99-0.10.h5").write_bytes(b"\x89H")          # 2-byte, interrupted
    _copy(K2 / "model.h5", tmp_path / "model-06-0.99-0.05.h5").write_bytes(pickle.dumps({}))
    with caplog.at_level(logging.WARNING, logger="ckptcompat.discovery"):
        cands = find_checkpoints(tmp_path, pattern=PATTERN)
        chosen = select(cands, "latest")
        best = select(cands, "best", monitor="val_accuracy")
    assert [(c.epoch, c.ok) for c in cands] == [(4, True), (5, False), (6, False)]
    assert chosen.epoch == 4 and best.epoch == 4
    assert "model-05-0.99-0.10.h5" in caplog.text and "model-06-0.99-0.05.h5" in caplog.text
    with pytest.raises(CheckpointNotFoundError, match="all damaged"):
        select(cands[1:], where=tmp_path)


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert find_checkpoints(tmp_path / "empty") == []
    with pytest.raises(CheckpointNotFoundError, match=r"empty.*no usable checkpoint.*none found"):
        find_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointNotFoundError):
        find_checkpoints(tmp_path / "nope")


def test_best_needs_known_direction(series: Path) -> None:
    cands = find_checkpoints(series, pattern="model-{epoch:02d}-{score:.2f}-{val_loss:.2f}.h5")
    with pytest.raises(InvalidArgumentError, match="mode="):
        select(cands, "best", monitor="score")
    assert select(cands, "best", monitor="score", mode="max").epoch == 7
    with pytest.raises(InvalidArgumentError):
        select(cands, "best")
    with pytest.raises(InvalidArgumentError):
        select(cands, "newest")


# ---------------------------------------------------------------- ckptcompat stores
def test_store_directory(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "run", write=True, monitor="val_loss", mode="min") as store:
        for epoch, loss in ((1, 0.5), (2, 0.2), (3, 0.3)):
            with store.begin(epoch=epoch, metrics={"val_loss": loss, "acc": 0.5 + epoch / 10},
                             format="keras_zip") as pending:
                shutil.copyfile(K3 / "model.keras", pending.path / "model.keras")
                sidecar.write(pending.path / "state.json", TrainingState(progress=Progress(epoch=epoch)))
    cands = find_checkpoints(tmp_path / "run")
    assert [(c.epoch, c.step, c.source, c.store_id, c.format) for c in cands] == [
        (1, 0, "manifest", 1, "keras_zip"), (2, 0, "manifest", 2, "keras_zip"),
        (3, 0, "manifest", 3, "keras_zip")]
    assert cands[2].file == cands[2].path / "model.keras"
    assert cands[2].state_json == cands[2].path / "state.json"
    assert select(cands, "best", monitor="val_loss").epoch == 2
    assert select(cands, "best", monitor="accuracy").epoch == 3
    [one] = find_checkpoints(cands[0].path)
    assert (one.store_id, one.epoch) == (1, 1)
    newest = cands[2].path / "model.keras"
    newest.write_bytes(newest.read_bytes()[:-10])
    damaged = find_checkpoints(tmp_path / "run")
    assert [c.ok for c in damaged] == [True, True, False]
    assert select(damaged).epoch == 2


# ---------------------------------------------------------------- name rules
@pytest.mark.parametrize("name, epoch, global_step, ambiguous", [
    ("epoch_40.hdf5", 40, None, False), ("model-33-0.94-8.92.h5", 33, None, False),
    ("weights.10-0.5.h5", 10, None, False), ("weights-improvement-145-0.75.hdf5", 145, None, False),
    ("weights.100.hdf5", 100, None, True), ("cp-0005.ckpt", 5, None, True),
    ("weights2.40hdf5", 40, None, True), ("resnet50-05-0.5.h5", 5, None, False),
    ("feature_extraction.h5", None, None, False), ("model-20240131-1200.h5", None, None, True),
    ("model_step_500.h5", None, 500, True), ("ep07_iter300.h5", 7, None, False),
])
def test_generic_name_rules(name: str, epoch: int | None, global_step: int | None, ambiguous: bool) -> None:
    info = parse_generic(name)
    assert (info.epoch, info.global_step, info.ambiguous is not None) == (epoch, global_step, ambiguous)


def test_bundle_counters_and_named_metrics() -> None:
    assert parse_generic("model.ckpt-1000", bundle="name_based").global_step == 1000
    assert parse_generic("model.ckpt-1000", bundle="name_based").epoch is None
    assert parse_generic("cp-0005.ckpt", bundle="object_based").epoch == 5
    assert parse_generic("cp-0005.ckpt", bundle="object_based").save_counter is False
    assert parse_generic("ckpt-12", bundle="object_based").save_counter is True
    assert parse_generic("model_03_val_loss_0.2500.h5").metrics == {"val_loss": 0.25}


def test_pattern_parsing() -> None:
    info = parse_with_pattern("model-03-0.94-8.92.h5", PATTERN)
    assert info is not None and (info.epoch, info.step, info.metrics) == (3, 0, {"val_acc": 0.94,
                                                                                   "val_loss": 8.92})
    batch = parse_with_pattern("m-03-0120.h5", "m-{epoch:02d}-{batch:04d}.h5")
    assert batch is not None and (batch.epoch, batch.step) == (2, 120)
    assert parse_with_pattern("model-03-x.h5", PATTERN) is None
    with pytest.raises(InvalidArgumentError):
        parse_with_pattern("a.h5", "weights.best.h5")


# ---------------------------------------------------------------- real old checkpoints
def test_real_interrupted_tf_series(real_checkpoints: Path) -> None:
    folder = real_checkpoints / "Hollisd12__Neural_Network_Charity_Analysis" / "checkpoints"
    cands = find_checkpoints(folder)
    assert [(c.name, c.ok) for c in cands] == [("weights2.40hdf5", True), ("weights2.41hdf5", False)]
    assert select(cands).name == "weights2.40hdf5"


def test_real_pickle_named_h5(real_checkpoints: Path) -> None:
    [cand] = find_checkpoints(real_checkpoints / "1nKokoreva__Probability-of-survival" / "model.h5")
    assert cand.problem is not None and cand.format is None


@pytest.mark.parametrize("full, weights_only", [
    ((K2 / "model.h5", "full_03.h5"), (K2 / "weights.h5", "wo_03.h5")),
    ((K3 / "model.keras", "ckpt_03.keras"), (K3 / "model.weights.h5", "ckpt_03.weights.h5"))],
    ids=["tf.keras 2.12 .h5", "Keras 3.15 .keras"])
def test_the_full_checkpoint_of_an_epoch_wins_over_its_weights_only_twin(tmp_path: Path, full: tuple[Path, str],
                                                                          weights_only: tuple[Path, str]) -> None:
    """Two ModelCheckpoint callbacks (one with save_weights_only=True) into one folder: of the files of
    one epoch the one with the model config and the optimizer is the latest, whatever the names' order
    (the weights-only name sorts last in both pairs; it was chosen, and the optimizer state lost)."""
    for src, name in (full, weights_only):
        _copy(src, tmp_path / name)
    found = find_checkpoints(tmp_path)
    assert [c.epoch for c in found] == [3, 3]
    assert select(found).name == full[1]
    assert found[0].holds == 0 < found[1].holds  # (a Keras 3.15 .keras saved after its .h5 names no optimizer)


def test_a_savedmodel_of_an_epoch_wins_over_a_weights_only_file_of_it(tmp_path: Path) -> None:
    """A SavedModel folder holds the model itself: of it and a weights-only ``.h5`` of one epoch the
    SavedModel is the latest (``model_03`` sorts before ``weights_03.h5``)."""
    shutil.copytree(FIXTURES / "saved_model" / "tf212" / "mlp_adam" / "model", tmp_path / "model_03")
    _copy(K2 / "weights.h5", tmp_path / "weights_03.h5")
    found = find_checkpoints(tmp_path)
    assert sorted(c.epoch for c in found) == [3, 3]
    assert select(found).name == "model_03"


def test_without_epochs_the_names_decide_not_the_contents(tmp_path: Path) -> None:
    """How much state a file holds ranks only files of one epoch; files whose epoch nothing tells keep
    the name order (a full model's file is not newer than a weights file for what it holds)."""
    _copy(K2 / "model.h5", tmp_path / "a_model.h5")
    _copy(K2 / "weights.h5", tmp_path / "b_weights.h5")
    found = find_checkpoints(tmp_path)
    assert [c.epoch for c in found] == [None, None]
    assert [c.name for c in found] == ["a_model.h5", "b_weights.h5"]
