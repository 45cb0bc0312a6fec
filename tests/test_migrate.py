"""ckptcompat.migrate: read -> write -> read back, never touching the source, never overwriting silently."""

from __future__ import annotations

import errno
import shutil
import re
from pathlib import Path

import numpy as np
import pytest

from ckptcompat.errors import (CheckpointNotFoundError, CorruptCheckpointError, IncompatibleStateError,
                               InvalidArgumentError, StoreWriteError, UnsupportedFormatError)
from ckptcompat import formats
from ckptcompat.formats import registry
from ckptcompat.migration import MigrationReport, migrate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _copy(tmp_path: Path, rel: str) -> Path:
    """Copy a fixture file (or a TF bundle folder, for ``.../tf1/model.ckpt``) into tmp_path/src."""
    src = FIXTURES / rel
    dest = tmp_path / "src" / rel
    if src.exists():
        dest.parent.mkdir(parents=True)
        shutil.copy2(src, dest)
    else:  # bundle prefix: copy its folder
        shutil.copytree(src.parent, dest.parent)
    return dest


def _fingerprint(path: Path) -> dict[str, tuple[bytes, int]]:
    files = [path] if path.is_file() else sorted(path.parent.glob(path.name + "*")) + [path.parent / "checkpoint"]
    return {str(f): (f.read_bytes(), f.stat().st_mtime_ns) for f in files if f.is_file()}


def _assert_same_tensors(a: registry.TrainingState, b: registry.TrainingState) -> None:
    ta, tb = a.tensors(), b.tensors()
    assert list(ta) and set(ta) == set(tb)
    for key, value in ta.items():
        assert tb[key].dtype == value.dtype and np.array_equal(tb[key], value), key


CASES = [
    ("tf212/mlp_adam/model.h5", "keras3", "out/model.keras", "keras_zip"),
    ("tf212/cnn_bn_adam/model.h5", "keras3", "out/model.keras", "keras_zip"),
    ("tf221-keras3/mlp_adam/model.keras", "h5", "out/model.h5", "keras_h5"),
    ("tf221-keras3/rnn_adam/model.keras", "tf1", "out/model.ckpt", "tf_bundle"),
    ("tf212/tf1_adam/tf1/model.ckpt", "tf1", "out/model.ckpt", "tf_bundle"),
    ("tf221-tfkeras/mlp_sgd/model.h5", "keras3", "out/model.keras", "keras_zip"),
]


@pytest.mark.parametrize("rel, to, out, fmt", CASES)
def test_round_trip_every_tensor_and_source_untouched(tmp_path: Path, rel: str, to: str, out: str,
                                                      fmt: str) -> None:
    src = _copy(tmp_path, rel)
    before = _fingerprint(src)
    report = migrate(src, tmp_path / out, to=to)
    assert isinstance(report, MigrationReport) and report.verified
    assert report.dst == tmp_path / out and report.target_format == fmt and report.backup is None
    assert _fingerprint(src) == before                      # bytes and mtime of SRC unchanged
    source, written = registry.read(src), registry.read(tmp_path / out)
    assert registry.detect(tmp_path / out) == fmt
    _assert_same_tensors(source, written)
    assert report.weights == len(source.weights) and report.slots == source.optimizer.slot_count > 0
    assert report.optimizer == source.optimizer.class_name == written.optimizer.class_name
    assert report.iterations == source.optimizer.iterations == written.optimizer.iterations
    leftovers = [p.name for p in (tmp_path / out).parent.iterdir() if ".migrate-" in p.name]
    assert leftovers == []


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    dst = tmp_path / "model.keras"
    dst.write_bytes(b"precious")
    with pytest.raises(StoreWriteError) as info:
        migrate(src, dst, to="keras3")
    assert info.value.errno == errno.EEXIST and "--force" in str(info.value)
    assert dst.read_bytes() == b"precious" and not dst.with_name("model.keras.bak").exists()


def test_force_replaces_and_keeps_bak(tmp_path: Path) -> None:
    first = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    second = _copy(tmp_path, "tf212/mlp_sgd/model.h5")
    dst = tmp_path / "model.keras"
    migrate(first, dst, to="keras3")
    old = dst.read_bytes()
    report = migrate(second, dst, to="keras3", force=True)
    assert report.backup == tmp_path / "model.keras.bak"
    assert report.backup.read_bytes() == old
    assert registry.read(dst).optimizer.class_name == "SGD"
    assert registry.read(report.backup).optimizer.class_name == "Adam"


