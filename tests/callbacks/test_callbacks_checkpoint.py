"""Checkpoint callback: saving only reads the model; state.json; save_freq in batches; retention; async."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _cb_helpers import array_data, seed_all
from ckptcompat import runtime

pytestmark = pytest.mark.framework

N, BATCH = 40, 8  # 5 batches per epoch


def _data() -> Any:
    return array_data(N, BATCH)


def _model(keras: Any) -> Any:
    seed_all(keras, 1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def _variables(obj: Any) -> list[Any]:
    value = obj.variables
    return list(value() if callable(value) else value)


def _fingerprint(model: Any) -> tuple[Any, ...]:
    opt = model.optimizer
    tensors = tuple(hashlib.sha256(np.ascontiguousarray(np.asarray(v.numpy())).tobytes()).hexdigest()
                    for v in [*model.weights, *_variables(opt)])
    compiled = (getattr(model, "loss", None), repr(getattr(model, "compiled_loss", None) and
                                                   type(model.compiled_loss).__name__))
    return (id(opt), int(np.asarray(opt.iterations)), tensors, compiled,
            tuple(v.name for v in _variables(opt)))


def _probe(keras: Any, record: list[Any]) -> Any:
    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            record.append(_fingerprint(self.model))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            record.append(_fingerprint(self.model))

    return Probe()


def _fit(keras: Any, directory: Path, epochs: int = 2, **kwargs: Any) -> tuple[Any, list, list]:
    from ckptcompat.callbacks import Checkpoint

    data, model = _data(), _model(keras)
    before: list[Any] = []
    after: list[Any] = []
    ckpt = Checkpoint(directory, data=data, **kwargs)
    model.fit(data, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[data.tracker(), _probe(keras, before), ckpt, _probe(keras, after)])
    return model, before, after


def _entries(directory: Path) -> list[tuple[int, int, int | None]]:
    from ckptcompat.store import CheckpointStore

    return [(e.epoch, e.step, e.global_step) for e in CheckpointStore(directory).checkpoints()]


def test_saving_never_changes_the_live_model(keras: Any, tmp_path: Path) -> None:
    model, before, after = _fit(keras, tmp_path / "s", save_freq=1)
    assert len(before) == len(after) == 2 * (5 + 1)
    assert before == after  # weights, optimizer variables, iterations, identity, compile
    assert len(_entries(tmp_path / "s")) == 10  # a save at every step: all of them compared
    plain = _model(keras)
    data = _data()
    plain.fit(data, epochs=2, shuffle=False, verbose=0, callbacks=[data.tracker()])
    assert _fingerprint(plain)[1:3] == _fingerprint(model)[1:3]  # same training without saves


def test_state_json_contents(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.formats import sidecar
    from ckptcompat.store import CheckpointStore

    _fit(keras, tmp_path, epochs=3)
    assert _entries(tmp_path) == [(1, 0, 5), (2, 0, 10), (3, 0, 15)]
    entry = CheckpointStore(tmp_path).latest_good()
    assert sorted(p.name for p in entry.path.iterdir()) == sorted(
        ["state.json", "model.keras" if runtime.detect() == "keras3" else "model.h5"])
    state = sidecar.read(entry.path / "state.json")
    assert (state.progress.epoch, state.progress.step, state.progress.global_step) == (3, 0, 15)
    assert sorted(state.history) == ["loss", "mae"] and all(len(v) == 3 for v in state.history.values())
    own = state.callbacks["ckptcompat.checkpoint"]
    assert own["saves"] == 3 and own["training_config"]["loss"] == "mse"
    data = state.rng["data"]
    assert (data["epoch"], data["position"], data["batches_per_epoch"], data["seed"]) == (3, 0, 5, 2)
    assert {"python", "numpy"} <= set(state.rng)
    assert entry.metrics["loss"] == state.history["loss"][-1]


def test_save_freq_in_batches_records_mid_epoch_positions(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.formats import sidecar
    from ckptcompat.store import CheckpointStore

    _fit(keras, tmp_path, epochs=2, save_freq=3)
    # every 3rd step, plus the end of the last epoch (step 10 is not a multiple of 3)
    assert _entries(tmp_path) == [(0, 3, 3), (1, 1, 6), (1, 4, 9), (2, 0, 10)]
    for entry in CheckpointStore(tmp_path).checkpoints():
        data = sidecar.read(entry.path / "state.json").rng["data"]
        assert (data["epoch"], data["position"]) == (entry.epoch, entry.step)
    final = sidecar.read(CheckpointStore(tmp_path).latest_good().path / "state.json")
    assert all(len(values) == 2 for values in final.history.values())  # complete history


def test_save_freq_in_batches_saves_the_epoch_where_training_stops(keras: Any, tmp_path: Path) -> None:
    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.model.stop_training = True

    from ckptcompat.callbacks import Checkpoint

    data, model = _data(), _model(keras)
    model.fit(data, epochs=5, shuffle=False, verbose=0,
              callbacks=[data.tracker(), StopAfterFirstEpoch(), Checkpoint(tmp_path, save_freq=3, data=data)])
    assert _entries(tmp_path) == [(0, 3, 3), (1, 0, 5)]


def test_retention_keep_last_and_keep_best(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.errors import InvalidArgumentError

    _fit(keras, tmp_path / "last", epochs=4, keep_last=2)
    assert _entries(tmp_path / "last") == [(3, 0, 15), (4, 0, 20)]
    _fit(keras, tmp_path / "one", epochs=3, keep_last=1)
    assert _entries(tmp_path / "one") == [(3, 0, 15)]
    from ckptcompat.callbacks import Checkpoint

    with pytest.raises(InvalidArgumentError):
        Checkpoint(tmp_path / "x", keep_best=1)
    with pytest.raises(InvalidArgumentError):
        Checkpoint(tmp_path / "x", save_freq=0)


def test_async_save_writes_the_same_checkpoints(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.formats import sidecar
    from ckptcompat.store import CheckpointStore

    sync_model, _, _ = _fit(keras, tmp_path / "sync", epochs=2, save_freq=2)
    async_model, before, after = _fit(keras, tmp_path / "async", epochs=2, save_freq=2,
                                      async_save=True)
    assert before == after
    assert _entries(tmp_path / "async") == _entries(tmp_path / "sync") == [
        (0, 2, 2), (0, 4, 4), (1, 1, 6), (1, 3, 8), (2, 0, 10)]
    assert not CheckpointStore(tmp_path / "async").verify().problems
    for a, b in zip(CheckpointStore(tmp_path / "sync").checkpoints(),
                    CheckpointStore(tmp_path / "async").checkpoints()):
        sa, sb = sidecar.read(a.path / "state.json"), sidecar.read(b.path / "state.json")
        assert sa.progress == sb.progress and sa.history == sb.history
        assert sa.rng["data"] == sb.rng["data"]
    import ckptcompat

    run = ckptcompat.resume(tmp_path / "async")
    live = [np.asarray(v.numpy()) for v in async_model.weights]
    for value, restored in zip(live, run.model.weights):
        assert np.array_equal(value, np.asarray(restored.numpy()))


def test_unreplayable_order_is_logged_once(keras: Any, tmp_path: Path, monkeypatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    import ckptcompat
    from ckptcompat.data import rng as _rng
    from ckptcompat.callbacks import Checkpoint

    monkeypatch.setattr(_rng, "_NOTED", [])
    model = _model(keras)
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        for _ in range(2):
            model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0,
                      callbacks=[Checkpoint(tmp_path)])
        ckptcompat.resume(tmp_path)
    hits = [r for r in caplog.records if "data order cannot be replayed" in r.getMessage()]
    assert len(hits) == 1


def test_default_saves_synchronously_below_the_threshold(keras: Any, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    from ckptcompat.callbacks import Checkpoint

    data, model = _data(), _model(keras)
    ckpt = Checkpoint(tmp_path / "s", data=data, save_freq=2)
    assert ckpt.async_save is None and ckpt.saves_async is None
    with caplog.at_level(logging.INFO, logger="ckptcompat.callbacks._async_choice"):
        model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[data.tracker(), ckpt])
    assert ckpt.saves_async is False and "written synchronously" in caplog.text
    assert _entries(tmp_path / "s") == [(0, 2, 2), (0, 4, 4), (1, 0, 5)]


def test_default_saves_asynchronously_from_the_threshold(keras: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptcompat.callbacks import _async_choice
    from ckptcompat.callbacks.async_writer import AsyncWriter

    submitted: list[int] = []
    submit = AsyncWriter.submit

    def counting(self: Any, job: Any) -> None:
        submitted.append(1)
        submit(self, job)

    monkeypatch.setattr(AsyncWriter, "submit", counting)
    monkeypatch.setattr(_async_choice, "ASYNC_FROM_BYTES", _async_choice.weight_bytes(_model(keras)))
    _fit(keras, tmp_path / "sync", epochs=2, save_freq=2, async_save=False)
    assert not submitted
    model, before, after = _fit(keras, tmp_path / "default", epochs=2, save_freq=2)
    assert len(submitted) == 5 and before == after
    assert _entries(tmp_path / "default") == _entries(tmp_path / "sync")
    import ckptcompat

    run = ckptcompat.resume(tmp_path / "default")
    for value, restored in zip(model.weights, run.model.weights):
        assert np.array_equal(np.asarray(value.numpy()), np.asarray(restored.numpy()))


def test_multi_worker_saves_synchronously() -> None:
    from ckptcompat.callbacks._async_choice import ASYNC_FROM_BYTES, async_pays

    class Big:
        weights = [type("V", (), {"shape": (ASYNC_FROM_BYTES // 4,), "dtype": "float32"})()]

    assert async_pays(Big(), distributed=False) is True
    assert async_pays(Big(), distributed=True) is False
