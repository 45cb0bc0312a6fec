"""State round trip: train k epochs, state -> JSON -> NEW callbacks on a NEW model -> continue.

The resumed run must end exactly like an uninterrupted one: stop epoch, best value, best
weights (bitwise), learning-rate drops, checkpoint files and the monitor's history.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _cb_helpers import json_round_trip, tiny_data, tiny_model, weights_equal

pytestmark = pytest.mark.framework

EPOCHS = 40


def _callbacks(folder: Path, iteration: bool, store: bool = True) -> dict[str, Any]:
    from ckptcompat import callbacks as cb

    _, _, xv, yv = tiny_data()
    if iteration:
        stopper = cb.EarlyStopping(monitor="val_accuracy", mode="max", evaluate_every_steps=2,
                                   patience_steps=24, validation_data=(xv, yv), restore_best_weights=True,
                                   store=folder / "best" if store else None)
    else:
        stopper = cb.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True,
                                   store=folder / "best" if store else None)
    return {
        "checkpoint": cb.ModelCheckpoint(str(folder / "mc-{epoch:02d}-{val_loss:.4f}.h5"),
                                         monitor="val_loss", save_best_only=True),
        "stopper": stopper,
        "reduce": cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=0.0),
        "monitor": cb.TrainingMonitor(json_path=folder / "history.json", monitor="val_accuracy"),
    }


def _snapshot(keras: Any, at_epoch: int, out: dict[str, Any]) -> Any:
    """A callback capturing model + optimizer + every callback state at the end of ``at_epoch``."""
    from ckptcompat import runtime
    from ckptcompat.callbacks._state import collect_states

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == at_epoch:
                out["state"] = runtime.capture(self.model)
                out["callbacks"] = json_round_trip(collect_states(self.model))

    return Snapshot()


def _fit(model: Any, callbacks: list[Any], **kwargs: Any) -> None:
    x, y, xv, yv = tiny_data(noise=0.45)
    model.fit(x, y, validation_data=(xv, yv), batch_size=16, shuffle=False, verbose=0,
              callbacks=callbacks, **kwargs)


def _outcome(folder: Path, cbs: dict[str, Any], model: Any) -> dict[str, Any]:
    stopper = cbs["stopper"]
    return {
        "stopped_epoch": stopper.stopped_epoch, "stopped_step": stopper.stopped_step,
        "best": stopper.best, "best_epoch": stopper.best_epoch, "best_step": stopper.best_step,
        "drops": cbs["reduce"].drops, "checkpoint_best": cbs["checkpoint"].best,
        "files": sorted(n for n in os.listdir(folder) if n.startswith("mc-")),
        "history": json.loads((folder / "history.json").read_text()),
        "weights": [np.array(w) for w in model.get_weights()],
    }


@pytest.mark.parametrize(("iteration", "k"), [(False, 3), (False, 7), (True, 2)])
def test_resumed_callbacks_end_like_an_uninterrupted_run(keras: Any, tmp_path: Path, iteration: bool,
                                                        k: int) -> None:
    from ckptcompat import runtime
    from ckptcompat.callbacks._state import offer_states

    lr = 0.5
    # uninterrupted
    ref_dir = tmp_path / "ref"
    model = tiny_model(keras, metrics=["accuracy"], lr=lr)
    ref_cbs = _callbacks(ref_dir, iteration)
    _fit(model, list(ref_cbs.values()), epochs=EPOCHS)
    ref = _outcome(ref_dir, ref_cbs, model)
    assert 0 < ref["stopped_epoch"] < EPOCHS - 1, "the reference run must stop early"
    assert ref["stopped_epoch"] > k, "the interruption must come before the stop"
    assert ref["drops"], "the reference run must lower the learning rate"
    # interrupted after k epochs: only the state captured at that epoch end survives
    run_dir = tmp_path / "run"
    snap: dict[str, Any] = {}
    first = tiny_model(keras, metrics=["accuracy"], lr=lr)
    _fit(first, [*_callbacks(run_dir, iteration).values(), _snapshot(keras, k - 1, snap)], epochs=k)
    del first
    # a new process: new model, new callbacks (no store= given: it comes from the state)
    model = tiny_model(keras, metrics=["accuracy"], lr=lr)
    runtime.apply(snap["state"], model)
    offer_states(model, snap["callbacks"])
    cbs = _callbacks(run_dir, iteration, store=False)
    _fit(model, list(cbs.values()), epochs=EPOCHS, initial_epoch=k)
    got = _outcome(run_dir, cbs, model)
    assert cbs["stopper"].store == run_dir / "best"
    for key in ("stopped_epoch", "stopped_step", "best", "best_epoch", "best_step", "drops",
                "checkpoint_best", "files", "history"):
        assert got[key] == ref[key], key
    assert weights_equal(got["weights"], ref["weights"])


def test_load_state_dict_before_fit_is_kept(keras: Any, tmp_path: Path) -> None:
    from ckptcompat import callbacks as cb

    stopper = cb.EarlyStopping(monitor="val_loss", patience=3, store=tmp_path / "s")
    stopper.load_state_dict(json_round_trip({"wait": 2, "best": 0.5, "best_epoch": 4}))
    model = tiny_model(keras)
    x, y, xv, yv = tiny_data()
    stopper.set_model(model)
    stopper.on_train_begin()
    assert (stopper.wait, stopper.best, stopper.best_epoch) == (2, 0.5, 4)
    stopper.on_train_begin()  # a second fit without new state starts fresh, like Keras
    assert (stopper.wait, stopper.best, stopper.best_epoch) == (0, None, 0)