def test_force_on_tf1_bundle_keeps_bak_prefix(tmp_path: Path) -> None:
    first = _copy(tmp_path, "tf212/tf1_adam/tf1/model.ckpt")
    second = _copy(tmp_path, "tf212/tf1_momentum/tf1/model.ckpt")
    out = tmp_path / "out"
    migrate(first, out / "model.ckpt", to="tf1")
    assert (out / "checkpoint").is_file()
    report = migrate(second, out / "model.ckpt", to="tf1", force=True)
    assert report.backup == out / "model.ckpt.bak"
    assert registry.read(out / "model.ckpt.bak").optimizer.class_name == "Adam"
    assert registry.read(out / "model.ckpt").optimizer.class_name == "SGD"
    assert (out / "checkpoint").is_file()


def test_folder_destination_for_tf1(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf212/tf1_momentum/tf1/model.ckpt")
    (tmp_path / "out").mkdir()
    report = migrate(src, tmp_path / "out", to="tf1")
    assert report.dst == tmp_path / "out" / "model.ckpt"
    assert (tmp_path / "out" / "model.ckpt.index").is_file()


def test_failed_verification_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    dst = tmp_path / "model.keras"
    dst.write_bytes(b"old")
    real_read = formats.read

    def tampered(path: Path, **kw: object) -> registry.TrainingState:
        state = real_read(path, **kw)
        if ".tmp-" in str(path):  # the migrated copy, in migrate's temporary folder
            weights = dict(state.weights)
            weights["dense/bias"] = weights["dense/bias"] + 1
            state = state.replace(weights=weights)
        return state
    monkeypatch.setattr(formats, "read", tampered)
    with pytest.raises(IncompatibleStateError) as info:
        migrate(src, dst, to="keras3", force=True)
    assert info.value.mismatches == ["dense/bias: values differ"]
    assert dst.read_bytes() == b"old" and not (tmp_path / "model.keras.bak").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "src"]


