"""keras_h5 reader/writer: outcomes on real framework files, manifest fixtures, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import CkptCompatError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats import keras_h5
from ckptcompat.state import OptimizerState, TrainingState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _keras_h5_manifest import manifest_entries, read_options, sha256  # noqa: E402

h5py = pytest.importorskip("h5py")
ENTRIES = manifest_entries()


def _state() -> TrainingState:
    rng = np.random.default_rng(0)
    weights = {"d1/kernel": rng.standard_normal((4, 3)).astype("float32"),
               "d1/bias": rng.standard_normal(3).astype("float32"),
               "d2/kernel": rng.standard_normal((3, 2)).astype("float64")}
    return TrainingState(weights=weights)


def test_weights_only_write_read_bitwise(tmp_path: Path) -> None:
    state = _state()
    target = tmp_path / "w.h5"
    keras_h5.write(target, state)
    assert keras_h5.sniff(target)
    back = keras_h5.read(target)
    assert list(back.weights) == list(state.weights)
    for name, value in state.weights.items():
        assert back.weights[name].dtype == value.dtype
        assert np.array_equal(back.weights[name], value)
    assert back.optimizer is None
    assert back.progress.epoch is None
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]


@pytest.mark.parametrize("durable", [True, False])
def test_checksum_write_hashes_exactly_the_file_written(tmp_path: Path, durable: bool) -> None:
    """checksum=True writes large tensors straight from their arrays while hashing: the
    returned sha256 is the file's, and the file reads back bitwise (small ones included)."""
    import hashlib

    rng = np.random.default_rng(1)
    weights = {"big/kernel": rng.standard_normal((300, 200)).astype("float32"),   # direct
               "big/bias": rng.standard_normal(200).astype("float32"),            # small: h5py
               "ints/table": rng.integers(0, 9, (100, 100)).astype("int64"),      # direct
               "more/kernel": rng.standard_normal((64, 512)).astype("float64")}   # direct
    state = TrainingState(weights=weights)
    target = tmp_path / "w.h5"
    written = keras_h5.write(target, state, checksum=True, durable=durable)
    assert written == [target] and list(written.digests) == [target]
    size, digest = written.digests[target]
    data = target.read_bytes()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    back = keras_h5.read(target)
    assert list(back.weights) == list(weights)
    for name, value in weights.items():
        assert back.weights[name].dtype == value.dtype and np.array_equal(back.weights[name], value)
    plain = keras_h5.write(tmp_path / "plain.h5", state)
    assert plain == [tmp_path / "plain.h5"] and plain.digests == {}


@pytest.mark.parametrize("path,entry", [e for e in ENTRIES if "model.h5" in str(e[0])][:3],
                         ids=lambda v: str(v)[-40:] if isinstance(v, Path) else "")
def test_checksum_write_of_full_models_reads_back(path: Path, entry: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from ckptcompat.formats.keras_h5 import _direct as _h5_direct

    monkeypatch.setattr(_h5_direct, "_MIN_DIRECT", 1)  # every tensor of these small models direct
    state = keras_h5.read(path)
    target = tmp_path / "m.h5"
    size, digest = keras_h5.write(target, state, checksum=True).digests[target]  # verify=True: read back too
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    back = keras_h5.read(target)
    for name, value in state.tensors().items():
        assert np.array_equal(back.tensors()[name], value), name


def test_progress_attrs_round_trip(tmp_path: Path) -> None:
    from ckptcompat.state import Progress
    state = _state().replace(progress=Progress(epoch=3, step=7, global_step=40))
    keras_h5.write(tmp_path / "p.h5", state)
    assert keras_h5.read(tmp_path / "p.h5").progress == Progress(epoch=3, step=7, global_step=40)


def test_reader_does_not_import_tensorflow(tmp_path: Path) -> None:
    keras_h5.write(tmp_path / "w.h5", _state())
    code = ("import sys; from ckptcompat.formats import keras_h5; "
            f"s = keras_h5.read({str(tmp_path / 'w.h5')!r}); "
            "assert len(s.weights) == 3; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_sniff_false_for_keras3_weights_layout_and_junk(tmp_path: Path) -> None:
    k3 = tmp_path / "model.weights.h5"
    with h5py.File(k3, "w") as f:
        f.create_group("layers"); f.create_group("vars"); f.create_group("optimizer")
    assert not keras_h5.sniff(k3)
    with pytest.raises(UnsupportedFormatError):
        keras_h5.read(k3)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(4096))
    assert not keras_h5.sniff(junk)
    assert not keras_h5.sniff(tmp_path / "missing.h5")
    assert not keras_h5.sniff(tmp_path)


def test_bad_inputs_raise_typed_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError):
        keras_h5.read(empty)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(UnsupportedFormatError):
        keras_h5.read(junk)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(UnsupportedFormatError):
        keras_h5.read(plain)
    missing_group = tmp_path / "missing_group.h5"
    with h5py.File(missing_group, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
    with pytest.raises(CorruptCheckpointError):
        keras_h5.read(missing_group)


def test_absurd_dataset_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"dense"])
        g = f.create_group("dense")
        g.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        g.create_dataset("dense/kernel:0", shape=(1 << 20, 1 << 12), dtype="float64")  # 32 GiB, unallocated
    with pytest.raises(CorruptCheckpointError, match="claims"):
        keras_h5.read(path)


