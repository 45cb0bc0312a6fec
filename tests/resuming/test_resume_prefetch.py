"""resume(path) without model=: tensors are read on a second thread while the model is rebuilt."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from ckptcompat.formats._headers import LazyTensor

pytestmark = pytest.mark.framework


def _saved(keras: Any, path: Path) -> Any:
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(8)])  # kernels above the eagerly read 64 elements
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = np.random.default_rng(0).random((32, 16), dtype=np.float32)
    model.fit(x, x[:, :8], batch_size=8, epochs=1, verbose=0)
    model.save(str(path))
    return model


def _values(obj: Any) -> list[np.ndarray]:
    value = obj.variables
    return [np.asarray(v.numpy()) for v in (value() if callable(value) else value)]


def _same(live: Any, run: Any) -> None:
    assert all(np.array_equal(a, b) for a, b in zip(_values(live), _values(run.model)))
    live_opt, opt = _values(live.optimizer), _values(run.model.optimizer)
    assert len(live_opt) == len(opt) and all(np.array_equal(a, b) for a, b in zip(live_opt, opt))


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_tensors_are_read_on_another_thread_than_the_rebuild(keras: Any, tmp_path: Path, name: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if name.endswith(".keras") and not hasattr(keras, "saving"):
        pytest.skip("this Keras writes no .keras")
    live = _saved(keras, tmp_path / name)
    threads: list[str] = []
    load = LazyTensor.load

    def recording(self: LazyTensor) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return load(self)

    monkeypatch.setattr(LazyTensor, "load", recording)
    run = ckptcompat.resume(tmp_path / name)
    assert threads and set(threads) == {"ckptcompat-prefetch"}  # kernels + their Adam slots
    _same(live, run)
    assert not [t for t in threading.enumerate() if t.name == "ckptcompat-prefetch"]


def test_a_failed_read_ahead_reads_the_checkpoint_again(keras: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    live = _saved(keras, tmp_path / "model.h5")
    load = LazyTensor.load
    failed: list[int] = []

    def failing_once(self: LazyTensor) -> np.ndarray:
        if not failed:
            failed.append(1)
            raise OSError("injected read failure")
        return load(self)

    monkeypatch.setattr(LazyTensor, "load", failing_once)
    with caplog.at_level(logging.INFO, logger="ckptcompat.resuming.prefetch"):
        run = ckptcompat.resume(tmp_path / "model.h5")
    assert failed and "reading the checkpoint again" in caplog.text
    _same(live, run)


def test_a_failed_rebuild_still_waits_for_the_reads(keras: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptcompat.errors import CkptCompatError
    from ckptcompat.resuming import build

    _saved(keras, tmp_path / "model.h5")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("injected rebuild failure")

    monkeypatch.setattr(build, "build_model", broken)
    with pytest.raises(CkptCompatError, match="injected rebuild failure"):
        ckptcompat.resume(tmp_path / "model.h5")
    assert not [t for t in threading.enumerate() if t.name == "ckptcompat-prefetch"]


def test_an_interrupted_wait_stops_the_reads_before_the_files_close(keras: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _saved(keras, tmp_path / "model.h5")
    join = threading.Thread.join
    interrupted: list[int] = []

    def interrupted_once(self: threading.Thread, timeout: Any = None) -> None:
        if self.name == "ckptcompat-prefetch" and not interrupted:
            interrupted.append(1)
            raise KeyboardInterrupt
        join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        ckptcompat.resume(tmp_path / "model.h5")
    assert interrupted and not [t for t in threading.enumerate() if t.name == "ckptcompat-prefetch"]
