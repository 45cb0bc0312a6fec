"""Checkpoint continues by itself when the same script runs again; signals; restore=False;
learning_rate=. In-process (a new model per "run"); the process-level kills and signals are in
tests/matrix/test_checkpoint_rerun.py."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _cb_helpers import array_data, deterministic
from _frameworks import no_fit_start_hook



#: Keras 3.0.x and tf.keras < 2.4 bind fit's first epoch before any callback runs (no
#: ``model._initial_epoch`` / ``_training_state`` hook): there the rerun raises the typed
#: data-position error asking for fit(initial_epoch=)
needs_fit_hook = pytest.mark.skipif(
    no_fit_start_hook(),
    reason="Keras 3.0 and tf.keras < 2.4 have no hook to start fit at a later epoch from a callback "
           "(docs/callbacks.md)")
#: the whole module: on Keras 3.0 a signal test did not finish (second Ctrl+C inside its fit loop)
pytestmark = [pytest.mark.framework, needs_fit_hook]

N, BATCH = 40, 8  # 5 batches per epoch


def _data() -> Any:
    return array_data(N, BATCH)


def _model(keras: Any) -> Any:
    deterministic(keras, 1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _variables(obj: Any) -> list[Any]:
    value = obj.variables
    return list(value() if callable(value) else value)


def _tensors(model: Any) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in [*model.weights, *_variables(model.optimizer)]]


def _same(a: Any, b: Any) -> bool:
    x, y = _tensors(a), _tensors(b)
    return len(x) == len(y) and all(p.dtype == q.dtype and np.array_equal(p, q) for p, q in zip(x, y))


def _iterations(model: Any) -> int:
    return int(np.asarray(model.optimizer.iterations))


def _run(keras: Any, directory: Path, epochs: int, *extra: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
    """One run of the unchanged "script": a new model, a new data object, Checkpoint last."""
    from ckptcompat.callbacks import Checkpoint

    data, model = _data(), _model(keras)
    ckpt = Checkpoint(directory, data=data, **kwargs)
    history = model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[*extra, ckpt])
    return model, history, ckpt


def _plain(keras: Any, epochs: int, *, lr_after: tuple[int, float] | None = None) -> Any:
    """The uninterrupted run without Checkpoint (optionally the rate changed after an epoch)."""
    data, model = _data(), _model(keras)
    first = lr_after[0] if lr_after else epochs
    model.fit(data, epochs=first, shuffle=False, verbose=0, callbacks=[data.tracker()])
    if lr_after:
        from ckptcompat import runtime

        runtime.set_learning_rate(model, lr_after[1])
        model.fit(data, epochs=epochs, initial_epoch=first, shuffle=False, verbose=0,
                  callbacks=[data.tracker()])
    return model


def _entries(directory: Path) -> list[tuple[int, int, int | None]]:
    from ckptcompat.store import CheckpointStore

    return [(e.epoch, e.step, e.global_step) for e in CheckpointStore(directory).checkpoints()]


@needs_fit_hook
def test_a_rerun_continues_and_a_finished_run_trains_nothing(keras: Any, tmp_path: Path) -> None:
    first, history, _ = _run(keras, tmp_path, 2, save_freq=3)
    assert _iterations(first) == 10 and len(history.history["loss"]) == 2
    second, history, _ = _run(keras, tmp_path, 4, save_freq=3)
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    assert _iterations(second) == 20 and _same(second, _plain(keras, 4))
    third, history, _ = _run(keras, tmp_path, 4, save_freq=3)
    assert not history.history.get("loss") and _iterations(third) == 20
    assert _same(third, second)
    assert _entries(tmp_path)[-1] == (4, 0, 20)


@needs_fit_hook
def test_a_rerun_after_an_early_stop_trains_nothing(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.callbacks import EarlyStopping

    def stopper() -> Any:  # the loss never improves by 1e9: stops at the end of epoch 2
        return EarlyStopping(monitor="loss", min_delta=1e9, patience=1)

    first_stop = stopper()
    first, history, _ = _run(keras, tmp_path, 10, first_stop)
    assert len(history.history["loss"]) == 2 and _iterations(first) == 10
    again = stopper()
    second, history, _ = _run(keras, tmp_path, 10, again)
    assert not history.history.get("loss") and _iterations(second) == 10
    assert again.stopped_epoch == first_stop.stopped_epoch == 1
    assert _entries(tmp_path)[-1] == (2, 0, 10)


def test_restore_false_starts_over(keras: Any, tmp_path: Path) -> None:
    _run(keras, tmp_path, 2)
    fresh, history, _ = _run(keras, tmp_path, 3, restore=False)
    assert len(history.history["loss"]) == 3 and _iterations(fresh) == 15
    assert _same(fresh, _plain(keras, 3))


@needs_fit_hook
def test_learning_rate_override_on_restore(keras: Any, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from ckptcompat import runtime

    _run(keras, tmp_path, 2)
    with caplog.at_level(logging.INFO, logger="ckptcompat"):
        model, history, _ = _run(keras, tmp_path, 4, learning_rate=1e-3)
    assert len(history.history["loss"]) == 2 and _iterations(model) == 20
    assert runtime.learning_rate(model) == pytest.approx(1e-3)
    assert any("learning rate overridden" in r.getMessage() for r in caplog.records)
    assert _same(model, _plain(keras, 4, lr_after=(2, 1e-3)))


def _sender(keras: Any, at: int, *signums: int, seen: list[Any] | None = None) -> Any:
    class Send(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if seen is not None:
                seen.append(signal.getsignal(signal.SIGTERM))
            if _iterations(self.model) == at:
                for signum in signums:
                    os.kill(os.getpid(), signum)

    return Send()


@needs_fit_hook
def test_sigterm_mid_epoch_commits_that_batch_and_stops(keras: Any, tmp_path: Path) -> None:
    before, seen = signal.getsignal(signal.SIGTERM), []
    model, history, ckpt = _run(keras, tmp_path, 4, _sender(keras, 7, signal.SIGTERM, seen=seen),
                                on_signal="stop")
    assert ckpt.interrupted == signal.SIGTERM and model.stop_training
    assert _iterations(model) == 7  # no batch after the signal
    assert _entries(tmp_path)[-1] == (1, 2, 7)
    assert seen[0] != before and signal.getsignal(signal.SIGTERM) == before
    resumed, history, _ = _run(keras, tmp_path, 4)
    assert _same(resumed, _plain(keras, 4))


def test_on_signal_save_exits_after_fit(keras: Any, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exc:
        _run(keras, tmp_path, 4, _sender(keras, 3, signal.SIGINT))
    assert exc.value.code == 130
    assert _entries(tmp_path)[-1] == (0, 3, 3)
    assert signal.getsignal(signal.SIGINT) == before


def test_a_second_ctrl_c_stops_at_once(keras: Any, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _run(keras, tmp_path, 4, _sender(keras, 3, signal.SIGINT, signal.SIGINT), on_signal="stop")
    assert signal.getsignal(signal.SIGINT) == before
    assert not (tmp_path / "ckptcompat.json").exists()  # stopped before any commit


def test_handlers_go_back_when_fit_raises(keras: Any, tmp_path: Path) -> None:
    """Keras calls no on_train_end when fit raises: the first signal after it finds no fit on
    the stack, puts the previous handlers back and is handled by them."""
    got: list[int] = []

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 1:
                raise ValueError("boom")

    def mine(signum: int, frame: Any) -> None:
        got.append(signum)

    outer = signal.signal(signal.SIGTERM, mine)
    # Python's own Ctrl+C handler, whatever this process inherited (a job started in the
    # background of a shell ignores SIGINT)
    inherited_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before_int = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(ValueError, match="boom"):
            _run(keras, tmp_path, 2, Boom())
        stale = signal.getsignal(signal.SIGTERM)  # still ckptcompat's: no on_train_end came
        assert stale is not mine and stale == signal.getsignal(signal.SIGINT) != before_int
        os.kill(os.getpid(), signal.SIGTERM)
        assert got == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == before_int
        # a later fit of the same kind installs and removes cleanly again
        _run(keras, tmp_path / "again", 1)
        assert signal.getsignal(signal.SIGINT) == before_int
    finally:
        signal.signal(signal.SIGTERM, outer)
        signal.signal(signal.SIGINT, inherited_int)


@pytest.mark.parametrize("where", ["off", "thread"])
def test_signals_left_alone_when_off_or_not_in_the_main_thread(keras: Any, tmp_path: Path,
                                                                where: str) -> None:
    before, seen, done = signal.getsignal(signal.SIGTERM), [], []

    def train() -> None:
        done.append(_run(keras, tmp_path, 1, _sender(keras, 0, seen=seen),
                         on_signal=None if where == "off" else "save"))

    if where == "thread":
        worker = threading.Thread(target=train)
        worker.start()
        worker.join()
    else:
        train()
    assert done and len(seen) == 5 and all(h == before for h in seen)


def test_bad_arguments_are_typed(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.callbacks import Checkpoint
    from ckptcompat.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        Checkpoint(tmp_path, on_signal="later")
    with pytest.raises(InvalidArgumentError):
        Checkpoint(tmp_path, learning_rate=-1.0)