def test_optimizer_loss_is_refused_unless_asked(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf221-keras3/mlp_adam/model.weights.h5")
    with pytest.raises(IncompatibleStateError) as info:
        migrate(src, tmp_path / "w.h5", to="h5")
    assert "--no-optimizer" in str(info.value) and not (tmp_path / "w.h5").exists()
    report = migrate(src, tmp_path / "w.h5", to="h5", include_optimizer=False)
    assert report.slots == 0 and report.optimizer is None
    _assert_same_tensors(registry.read(src).replace(optimizer=None), registry.read(tmp_path / "w.h5"))


def test_progress_callback(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    calls: list[tuple[str, int, int]] = []
    report = migrate(src, tmp_path / "m.keras", to="keras3", progress=lambda *a: calls.append(a))
    assert calls[:4] == [("read", 0, 1), ("read", 1, 1), ("write", 0, 1), ("write", 1, 1)]
    verify = [c for c in calls if c[0] == "verify"]
    assert verify == [("verify", i, report.tensors) for i in range(1, report.tensors + 1)]


def test_argument_errors(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    with pytest.raises(InvalidArgumentError, match="unknown target"):
        migrate(src, tmp_path / "x.keras", to="keras4")
    with pytest.raises(InvalidArgumentError, match="ends with .keras or .weights.h5"):
        migrate(src, tmp_path / "x.h5", to="keras3")
    with pytest.raises(InvalidArgumentError, match="the destination is the source"):
        migrate(src, src, to="h5", force=True)
    with pytest.raises(CheckpointNotFoundError):
        migrate(tmp_path / "absent.h5", tmp_path / "x.keras", to="keras3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_damaged_and_unconvertible_sources(tmp_path: Path) -> None:
    src = _copy(tmp_path, "tf212/tf1_momentum/tf1/model.ckpt")
    shard = next(src.parent.glob("model.ckpt.data-*"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-8] + bytes(8))          # zeroed tail: CRC mismatch
    with pytest.raises(CorruptCheckpointError):
        migrate(src, tmp_path / "out" / "x.ckpt", to="tf1")
    tf1 = _copy(tmp_path, "tf212/tf1_adam/tf1/model.ckpt")
    with pytest.raises(UnsupportedFormatError, match="no model config"):
        migrate(tf1, tmp_path / "out" / "y.keras", to="keras3")
    assert not (tmp_path / "out").exists()  # refused before anything is written, or even a folder made
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(UnsupportedFormatError):
        migrate(text, tmp_path / "z.h5", to="h5")


# ---------------------------------------------------------------- the result loads natively
@pytest.mark.keras3
def test_keras3_output_loads_with_keras(tmp_path: Path, keras) -> None:
    src = _copy(tmp_path, "tf212/mlp_adam/model.h5")
    dst = tmp_path / "model.keras"
    migrate(src, dst, to="keras3")
    model = keras.saving.load_model(dst)
    state = registry.read(src)
    for w in model.weights:
        key = w.path if hasattr(w, "path") else w.name
        name = re.sub(":0$", "", "/".join(key.split("/")[-2:]))
        assert np.array_equal(np.asarray(w.numpy()), state.weights[name]), name
    assert int(model.optimizer.iterations.numpy()) == state.optimizer.iterations


@pytest.mark.keras3
def test_a_loss_object_of_an_h5_survives_into_a_keras_file_native_keras_loads(tmp_path: Path,
                                                                              keras) -> None:
    """A legacy .h5 records ``loss=MeanSquaredError()`` without a module; Keras 3 cannot
    resolve that class in a .keras compile config unless the writer names ``keras.losses``."""
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(300)])  # 90,300 weights: streamed
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.MeanSquaredError())
    x = np.random.default_rng(0).random((8, 300), dtype=np.float32)
    model.fit(x, x, epochs=1, verbose=0)
    model.save(tmp_path / "model.h5")
    migrate(tmp_path / "model.h5", tmp_path / "model.keras", to="keras3")
    back = keras.saving.load_model(tmp_path / "model.keras")
    assert type(back.loss).__name__ == "MeanSquaredError"
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), back.get_weights()))
    assert int(back.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 1


@pytest.mark.keras2
def test_h5_output_loads_with_tf_keras(tmp_path: Path, keras) -> None:
    src = _copy(tmp_path, "tf221-keras3/mlp_adam/model.keras")
    dst = tmp_path / "model.h5"
    migrate(src, dst, to="h5")
    model = keras.models.load_model(dst)
    state = registry.read(src)
    got = {re.sub(":0$", "", "/".join(w.name.split("/")[-2:])): w.numpy() for w in model.weights}
    assert set(got) == set(state.weights)
    for name, value in state.weights.items():
        assert np.array_equal(got[name], value), name


@pytest.mark.framework
def test_tf1_output_loads_with_tensorflow(tmp_path: Path) -> None:
    import tensorflow as tf

    src = _copy(tmp_path, "tf212/tf1_adam/tf1/model.ckpt")
    migrate(src, tmp_path / "out" / "model.ckpt", to="tf1")
    original = tf.train.load_checkpoint(str(src))
    written = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt"))
    names = original.get_variable_to_shape_map()
    assert written.get_variable_to_shape_map() == names
    for name in names:
        a, b = original.get_tensor(name), written.get_tensor(name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert tf.train.latest_checkpoint(str(tmp_path / "out")).endswith("model.ckpt")


def test_a_fresh_optimizer_keeps_its_step_zero_through_h5(tmp_path: Path) -> None:
    """A compiled, never trained model: tf-keras's own ``.h5`` stores ``iteration:0`` alone, and so
    does ckptcompat's writer (before, it stored nothing, so migrating such a file .h5 -> .h5 failed
    its read-back: "wrote 0, read back None")."""
    import dataclasses

    state = formats.read(FIXTURES / "tf221-keras3/mlp_adam/model.keras")
    assert state.optimizer is not None
    fresh = state.replace(optimizer=dataclasses.replace(state.optimizer, iterations=0, slots={}, extra={}))
    formats.write(tmp_path / "fresh.h5", fresh, format="keras_h5")
    back = formats.read(tmp_path / "fresh.h5")
    assert back.optimizer is not None and back.optimizer.iterations == 0 and not back.optimizer.slots
    report = migrate(tmp_path / "fresh.h5", tmp_path / "again.h5", to="h5")
    assert report.verified and report.iterations == 0
    assert formats.read(tmp_path / "again.h5").optimizer.iterations == 0