def _source_file(tmp_path: Path) -> Path:
    if ENTRIES:
        return ENTRIES[0][0]
    path = tmp_path / "src.h5"
    keras_h5.write(path, _state())
    return path


def test_truncated_every_10_percent(tmp_path: Path) -> None:
    data = _source_file(tmp_path).read_bytes()
    for tenth in range(10):
        cut = tmp_path / f"cut{tenth}.h5"
        cut.write_bytes(data[: len(data) * tenth // 10])
        with pytest.raises(CkptCompatError):
            keras_h5.read(cut)


def test_writer_failure_leaves_no_file(tmp_path: Path) -> None:
    state = _state().replace(model_config={"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "other"}}]}},
        optimizer=OptimizerState("Adam", {"learning_rate": 0.1}, iterations=1))
    with pytest.raises(CkptCompatError):
        keras_h5.write(tmp_path / "x.h5", state)
    assert list(tmp_path.iterdir()) == []


def _manifest_params() -> list[Any]:
    """:data:`ENTRIES`; generated-corpus files listed as known gaps of the resume table
    (tests/matrix/_table_gaps.py ``_KNOWN_GAPS``, with reasons) are expected to fail."""
    from tests.matrix._table_gaps import gap_marks

    return [pytest.param(path, entry, marks=gap_marks(entry["path"]), id=str(path.relative_to(path.parents[2])))
            for path, entry in ENTRIES]


@pytest.mark.parametrize("path,entry", _manifest_params())
def test_manifest_fixture(path: Path, entry: dict) -> None:
    state = keras_h5.read(path, **read_options(path, entry))
    for tensor in entry["tensors"]:
        if tensor["kind"] == "weight":
            array = state.weights[tensor["owner"]]
        else:
            array = state.optimizer.slots[tensor["owner"]][tensor["slot"]]
        assert str(array.dtype) == tensor["dtype"]
        assert list(array.shape) == list(tensor["shape"])
        assert sha256(array) == tensor["sha256"], tensor
    opt = entry.get("optimizer")
    if opt and entry.get("kind") != "weights":
        assert state.optimizer.class_name == opt["class"]
        assert state.optimizer.learning_rate == opt["learning_rate"]
        assert state.optimizer.iterations == opt["iterations"]
    n_slots = sum(1 for t in entry["tensors"] if t["kind"] == "slot")
    assert (state.optimizer.slot_count if state.optimizer else 0) == n_slots


def test_real_corpus_reads_or_typed_error(real_checkpoints: Path) -> None:
    rows = [line.split("\t") for line in (real_checkpoints / "MANIFEST.tsv").read_text().splitlines()[1:]]
    read = failed = 0
    for row in rows:
        if row[0] != "B":
            continue
        path = real_checkpoints / row[1].replace("/", "__") / row[3]
        if not path.exists():
            continue
        try:
            keras_h5.read(path)
            read += 1
        except CkptCompatError:
            failed += 1
    print(f"real corpus kind B: {read} read, {failed} typed errors")
    assert read + failed > 0
    assert read >= 50


def _train(keras, tmp_path: Path):
    inp = keras.Input((4,))
    x = keras.layers.Dense(5, name="d1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(2, name="d2")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(1)
    model.fit(rng.standard_normal((16, 4)), rng.standard_normal((16, 2)), epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.h5"
    model.save(path)
    return model, path


@pytest.mark.framework
def test_read_file_written_by_running_framework(keras, tmp_path: Path) -> None:
    model, path = _train(keras, tmp_path)
    state = keras_h5.read(path)
    expected = {"d1/kernel", "d1/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
                "d2/kernel", "d2/bias"}
    assert set(state.weights) == expected
    assert np.array_equal(state.weights["d1/kernel"], model.get_layer("d1").get_weights()[0])
    assert np.array_equal(state.weights["bn/moving_variance"], model.get_layer("bn").get_weights()[3])
    assert state.optimizer.class_name == "Adam"
    assert state.optimizer.iterations == 4
    assert state.optimizer.learning_rate == float(np.float32(0.01))
    assert set(state.optimizer.slots) == {"d1/kernel", "d1/bias", "bn/gamma", "bn/beta", "d2/kernel", "d2/bias"}
    assert all(set(per) == {"m", "v"} for per in state.optimizer.slots.values())
    assert state.progress.epoch is None


def test_keras30_slot_names_with_a_cell_scope_find_their_own_weight() -> None:
    """Keras 3.0 ``.h5`` optimizer weights keep the cell's scope
    (``z_convlstm1d_conv_lstm_cell_kernel_momentum``; 3.15: ``conv_lstm1d_cell``): with the scope
    dropped the layer's own weight is found, never a shorter key that merely ends the name."""
    from ckptcompat.formats.keras_h5._optimizer import _k3_key

    table = {"kernel": 1, "z_convlstm1d_kernel": 2, "z_convlstm1d_recurrent_kernel": 3, "z_lstm_kernel": 4}
    assert _k3_key(table, "z_convlstm1d_conv_lstm_cell_kernel") == "z_convlstm1d_kernel"
    assert _k3_key(table, "z_convlstm1d_conv_lstm1d_cell_recurrent_kernel") == "z_convlstm1d_recurrent_kernel"
    assert _k3_key(table, "z_lstm_lstm_cell_kernel") == "z_lstm_kernel"
    assert _k3_key(table, "outer_kernel") == "kernel"  # nothing better: the longest key it ends with
