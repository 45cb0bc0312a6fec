"""keras_zip reader/writer: manifest fixtures, files written by the running Keras, hostile input."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import (CkptCompatError, CorruptCheckpointError, IncompatibleStateError,
                               UnsafeCheckpointError, UnsupportedFormatError)
from ckptcompat.formats import keras_zip
from ckptcompat.state import TrainingState

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "real-checkpoints"


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _manifest() -> list[dict]:
    path = FIXTURES / "manifest.json"
    if not path.exists():
        return []
    return [f for f in json.loads(path.read_text())["fixtures"]
            if f.get("format") == "keras_zip" and (FIXTURES / f["path"]).exists()]


def _manifest_params() -> list[Any]:
    """:func:`_manifest`; the generated-corpus files of the resume table's known gaps
    (tests/matrix/_table_gaps.py ``_KNOWN_GAPS``, with reasons) are expected to fail."""
    from tests.matrix._table_gaps import gap_marks

    return [pytest.param(f, marks=gap_marks(f["path"]), id=f["path"]) for f in _manifest()]


def _optimizer_class_recorded(path: Path) -> bool:
    """Whether the file names its optimizer class (compile_config or the 3.x group attribute)."""
    with zipfile.ZipFile(path) as zf:
        compile_cfg = json.loads(zf.read("config.json")).get("compile_config") or {}
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
            named = "optimizer/vars" in h5 and h5["optimizer/vars"].attrs.get("name") is not None
    return bool(compile_cfg.get("optimizer")) or named


def _has_optimizer_vars(path: Path) -> bool:
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
            return "optimizer/vars" in h5 and len(h5["optimizer/vars"]) > 0
    with h5py.File(path, "r") as h5:
        return "optimizer/vars" in h5 and len(h5["optimizer/vars"]) > 0


@pytest.mark.parametrize("fx", _manifest_params())
def test_manifest_fixture(fx: dict) -> None:
    path = FIXTURES / fx["path"]
    assert keras_zip.sniff(path)
    state = keras_zip.read(path)
    weights = [t for t in fx["tensors"] if t["kind"] == "weight"]
    slots = [t for t in fx["tensors"] if t["kind"] == "slot"]
    if path.name.endswith(".weights.h5"):
        # no config: names are the class-derived group names, so compare the values
        assert Counter(_sha(a) for a in state.weights.values()) == Counter(t["sha256"] for t in weights)
        return
    assert set(state.weights) == {t["owner"] for t in weights}
    for t in weights:
        a = state.weights[t["owner"]]
        assert (_sha(a), str(a.dtype), list(a.shape)) == (t["sha256"], t["dtype"], t["shape"]), t["owner"]
    opt = fx.get("optimizer")
    if not opt:
        return
    assert state.optimizer is not None
    if not _optimizer_class_recorded(path):  # e.g. Keras 3.0 without compile_config optimizer
        assert state.optimizer.class_name == "Unknown" and state.optimizer.slots == {}
        assert state.optimizer.iterations == opt["iterations"]
        return
    assert state.optimizer.class_name == opt["class"]
    if opt.get("learning_rate") is not None:
        assert state.optimizer.learning_rate == opt["learning_rate"]
    if not _has_optimizer_vars(path):  # legacy optimizers: tf.keras saves no state in .keras
        assert state.optimizer.slots == {} and state.optimizer.iterations is None
        return
    assert state.optimizer.iterations == opt["iterations"]
    if state.optimizer.fits:  # no optimizer config, the variables show flags but not values (SGD
        kept = Counter(_sha(a) for a in state.optimizer.extra.values())  # momentum): kept by position
        assert not state.optimizer.slots and all(kept[t["sha256"]] for t in slots), state.optimizer.fits
        return
    assert state.optimizer.slot_count == len(slots)
    for t in slots:
        a = state.optimizer.slots[t["owner"]][t["slot"]]
        assert _sha(a) == t["sha256"], (t["owner"], t["slot"])


def test_reader_imports_no_framework() -> None:
    files = [FIXTURES / f["path"] for f in _manifest() if f["path"].endswith(".keras")][:3]
    if not files:
        pytest.skip("no keras_zip fixtures")
    code = ("import sys; from ckptcompat.formats import keras_zip\n"
            f"for p in {[str(f) for f in files]!r}: keras_zip.read(p)\n"
            "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# ---------------------------------------------------------------- written by the running Keras
def _model(keras):
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(5, name="d1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(2, name="d2")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse", metrics=["acc"])
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 6), dtype=np.float32), rng.random((8, 2), dtype=np.float32),
              batch_size=4, epochs=2, verbose=0)
    return model


@pytest.mark.framework
def test_read_file_written_by_running_keras(keras, tmp_path: Path) -> None:
    model = _model(keras)
    path = tmp_path / "m.keras"
    if getattr(keras, "__version__", "").startswith("2.12"):
        model.save(path, save_format="keras_v3")
    else:
        model.save(path)
    state = keras_zip.read(path)
    expected = {}
    for layer in model.layers:
        for w in layer.weights:
            expected[f"{layer.name}/{w.name.split('/')[-1].split(':')[0]}"] = np.asarray(w)
    assert set(state.weights) == set(expected)
    for name, value in expected.items():
        assert np.array_equal(state.weights[name], value) and state.weights[name].dtype == value.dtype
    assert state.optimizer.class_name == "Adam"
    assert state.optimizer.iterations == 4
    assert state.optimizer.learning_rate == pytest.approx(0.02, rel=1e-6)
    assert set(state.optimizer.slots) == {"d1/kernel", "d1/bias", "bn/gamma", "bn/beta", "d2/kernel", "d2/bias"}
    assert state.optimizer.slots["d1/kernel"]["m"].shape == (6, 5)
    assert state.metric_names == ("acc",)


# ---------------------------------------------------------------- writer (no framework needed)
@pytest.mark.parametrize("fx", [f for f in _manifest() if f["path"].endswith(".keras")][:6],
                         ids=lambda f: f["path"])
def test_write_read_back(fx: dict, tmp_path: Path) -> None:
    state = keras_zip.read(FIXTURES / fx["path"])
    for name in ("out.keras", "out.weights.h5"):
        keras_zip.write(tmp_path / name, state)
        back = keras_zip.read(tmp_path / name)
        if name.endswith(".keras"):
            assert list(back.weights) == list(state.weights)
            assert json.loads(zipfile.ZipFile(tmp_path / name).read("metadata.json"))["source_producer"][
                "versions"]["keras"] == state.producer.versions["keras"]
            if state.optimizer and state.optimizer.slots:
                assert back.optimizer.iterations == state.optimizer.iterations
                for var, per in state.optimizer.slots.items():
                    for slot, a in per.items():
                        assert np.array_equal(back.optimizer.slots[var][slot], a)
        assert sorted(_sha(a) for a in back.weights.values()) == sorted(_sha(a) for a in state.weights.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.keras", "out.weights.h5"]


@pytest.mark.parametrize("producer", ["keras231-tf115-py37", "tf24-py38", "tf215"])
def test_nadam_of_another_schedule_written_with_keras3_momentum_cache(producer: str, tmp_path: Path,
                                                                       caplog: Any) -> None:
    """Standalone Keras 2.3's Nadam keeps ``m_schedule`` = prod beta_1 * (1 - 0.5 * 0.96 ** (t * 0.004))
    (``schedule_decay``, a constructor argument Keras 3 refuses), OptimizerV2's (TF 2.4, TF 2.15's
    ``optimizers.legacy``) the same with ``decay``: the ``.keras`` holds Keras 3's product for the
    same steps (as ``resume`` computes it), neither argument, and says so."""
    from ckptcompat.formats import registry
    from ckptcompat.names.slot_meaning import nadam_u_product

    case = "opt_legacy_nadam" if producer == "tf215" else "opt_nadam"
    source = FIXTURES / producer / case / "model.h5"
    if not source.is_file():
        pytest.skip(f"no {producer} Nadam fixture")
    state = registry.read(source)
    assert state.optimizer.extra["u_product"] != nadam_u_product(4, 0.9, keras3=True)  # another formula's
    keras_zip.write(tmp_path / "out.keras", state)
    back = keras_zip.read(tmp_path / "out.keras")
    assert back.optimizer.iterations == 4
    assert np.array_equal(back.optimizer.extra["u_product"], nadam_u_product(4, 0.9, keras3=True))
    config = json.loads(zipfile.ZipFile(tmp_path / "out.keras").read("config.json"))
    assert not {"schedule_decay", "decay"} & set(config["compile_config"]["optimizer"]["config"])
    assert "has no Keras 3 equivalent" in caplog.text


def test_write_mismatch_leaves_nothing(tmp_path: Path) -> None:
    files = [f for f in _manifest() if f["path"].endswith(".keras")]
    if not files:
        pytest.skip("no fixtures")
    state = keras_zip.read(FIXTURES / files[0]["path"])
    name = next(iter(state.weights))
    bad = state.replace(weights={**state.weights, name: np.zeros((7, 7, 7), np.float32), "ghost/kernel": np.zeros(1)})
    bad = bad.replace(weights={k: v for k, v in bad.weights.items()})
    with pytest.raises((IncompatibleStateError,)) as info:
        keras_zip.write(tmp_path / "x.keras", bad)
    assert "ghost/kernel" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnsupportedFormatError):
        keras_zip.write(tmp_path / "x.keras", TrainingState(weights={"a/b": np.zeros(2)}))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- hostile / damaged input
def _a_keras_file() -> Path:
    files = [FIXTURES / f["path"] for f in _manifest() if f["path"].endswith(".keras")]
    if not files:
        pytest.skip("no fixtures")
    return files[0]


def test_truncated_every_tenth(tmp_path: Path) -> None:
    data = _a_keras_file().read_bytes()
    for i in range(10):
        p = tmp_path / f"t{i}.keras"
        p.write_bytes(data[: len(data) * i // 10])
        with pytest.raises((CorruptCheckpointError, UnsupportedFormatError)):
            keras_zip.read(p)
        assert keras_zip.sniff(p) in (True, False)


def test_zero_length_and_random_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "e.keras"
    empty.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError):
        keras_zip.read(empty)
    rnd = tmp_path / "r.keras"
    rnd.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(UnsupportedFormatError):
        keras_zip.read(rnd)
    assert not keras_zip.sniff(empty) and not keras_zip.sniff(rnd) and not keras_zip.sniff(tmp_path)


def test_zip_slip_member_refused(tmp_path: Path) -> None:
    p = tmp_path / "slip.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("../../evil.h5", b"x")
        zf.writestr("model.weights.h5", b"x")
    with pytest.raises(UnsafeCheckpointError):
        keras_zip.read(p)
    assert not (tmp_path.parent / "evil.h5").exists()


def test_zip_bomb_refused(tmp_path: Path) -> None:
    p = tmp_path / "bomb.keras"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"\0" * (64 << 20))
    assert p.stat().st_size < 1 << 20
    with pytest.raises(UnsafeCheckpointError):
        keras_zip.read(p)


def test_hdf5_shape_bomb_refused(tmp_path: Path) -> None:
    p = tmp_path / "bomb.weights.h5"
    with h5py.File(p, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", shape=(1 << 20, 1 << 20), dtype="f8", chunks=(64, 64))
    with pytest.raises(CorruptCheckpointError):
        keras_zip.read(p)


def test_legacy_h5_not_sniffed(tmp_path: Path) -> None:
    p = tmp_path / "legacy.h5"
    with h5py.File(p, "w") as h5:
        h5.attrs["layer_names"] = [b"dense"]
        h5.create_dataset("dense/dense/kernel:0", data=np.zeros((2, 2)))
    assert not keras_zip.sniff(p)
    with pytest.raises(UnsupportedFormatError):
        keras_zip.read(p)


def test_lambda_bytecode_is_data(tmp_path: Path) -> None:
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Lambda", "config": {"name": "lam", "function": ["4wEAAAAAAAAA", None, None]}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}}
    p = tmp_path / "lam.keras"
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.ones((3, 2), np.float32))
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(2, np.float32))
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("model.weights.h5", buf.getvalue())
    state = keras_zip.read(p)
    assert list(state.weights) == ["d/kernel", "d/bias"]
    assert state.model_config["config"]["layers"][0]["config"]["function"][0] == "4wEAAAAAAAAA"


def test_real_corpus_kind_c() -> None:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        pytest.skip("real corpus absent")
    rows = [r for r in csv.DictReader(manifest.open(), delimiter="\t") if r["kind"] == "C"]
    assert rows
    outcomes = {}
    for row in rows:
        path = CORPUS / row["repo"].replace("/", "__") / row["path"]
        try:
            state = keras_zip.read(path)
            outcomes[str(path)] = len(state.weights)
        except CkptCompatError as exc:
            outcomes[str(path)] = type(exc).__name__
    assert len(outcomes) == len(rows)
    assert sum(isinstance(v, int) and v > 0 for v in outcomes.values()) >= len(rows) - 2, outcomes


def test_config_less_rmsprop_names_the_configurations_that_fit() -> None:
    """A Keras 3.15 .keras saved after a .h5 of the same model keeps no optimizer config: RMSprop with momentum and centered
    RMSprop store the same variables. The reader keeps them by position and says which
    configurations fit (the resume table then resumes them into a model compiled by the
    caller, and refuses them without one)."""
    for case in ("opt_rmsprop_momentum", "opt_rmsprop_centered"):
        path = ROOT / "fixtures" / "tf221-keras3" / case / "model.keras"
        opt = keras_zip.read(path).optimizer
        assert opt is not None and opt.class_name == "RMSprop" and not opt.slots
        assert opt.fits == ("RMSprop(momentum>0)", "RMSprop(centered=True)")
        assert sorted(opt.extra) == [f"vars/{i}" for i in range(6)]
    plain = keras_zip.read(ROOT / "fixtures" / "tf221-keras3" / "opt_rmsprop" / "model.keras").optimizer
    assert plain is not None and plain.slots and plain.fits == ()


@pytest.mark.parametrize("target,producer", [("keras3", "tf24-py38"), ("h5", "keras231-tf115-py37"),
                                             ("h5", "tf24-py38")])
def test_keras2_decay_is_written_as_the_equal_schedule(target: str, producer: str, tmp_path: Path,
                                                       caplog: Any) -> None:
    """Keras 2's ``decay`` (set on the state of an Adam file) has no place in Keras 3's or tf.keras
    2.11+'s optimizer config: the ``.keras`` writer and the ``.h5`` writer for standalone Keras's
    optimizer put the equal ``InverseTimeDecay`` in place of the rate (the ``.keras`` writer dropped
    it silently, the ``.h5`` one refused); reading the file back gives that schedule and no fixed
    rate. An OptimizerV2 optimizer (TF 2.4) keeps it in its ``.h5``, as its release writes it."""
    import dataclasses

    from ckptcompat.formats import keras_h5, registry

    source = FIXTURES / producer / "opt_adam" / "model.h5"
    if not source.is_file():
        pytest.skip(f"no {producer} Adam fixture")
    state = registry.read(source)
    opt = state.optimizer
    config = {**opt.config, "config": {**opt.config["config"], "decay": 0.05}}
    state = state.replace(optimizer=dataclasses.replace(
        opt, config=config, hyperparameters={**opt.hyperparameters, "decay": 0.05}))
    out = tmp_path / ("out.keras" if target == "keras3" else "out.h5")
    (keras_zip if target == "keras3" else keras_h5).write(out, state)
    back = registry.read(out).optimizer
    assert back.iterations == opt.iterations
    if target == "h5" and producer == "tf24-py38":
        assert back.learning_rate == opt.learning_rate and back.hyperparameters["decay"] == pytest.approx(0.05)
        return
    assert back.learning_rate is None
    schedule = back.hyperparameters["learning_rate_schedule"]
    assert schedule["class_name"] == "InverseTimeDecay"
    assert schedule["config"]["decay_rate"] == 0.05 and schedule["config"]["decay_steps"] == 1
    assert np.float32(schedule["config"]["initial_learning_rate"]) == np.float32(opt.learning_rate)
    if target == "keras3":
        assert "decay=0.05 is written as learning_rate=InverseTimeDecay" in caplog.text


def _scheduled_keras2_state(decay: float = 0.0) -> Any:
    """TF 2.4's Adam file with a tf.keras ``ExponentialDecay`` in place of its rate (as a
    Keras 2 config holds one: no ``module``, ``"name": None``)."""
    import dataclasses

    from ckptcompat.formats import registry

    source = FIXTURES / "tf24-py38" / "opt_adam" / "model.h5"
    if not source.is_file():
        pytest.skip("no TF 2.4 Adam fixture")
    state = registry.read(source)
    schedule = {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5, "staircase": False, "name": None}}
    opt = state.optimizer
    return state.replace(optimizer=dataclasses.replace(opt, hyperparameters={
        **opt.hyperparameters, "learning_rate": None, "learning_rate_schedule": schedule, "decay": decay}))


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_keras2_schedule_is_written_with_keras3_registration(decay: float, tmp_path: Path, caplog: Any) -> None:
    """A Keras 2 schedule carries no ``module`` / ``registered_name``; Keras 3's ``load_model``
    cannot locate the class without them: the ``.keras`` writer adds them (and drops the ``None``
    name, which fails Keras 3's first step). OptimizerV2's ``decay`` on top of a schedule has no
    Keras 3 form: written as the schedule alone, said (it was dropped silently)."""
    keras_zip.write(tmp_path / "out.keras", _scheduled_keras2_state(decay))
    assert ("decay=0.05 on top of a learning-rate schedule cannot be written" in caplog.text) == bool(decay)
    config = json.loads(zipfile.ZipFile(tmp_path / "out.keras").read("config.json"))
    rate = config["compile_config"]["optimizer"]["config"]["learning_rate"]
    assert rate["module"] == "keras.optimizers.schedules" and rate["registered_name"] is None
    assert rate["class_name"] == "ExponentialDecay" and "name" not in rate["config"]


@pytest.mark.framework
def test_keras2_schedule_written_to_keras3_loads_natively(keras: Any, tmp_path: Path) -> None:
    """The same file through Keras 3's own ``load_model``: the schedule comes back and gives the
    rate at the file's step."""
    if not getattr(keras, "__version__", "2").startswith("3"):
        pytest.skip("native .keras loading with a schedule is Keras 3's")
    keras_zip.write(tmp_path / "out.keras", _scheduled_keras2_state())
    model = keras.models.load_model(tmp_path / "out.keras")
    schedule = model.optimizer._learning_rate
    assert type(schedule).__name__ == "ExponentialDecay"
    assert int(model.optimizer.iterations.numpy() if hasattr(model.optimizer.iterations, "numpy")
               else model.optimizer.iterations) == 4
    assert float(schedule(4)) == pytest.approx(0.01 * 0.5 ** 2, rel=1e-6)
