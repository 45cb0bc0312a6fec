"""tf_bundle reader: TF1 Saver, tf.train.Checkpoint, TF-format save_weights, fixtures, real corpus."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import (CheckpointNotFoundError, CkptCompatError, CorruptCheckpointError,
                               UnsupportedFormatError)
from ckptcompat.formats import tf_bundle
from ckptcompat.state import OptimizerState, Progress, TrainingState

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "fixtures" / "manifest.json"


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _state() -> TrainingState:
    rng = np.random.default_rng(0)
    w = {"layer_conv1/kernel": rng.standard_normal((3, 4)).astype(np.float32),
         "layer_conv1/bias": rng.standard_normal(4).astype(np.float32),
         "out/kernel": rng.standard_normal((4, 1)).astype(np.float64),
         "counts": np.arange(6, dtype=np.int64).reshape(2, 3), "flags": np.array([True, False])}
    slots = {k: {"m": np.full(v.shape, 0.5, v.dtype), "v": np.full(v.shape, 0.25, v.dtype)}
             for k, v in w.items() if v.dtype.kind == "f"}
    opt = OptimizerState("Adam", {"learning_rate": 0.01, "beta_1": 0.9}, iterations=7, slots=slots)
    return TrainingState(weights=w, optimizer=opt, progress=Progress(global_step=7))


def _write_tf1(tmp: Path) -> Path:
    tf_bundle.write(tmp / "model.ckpt", _state())
    return tmp / "model.ckpt"


def test_write_read_round_trip_pure_python(tmp_path: Path) -> None:
    state = _state()
    prefix = _write_tf1(tmp_path)
    assert (tmp_path / "checkpoint").read_text().splitlines()[0] == 'model_checkpoint_path: "model.ckpt"'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    for source in (prefix, tmp_path, Path(f"{prefix}.index")):
        back = tf_bundle.read(source)
        assert list(back.weights) == sorted(state.weights)
        for k, v in state.weights.items():
            assert back.weights[k].dtype == v.dtype and np.array_equal(back.weights[k], v)
        assert back.optimizer is not None and back.optimizer.class_name == "Adam"
        assert back.optimizer.iterations == 7 and back.progress.global_step == 7
        for var, per in state.optimizer.slots.items():  # type: ignore[union-attr]
            for slot, v in per.items():
                assert np.array_equal(back.optimizer.slots[var][slot], v)
        assert np.float32(back.optimizer.extra["beta1_power"]) == np.float32(0.9 ** 8)


def test_reader_does_not_import_tensorflow(tmp_path: Path) -> None:
    prefix = _write_tf1(tmp_path)
    code = ("import sys; from ckptcompat.formats import tf_bundle; s = tf_bundle.read(sys.argv[1]); "
            "assert s.optimizer.iterations == 7; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'framework imported'")
    subprocess.run([sys.executable, "-c", code, str(prefix)], check=True)


def test_sniff(tmp_path: Path) -> None:
    prefix = _write_tf1(tmp_path)
    assert tf_bundle.sniff(prefix) and tf_bundle.sniff(tmp_path) and tf_bundle.sniff(f"{prefix}.index")
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    assert not tf_bundle.sniff(tmp_path / "x.h5")
    assert not tf_bundle.sniff(tmp_path / "nothing")
    assert not tf_bundle.sniff(tmp_path / "empty_dir_missing" / "deeper")


def test_moved_folder_with_foreign_absolute_paths(tmp_path: Path) -> None:
    _write_tf1(tmp_path / "a")
    moved = tmp_path / "b"
    shutil.copytree(tmp_path / "a", moved)
    (moved / "checkpoint").write_text('model_checkpoint_path: "/home/someone/run7/model.ckpt"\n'
                                      'all_model_checkpoint_paths: "/home/someone/run7/model.ckpt"\n')
    assert tf_bundle.read(moved).optimizer.iterations == 7  # type: ignore[union-attr]
    (moved / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/gone.ckpt"\n')
    with pytest.raises(CheckpointNotFoundError, match="gone.ckpt"):
        tf_bundle.read(moved)


def test_truncation_and_bitflip_give_typed_errors(tmp_path: Path) -> None:
    prefix = _write_tf1(tmp_path)
    index, data = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
    for victim in (index, data):
        original = victim.read_bytes()
        for tenth in range(10):
            victim.write_bytes(original[: len(original) * tenth // 10])
            with pytest.raises(CorruptCheckpointError):
                tf_bundle.read(prefix)
        victim.write_bytes(original)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        tf_bundle.read(prefix)
    data.unlink()
    with pytest.raises(CorruptCheckpointError, match="missing"):
        tf_bundle.read(prefix)


def test_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "junk.index").write_bytes(b"not a table at all" * 10)
    with pytest.raises(CorruptCheckpointError):
        tf_bundle.read(tmp_path / "junk")
    with pytest.raises(CheckpointNotFoundError):
        tf_bundle.read(tmp_path / "absent")


def _fixtures() -> list[dict]:
    if not MANIFEST.exists():
        return []
    return [f for f in json.loads(MANIFEST.read_text())["fixtures"] if f["format"] == "tf_bundle"]


def _bundle_owner(fx: dict, owner: str) -> str:
    """The name a TF bundle can give ``owner``.

    A nested model's own layer name is stored nowhere in a TF bundle (the object graph keeps
    only ``layer_with_weights-N`` edges and each variable's ``inner_layer/short`` name), so its
    weights read as ``<inner layer>/<short>``; resume() maps them back by structure and shape.
    """
    parts = owner.split("/")
    return "/".join(parts[1:]) if fx["case"].startswith("nested") and len(parts) >= 3 else owner


def _fixture_params() -> list[Any]:
    """:func:`_fixtures`; corpus files listed as known gaps of the resume table
    (tests/matrix/_table_gaps.py ``_KNOWN_GAPS``, with reasons) are expected to fail."""
    from tests.matrix._table_gaps import gap_marks

    return [pytest.param(f, marks=gap_marks(f["path"]), id=f["path"]) for f in _fixtures()]


@pytest.mark.parametrize("fx", _fixture_params())
def test_manifest_fixture(fx: dict) -> None:
    path = ROOT / "fixtures" / fx["path"]
    if not Path(f"{path}.index").exists():
        pytest.skip(f"{path} listed in the manifest but absent (fixtures being regenerated?)")
    state = tf_bundle.read(path)
    got = {("weight", k, None): v for k, v in state.weights.items()}
    if state.optimizer is not None:
        got.update({("slot", var, s): v for var, per in state.optimizer.slots.items() for s, v in per.items()})
    want = {(t["kind"], _bundle_owner(fx, t["owner"]), t["slot"]): t for t in fx["tensors"]}
    assert set(got) == set(want)
    for key, t in want.items():
        assert str(got[key].dtype) == t["dtype"] and list(got[key].shape) == t["shape"], key
        assert _sha(got[key]) == t["sha256"], key
    opt = fx["optimizer"]
    if opt:
        assert state.optimizer is not None
        assert state.optimizer.class_name == opt["class"]
        assert state.optimizer.iterations == opt["iterations"]
        if fx["kind"] == "tf1_saver":  # TF1 bundles do not store the learning rate
            assert state.optimizer.learning_rate is None
        else:
            assert state.optimizer.learning_rate == opt["learning_rate"]


def test_real_corpus_reads_or_raises_typed(real_checkpoints: Path) -> None:
    rows = [r for r in csv.DictReader(open(real_checkpoints / "MANIFEST.tsv"), delimiter="\t")
            if r["kind"] in ("A", "D")]
    targets: set[Path] = set()
    for r in rows:
        f = real_checkpoints / r["repo"].replace("/", "__") / r["path"]
        if f.name.endswith(".index") or f.suffix == ".ckpt":
            targets.add(f)
        elif f.name == "checkpoint":
            targets.add(f.parent)
    read = 0
    for t in sorted(targets):
        try:
            state = tf_bundle.read(t)
        except CkptCompatError:
            continue
        read += 1
        assert all(isinstance(v, np.ndarray) for v in state.weights.values())
    assert len(targets) >= 40 and read >= 35, (read, len(targets))


# ---- against the running TensorFlow ------------------------------------------------------

def _tf():
    import tensorflow as tf  # noqa: PLC0415
    return tf


def _assert_matches_tf(prefix: Path, state: TrainingState, keys: dict[str, np.ndarray]) -> None:
    reader = _tf().train.load_checkpoint(str(prefix))
    for key, ours in keys.items():
        theirs = reader.get_tensor(key)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), key


@pytest.mark.framework
def test_tf1_saver_adam_global_step(tmp_path: Path) -> None:
    tf = _tf()
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 3])
        with tf1.variable_scope("layer_conv1"):
            w = tf1.get_variable("kernel", [3, 4])
            b = tf1.get_variable("bias", [4], initializer=tf1.zeros_initializer())
        tf1.Variable([b"ab", b"", b"xyz" * 50], name="names")
        loss = tf.reduce_mean(tf.nn.relu(tf.matmul(x, w) + b) ** 2)
        gs = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.01).minimize(loss, global_step=gs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(5):
                sess.run(train, {x: np.random.rand(8, 3).astype(np.float32)})
            prefix = tf1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    state = tf_bundle.read(tmp_path)
    assert state.optimizer is not None and state.optimizer.class_name == "Adam"
    assert state.optimizer.iterations == 5 and state.progress.global_step == 5
    assert set(state.optimizer.slots) == {"layer_conv1/kernel", "layer_conv1/bias"}
    assert list(state.weights["names"]) == [b"ab", b"", b"xyz" * 50]
    keys = {k: v for k, v in state.weights.items() if k != "names"}
    keys.update({f"{var}/Adam": s["m"] for var, s in state.optimizer.slots.items()})
    keys.update({f"{var}/Adam_1": s["v"] for var, s in state.optimizer.slots.items()})
    _assert_matches_tf(Path(prefix), state, keys)


def _keras_model(keras):  # type: ignore[no-untyped-def]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(np.random.rand(12, 3), np.random.rand(12, 2), batch_size=4, epochs=1, verbose=0)
    return model


def _check_object_bundle(prefix: Path, model) -> None:  # type: ignore[no-untyped-def]
    state = tf_bundle.read(prefix)
    assert state.optimizer is not None and state.optimizer.class_name == "Adam"
    assert state.optimizer.iterations == 3
    assert state.optimizer.learning_rate == pytest.approx(0.01)
    weights = {w.name.split(":")[0].split("/")[-1]: w.numpy() for w in model.layers[0].weights}
    assert np.array_equal(state.weights["d1/kernel"], weights["kernel"])
    assert np.array_equal(state.weights["d1/bias"], weights["bias"])
    reader = _tf().train.load_checkpoint(str(prefix))
    values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if k.endswith("VARIABLE_VALUE") and "save_counter" not in k]
    ours = list(state.tensors().values())
    for v in values:  # every stored tensor is in our state, bitwise (or is a scalar hyperparameter)
        assert v.ndim == 0 or any(o.dtype == v.dtype and np.array_equal(o, v) for o in ours)
    assert {s for per in state.optimizer.slots.values() for s in per} == {"m", "v"}
    assert state.optimizer.slot_count == 8


@pytest.mark.framework
def test_tf_train_checkpoint(tmp_path: Path, keras) -> None:  # type: ignore[no-untyped-def]
    model = _keras_model(keras)
    try:
        ckpt = _tf().train.Checkpoint(model=model, optimizer=model.optimizer)
    except ValueError as exc:
        pytest.skip(f"this Keras optimizer is not trackable by tf.train.Checkpoint: {exc}")
    prefix = ckpt.save(str(tmp_path / "ckpt"))
    _check_object_bundle(Path(prefix), model)
    assert tf_bundle.read(tmp_path).optimizer.iterations == 3  # type: ignore[union-attr]


@pytest.mark.keras2
def test_tf_format_save_weights(tmp_path: Path, keras) -> None:  # type: ignore[no-untyped-def]
    model = _keras_model(keras)
    model.save_weights(str(tmp_path / "ckpt"), save_format="tf")
    _check_object_bundle(tmp_path / "ckpt", model)


@pytest.mark.framework
def test_v1_single_file_needs_tf_or_is_typed(tmp_path: Path) -> None:
    (tmp_path / "w.ckpt").write_bytes(b"garbage" * 20)
    with pytest.raises(CkptCompatError):
        tf_bundle.read(tmp_path / "w.ckpt")


def test_v1_without_tf_is_unsupported(real_checkpoints: Path) -> None:
    v1 = real_checkpoints / "Gknoblau__nxt-tensorflow" / "video_weights.ckpt"
    if not v1.exists():
        pytest.skip("V1 sample absent")
    try:
        import tensorflow  # noqa: F401, PLC0415
    except ImportError:
        with pytest.raises(UnsupportedFormatError, match="V1"):
            tf_bundle.read(v1)
    else:
        try:
            state = tf_bundle.read(v1)
        except CkptCompatError:
            return
        assert state.weights


def test_tf1_graph_mode_slot_scope_names_the_optimizer_class() -> None:
    """tf.keras 2.2.4-tf (TF 1.15 graph execution) creates the slots in a ``training`` scope
    (``training/Adamax/dense/kernel/m``): the class is the next name, not ``training`` (an Adamax
    bundle has Adam's variables; found by TF 1.15's optimizer corpus)."""
    from types import SimpleNamespace

    from ckptcompat.formats.tf_bundle._tf2_objects import _referenced_slots

    slots = [SimpleNamespace(original_variable_node_id=1, slot_variable_node_id=2, slot_name="m")]
    for scope, want in (("training/", "Adamax"), ("training_1/", "Adamax"), ("", "Adamax"), ("outer/", None)):
        graph = SimpleNamespace(nodes=[SimpleNamespace(slot_variables=slots)],
                                var_of={2: SimpleNamespace(full_name=f"{scope}Adamax/dense/kernel/m")})
        triples, cls = _referenced_slots(graph, 0, {1: "dense/kernel"})
        assert triples == [("dense/kernel", "m", 2)] and cls == want, (scope, cls)
