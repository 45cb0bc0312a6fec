"""SIGKILL a training process at random epochs, resume each time, and end like an uninterrupted run.

Each child trains the tiny model with ModelCheckpoint, EarlyStopping(restore_best_weights),
ReduceLROnPlateau, TrainingMonitor and ckptcompat's Checkpoint; a killer callback sends
SIGKILL to its own process at a chosen epoch end, either before or after Checkpoint saved
that epoch (so the best-weights store may be ahead of the last checkpoint). The next child
resumes with ``ckptcompat.resume`` + the same callbacks. Stop epoch, best value, best
weights (bitwise), learning-rate drops and the monitor history must equal those of an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import _zygote_client

pytestmark = [pytest.mark.framework, pytest.mark.slow]

TESTS = Path(__file__).resolve().parents[1]
EPOCHS = 40

CHILD = r'''
import json, os, signal, sys
from pathlib import Path
import numpy as np
from _cb_helpers import tiny_data, tiny_model
import ckptcompat
from ckptcompat import callbacks as cb
from ckptcompat.runtime import keras_module

folder, kill_epoch, kill_before_save = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
by_steps = sys.argv[4] == "steps"
keras = keras_module()
model = tiny_model(keras, metrics=["accuracy"], lr=0.5)
initial_epoch = 0
if (folder / "ckpt" / "ckptcompat.json").exists():
    run = ckptcompat.resume(folder / "ckpt", model=model)
    initial_epoch = run.initial_epoch

class Killer(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == kill_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

_, _, xv, yv = tiny_data()
if by_steps:  # iteration-based: evaluate every 3 batches inside fit, stop after 18 without improvement
    stopper = cb.EarlyStopping(monitor="val_loss", evaluate_every_steps=3, patience_steps=18,
                               validation_data=(xv, yv), restore_best_weights=True)
else:
    stopper = cb.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True)
reduce = cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=0.0)
callbacks = [cb.ModelCheckpoint(str(folder / "mc-{epoch:02d}-{val_loss:.4f}.h5"), monitor="val_loss",
                                save_best_only=True),
             stopper, reduce, cb.TrainingMonitor(json_path=folder / "history.json", monitor="val_accuracy")]
killer, checkpoint = Killer(), cb.Checkpoint(folder / "ckpt")
callbacks += [killer, checkpoint] if kill_before_save else [checkpoint, killer]
x, y, _, _ = tiny_data(noise=0.45)
model.fit(x, y, validation_data=(xv, yv), batch_size=16, shuffle=False, verbose=0,
          epochs=%(epochs)d, initial_epoch=initial_epoch, callbacks=callbacks)
np.savez(folder / "final.npz", *model.get_weights())
(folder / "outcome.json").write_text(json.dumps({
    "stopped_epoch": stopper.stopped_epoch, "best": stopper.best, "best_epoch": stopper.best_epoch,
    "stopped_step": stopper.stopped_step, "best_step": stopper.best_step,
    "drops": reduce.drops, "files": sorted(n for n in os.listdir(folder) if n.startswith("mc-")),
    "history": json.loads((folder / "history.json").read_text())}))
''' % {"epochs": EPOCHS}


def _child(script: Path, folder: Path, kill_epoch: int, before_save: bool, mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = _zygote_client.run([script, folder, str(kill_epoch), str(int(before_save)), mode], env, timeout=600)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.returncode


def _result(folder: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    with np.load(folder / "final.npz") as data:
        weights = [data[f"arr_{i}"] for i in range(len(data.files))]
    return json.loads((folder / "outcome.json").read_text()), weights


@pytest.mark.parametrize("mode", ["epochs", "steps"])
def test_sigkill_resume_matches_uninterrupted(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    run_dir.mkdir()
    assert _child(script, ref_dir, -1, False, mode) == 0
    ref, ref_weights = _result(ref_dir)
    stop = ref["stopped_epoch"]
    assert 4 < stop < EPOCHS - 1 and ref["drops"], "the reference run must stop early and lower the LR"
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    kills = sorted(rng.sample(range(1, stop), 3))
    plan = [(epoch, rng.random() < 0.5) for epoch in kills]
    for epoch, before_save in plan:
        assert _child(script, run_dir, epoch, before_save, mode) == -signal.SIGKILL, (epoch, before_save)
        assert not (run_dir / "outcome.json").exists()
    assert _child(script, run_dir, -1, False, mode) == 0
    got, weights = _result(run_dir)
    if mode == "steps":
        assert ref["stopped_step"] > 0 and ref["best_step"] > 0, ref
    for key in ("stopped_epoch", "stopped_step", "best", "best_epoch", "best_step", "drops", "files", "history"):
        assert got[key] == ref[key], (key, plan)
    assert len(weights) == len(ref_weights)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(weights, ref_weights)), plan
