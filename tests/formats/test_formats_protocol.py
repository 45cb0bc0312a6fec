"""The typed Format protocol: every registered format satisfies it, ``files()`` lists exactly a
checkpoint's files, ``write()`` returns exactly the files it created, ``peek()`` agrees with a
full read without reading tensor data. On fixtures written by the real releases."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ckptcompat import formats
from ckptcompat.errors import CheckpointNotFoundError, CorruptCheckpointError
from ckptcompat.formats import Format, Peek, WrittenFiles, sidecar
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState
from _paths import FIXTURES

pytest.importorskip("h5py")

H5 = FIXTURES / "tf215/mlp_adam/model.h5"                      # tf.keras 2.15 model.save
KERAS = FIXTURES / "tf221-keras3/mlp_adam/model.keras"         # Keras 3.x model.save
WEIGHTS = FIXTURES / "tf221-keras3/mlp_adam/model.weights.h5"  # Keras 3.x save_weights
OBJECT_BUNDLE = FIXTURES / "tf215/mlp_adam/tf_checkpoint"      # tf.train.Checkpoint folder
TF1 = FIXTURES / "tf216-keras30/tf1_adam/tf1"                  # TF1 Saver: .index, .data, .meta, checkpoint


def _state_json(folder: Path) -> Path:
    path = folder / "state.json"
    sidecar.write(path, TrainingState(optimizer=OptimizerState("Adam", {"learning_rate": 0.01}, iterations=7),
                                      progress=Progress(epoch=3, step=2, global_step=7),
                                      producer=Producer("keras", {"keras": "3.15.1"})))
    return path


def _tree(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("info", formats.FORMATS, ids=lambda i: i.name)
def test_every_registered_format_satisfies_the_protocol(info: formats.FormatInfo) -> None:
    fmt = formats.get(info.name)
    assert isinstance(fmt, Format)
    assert fmt.name == info.name


def test_an_incomplete_module_is_not_a_format() -> None:
    import types

    half = types.ModuleType("half")
    half.name, half.sniff, half.read = "half", bool, dict  # type: ignore[attr-defined]
    assert not isinstance(half, Format)


@pytest.mark.parametrize("path", [H5, KERAS, WEIGHTS], ids=lambda p: p.name)
def test_files_of_a_single_file_checkpoint_is_the_file(path: Path) -> None:
    assert formats.files(path) == [path]


def test_files_of_a_tf1_bundle_is_its_whole_folder() -> None:
    want = sorted(_tree(TF1))
    assert {p.name for p in want} == {"model.ckpt.index", "model.ckpt.data-00000-of-00001",
                                      "model.ckpt.meta", "checkpoint"}
    for given in (TF1 / "model.ckpt", TF1 / "model.ckpt.index", TF1 / "model.ckpt.meta",
                  TF1 / "model.ckpt.data-00000-of-00001", TF1):
        assert sorted(formats.files(given, format="tf_bundle")) == want, given


def test_files_of_an_object_based_bundle_folder() -> None:
    assert sorted(formats.files(OBJECT_BUNDLE)) == sorted(_tree(OBJECT_BUNDLE))


def test_files_leave_out_a_state_file_that_lists_another_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "tf1"
    shutil.copytree(TF1, folder)
    for f in list(folder.glob("model.ckpt.*")):
        f.with_name(f.name.replace("model.ckpt", "other.ckpt")).write_bytes(f.read_bytes())
    other = formats.files(folder / "other.ckpt", format="tf_bundle")
    assert sorted(p.name for p in other) == ["other.ckpt.data-00000-of-00001", "other.ckpt.index",
                                             "other.ckpt.meta"]
    assert folder / "checkpoint" in formats.files(folder / "model.ckpt", format="tf_bundle")


def test_files_of_nothing_is_empty(tmp_path: Path) -> None:
    for info in formats.FORMATS:
        assert formats.get(info.name).files(tmp_path / "absent.ckpt") == [], info.name


@pytest.mark.parametrize("source, name, fmt", [
    (H5, "out.h5", "keras_h5"),
    (KERAS, "out.keras", "keras_zip"),
    (KERAS, "out.weights.h5", "keras_zip"),
    (TF1 / "model.ckpt", "model.ckpt", "tf_bundle"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_write_returns_exactly_the_files_it_created(tmp_path: Path, source: Path, name: str, fmt: str) -> None:
    state = formats.read(source)
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("not ours")
    written = formats.write(out / name, state, format=fmt)
    assert isinstance(written, WrittenFiles) and all(isinstance(p, Path) for p in written)
    assert set(written) == _tree(out) - {out / "unrelated.txt"}
    assert len(written) == len(set(written))
    assert sorted(written) == sorted(formats.files(out / name, format=fmt))
    back = formats.read(out / name, format=fmt)
    assert list(back.weights) == list(state.weights)
    for key, value in state.weights.items():
        assert np.asarray(back.weights[key]).tobytes() == np.asarray(value).tobytes(), key


def test_write_of_state_json_returns_the_file(tmp_path: Path) -> None:
    path = _state_json(tmp_path)
    written = formats.write(tmp_path / "again.json", formats.read(path), format="state_json")
    assert written == [tmp_path / "again.json"] and _tree(tmp_path) == {path, tmp_path / "again.json"}


def test_tf_bundle_write_next_to_another_bundle_lists_the_state_file_it_rewrote(tmp_path: Path) -> None:
    folder = tmp_path / "tf1"
    shutil.copytree(TF1, folder)
    before = {p: p.read_bytes() for p in _tree(folder)}
    written = formats.write(folder / "second.ckpt", formats.read(folder / "model.ckpt"), format="tf_bundle")
    assert sorted(p.name for p in written) == ["checkpoint", "second.ckpt.data-00000-of-00001",
                                               "second.ckpt.index"]
    changed = {p for p in _tree(folder) if before.get(p) != p.read_bytes()}
    assert changed == set(written)


def test_keras_h5_checksum_digest_is_the_written_file(tmp_path: Path) -> None:
    import hashlib

    target = tmp_path / "m.h5"
    written = formats.write(target, formats.read(H5), format="keras_h5", checksum=True)
    data = target.read_bytes()
    assert written.digests == {target: (len(data), hashlib.sha256(data).hexdigest())}


# ---------------------------------------------------------------- peek
def _shapes(variables: tuple[formats.VariableMeta, ...] | None) -> Counter[tuple[int, ...] | None]:
    assert variables is not None
    return Counter(v.shape for v in variables)


def test_peek_keras_h5_agrees_with_read() -> None:
    meta, state = formats.peek(H5), formats.read(H5)
    assert isinstance(meta, Peek) and (meta.format, meta.kind, meta.problem) == ("keras_h5", "model", None)
    assert meta.producer == state.producer
    assert state.optimizer is not None
    assert (meta.optimizer, meta.iterations) == (state.optimizer.class_name, state.optimizer.iterations) == ("Adam", 4)
    assert _shapes(meta.variables) == Counter(tuple(v.shape) for v in state.weights.values())
    assert (meta.epoch, meta.step, meta.global_step) == (state.progress.epoch, state.progress.step,
                                                         state.progress.global_step)


def test_peek_keras_archive_does_not_open_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptcompat.formats.keras_zip import _io as kio

    real = kio.read_member

    def guarded(zf: object, name: str, *args: object, **kw: object) -> bytes:
        assert name != "model.weights.h5", "peek read the weights member"
        return real(zf, name, *args, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(kio, "read_member", guarded)
    meta = formats.peek(KERAS)
    assert (meta.format, meta.kind, meta.problem, meta.variables) == ("keras_zip", "model", None, None)
    assert meta.producer is not None and meta.producer.versions["keras"].startswith("3.")


def test_peek_keras_weights_lists_every_variable() -> None:
    meta, state = formats.peek(WEIGHTS), formats.read(WEIGHTS)
    assert meta.kind == "weights"
    tensors = [*state.weights.values(), *(state.optimizer.extra.values() if state.optimizer else ())]
    slots = [s for per in (state.optimizer.slots.values() if state.optimizer else ()) for s in per.values()]
    assert sum(_shapes(meta.variables).values()) >= len(state.weights)
    wanted = Counter(tuple(np.shape(v)) for v in [*tensors, *slots] if np.size(v) > 1)
    assert not wanted - _shapes(meta.variables)


def test_peek_tf1_bundle_lists_exactly_the_stored_tensors() -> None:
    from ckptcompat.formats.tf_bundle import read_tensors

    meta = formats.peek(TF1 / "model.ckpt")
    _, tensors = read_tensors(TF1 / "model.ckpt")
    assert (meta.kind, meta.problem, meta.listed) == ("name_based", None, 0)
    assert {v.name: (v.shape, v.dtype) for v in meta.variables or ()} == {
        k: (tuple(v.shape), str(v.dtype)) for k, v in tensors.items()}
    assert meta.global_step == int(tensors["global_step"])


def test_peek_object_bundle_iterations_match_read() -> None:
    meta, state = formats.peek(OBJECT_BUNDLE), formats.read(OBJECT_BUNDLE)
    assert meta.kind == "object_based" and state.optimizer is not None
    assert meta.iterations == state.optimizer.iterations == 4


def test_peek_reports_a_missing_shard_that_read_refuses(tmp_path: Path) -> None:
    folder = tmp_path / "tf1"
    shutil.copytree(TF1, folder)
    (folder / "model.ckpt.data-00000-of-00001").unlink()
    meta = formats.peek(folder / "model.ckpt")
    assert meta.problem == "data shard model.ckpt.data-00000-of-00001 is missing"
    assert meta.kind == "name_based" and meta.global_step is None
    with pytest.raises(CorruptCheckpointError):
        formats.read(folder / "model.ckpt")
    (folder / "model.ckpt.index").unlink()
    assert formats.peek(folder / "model.ckpt", format="tf_bundle").problem == \
        "model.ckpt.index is missing (interrupted save?)"
    with pytest.raises(CheckpointNotFoundError):
        formats.get("tf_bundle").peek(tmp_path / "nothing.ckpt")


def test_peek_state_json(tmp_path: Path) -> None:
    meta = formats.peek(_state_json(tmp_path))
    assert (meta.format, meta.epoch, meta.step, meta.global_step, meta.optimizer, meta.iterations) == \
        ("state_json", 3, 2, 7, "Adam", 7)


# ---------------------------------------------------------------- the store uses write()'s list
@pytest.mark.parametrize("source, name, fmt, files", [
    (H5, "model.h5", "keras_h5", ["model.h5", "state.json"]),
    (TF1 / "model.ckpt", "model.ckpt", "tf_bundle",
     ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index", "state.json"]),
], ids=["keras_h5", "tf_bundle"])
def test_store_write_state_commits_exactly_the_written_files(tmp_path: Path, source: Path, name: str,
                                                              fmt: str, files: list[str]) -> None:
    import hashlib

    from ckptcompat.store import CheckpointStore

    state = formats.read(source).replace(progress=Progress(epoch=2, step=0, global_step=4))
    with CheckpointStore(tmp_path / "store", write=True) as store:
        with store.begin(epoch=2, format=fmt) as pending:
            written = pending.write_state(name, state, format=fmt)
            assert sorted(p.name for p in written) == files
            assert set(written) == _tree(pending.path)
        entry = pending.entry
    assert entry is not None and sorted(entry.files) == files
    for rel, record in entry.files.items():
        data = (entry.path / rel).read_bytes()
        assert (record.size, record.sha256) == (len(data), hashlib.sha256(data).hexdigest()), rel
    back = formats.read(entry.path / name, format=fmt)
    for key, value in state.weights.items():
        assert np.asarray(back.weights[key]).tobytes() == np.asarray(value).tobytes(), key
