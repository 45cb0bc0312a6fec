"""resume() and Checkpoint: store round trip, errors, overrides (tiny models)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ckptcompat
from ckptcompat.errors import CheckpointNotFoundError, IncompatibleStateError


def test_import_is_light() -> None:
    code = ("import sys, ckptcompat, ckptcompat.callbacks, ckptcompat.resuming; "
            "assert callable(ckptcompat.resume); "
            "assert not {'tensorflow', 'keras', 'tf_keras', 'h5py'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_empty_folder_says_what_was_looked_for(tmp_path) -> None:
    with pytest.raises(CheckpointNotFoundError) as info:
        ckptcompat.resume(tmp_path)
    assert "looked for" in str(info.value) and ".keras" in str(info.value)


def _train(keras, directory, epochs, data=None, initial_epoch=0, model=None):
    from ckptcompat.callbacks import Checkpoint

    if model is None:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(data, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0,
              callbacks=[data.tracker(), Checkpoint(directory, data=data, keep_last=2)])
    return model


@pytest.mark.framework
def test_store_round_trip_and_continue(keras, tmp_path) -> None:
    from ckptcompat import runtime
    from ckptcompat.data import ArrayData

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4), dtype=np.float32), rng.random((40, 1), dtype=np.float32)
    model = _train(keras, tmp_path, 2, ArrayData(x, y, batch_size=8, seed=1))
    data = ArrayData(x, y, batch_size=8, seed=1)
    run = ckptcompat.resume(tmp_path, data=data)
    assert (run.initial_epoch, run.initial_step, run.global_step) == (2, 0, 10)
    assert run.fit_kwargs() == {"initial_epoch": 2, "shuffle": False}
    assert len(run.history["loss"]) == 2 and run.history["mean_absolute_error"] == run.history["mae"]
    assert run.source.epoch_source == "manifest"
    a, b = runtime.capture(model), runtime.capture(run.model)
    for name, value in a.weights.items():
        assert np.array_equal(value, b.weights[name]) and value.dtype == b.weights[name].dtype
    for var, per in a.optimizer.slots.items():
        for slot, value in per.items():
            assert np.array_equal(value, b.optimizer.slots[var][slot])
    assert b.optimizer.iterations == 10
    _train(keras, tmp_path, 3, data, initial_epoch=run.initial_epoch, model=run.model)
    again = ckptcompat.resume(tmp_path)
    assert again.initial_epoch == 3 and len(again.history["loss"]) == 3

    old = runtime.capture(again.model).optimizer.learning_rate
    lr = ckptcompat.resume(tmp_path, learning_rate=1e-3)
    assert np.float32(runtime.capture(lr.model).optimizer.learning_rate) == np.float32(1e-3) != old

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    other.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    with pytest.raises(IncompatibleStateError) as info:
        ckptcompat.resume(tmp_path, model=other)
    assert len(info.value.mismatches) >= 2
    partial = ckptcompat.resume(tmp_path, model=other, partial=True)
    assert partial.report.skipped


@pytest.mark.framework
def test_damaged_newest_checkpoint_falls_back_to_previous(keras, tmp_path, caplog) -> None:
    """Any single file of the newest checkpoint truncated or with one byte flipped -> the previous one."""
    import json
    import shutil

    from ckptcompat import runtime
    from ckptcompat.data import ArrayData

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32)
    golden = tmp_path / "golden"
    _train(keras, golden, 2, ArrayData(x, y, batch_size=8, seed=1))
    entries = json.loads((golden / "ckptcompat.json").read_text())["checkpoints"]
    assert [e["epoch"] for e in entries] == [1, 2]
    previous = runtime.capture(ckptcompat.resume(golden / entries[0]["name"]).model)
    newest_files = sorted(entries[1]["files"])
    assert len(newest_files) >= 2  # the model file and state.json
    for damage in ("flip", "truncate"):
        for name in newest_files:
            store = tmp_path / f"{damage}-{name.replace('/', '_')}"
            shutil.copytree(golden, store)
            victim = store / entries[1]["name"] / name
            raw = bytearray(victim.read_bytes())
            if damage == "flip":
                raw[len(raw) // 2] ^= 0x01
            else:
                raw = raw[: len(raw) // 2]
            victim.write_bytes(bytes(raw))
            caplog.clear()
            run = ckptcompat.resume(store)
            assert run.initial_epoch == 1, (damage, name)
            got = runtime.capture(run.model)
            for var, value in previous.weights.items():
                assert np.array_equal(got.weights[var], value), (damage, name, var)
            assert got.optimizer.iterations == previous.optimizer.iterations == 2
            assert any("manifest" in r.getMessage() or "damaged" in r.getMessage() for r in caplog.records)
