"""One callback, same script: kill or signal a training process, run the UNCHANGED script again.

The user script's only ckptcompat lines are ``data = ArrayData(...)`` and
``callbacks=[Checkpoint(dir, save_freq=8, data=data)]``; every run of it continues from the
newest good checkpoint by itself. Each test ends bitwise equal (every weight and optimizer
variable, ``iterations``, and the loss and metric the last run logged for each of its epochs,
the first one resumed mid-epoch) to the same script run once without interruption, and proves from
the store that every rerun started from a checkpoint: the checkpoints a rerun commits all lie
after the newest one that existed when it started (a run from scratch would commit step 8
again).

* SIGKILL at random instants (each after a new checkpoint exists), at least twice;
* SIGTERM, then SIGINT, in the middle of an epoch: the process commits a checkpoint at that
  very batch (no batch trained after the signal), exits with 128 + signal, and the rerun
  continues. A plain Keras callback pauses at a chosen batch until the signal was sent.

The seed of the random instants is printed on failure (``CKPTCOMPAT_KILL_SEED`` replays it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from _children import spawn as _spawn
from _frameworks import running_keras30

pytestmark = [
    pytest.mark.framework, pytest.mark.slow,
    # Keras 3.0.x binds fit's first epoch before any callback runs (no model._initial_epoch hook):
    # there the rerun raises the typed data-position error asking for fit(initial_epoch=N)
    pytest.mark.skipif(running_keras30(),
                       reason="Keras 3.0 has no hook to start fit at a later epoch from a callback "
                              "(docs/callbacks.md)"),
]

N, BATCH, EPOCHS, SAVE_FREQ = 512, 16, 4, 8   # 32 batches per epoch, 128 steps
PER_EPOCH = N // BATCH

SCRIPT = r'''
import hashlib, json, os, sys
import numpy as np
import tensorflow as tf
from ckptcompat.callbacks import Checkpoint
from ckptcompat.data import ArrayData
from ckptcompat.runtime import keras_module

keras = keras_module()
tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(0)
work = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.random((%(n)d, 8), dtype=np.float32)
y = (x @ rng.random((8, 1), dtype=np.float32)).astype(np.float32)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
%(pause)s
data = ArrayData(x, y, batch_size=%(batch)d, seed=3)
hist = model.fit(data, epochs=%(epochs)d, shuffle=False, verbose=0,
          callbacks=[%(extra)sCheckpoint(os.path.join(work, "ckpt"), save_freq=%(freq)d, data=data)])

def variables(obj):
    value = obj.variables
    return list(value() if callable(value) else value)

digest = [hashlib.sha256(np.ascontiguousarray(np.asarray(v.numpy())).tobytes()).hexdigest()
          for v in [*model.weights, *variables(model.optimizer)]]
with open(os.path.join(work, "result.json"), "w") as out:
    json.dump({"tensors": digest, "iterations": int(np.asarray(model.optimizer.iterations)),
               "epochs": list(hist.epoch), "history": {k: [float(v) for v in vals]
                                                        for k, vals in hist.history.items()}}, out)
'''

#: a plain Keras callback: at global batch PAUSE_AT it says so and waits until the signal was sent
PAUSE = r'''
import time
class Pause(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == int(os.environ["PAUSE_AT"]):
            open(os.path.join(work, "ready"), "w").close()
            while not os.path.exists(os.path.join(work, "sent")):
                time.sleep(0.01)
'''


def _script(tmp: Path, pause: bool) -> Path:
    path = tmp / ("train_pause.py" if pause else "train.py")
    path.write_text(SCRIPT % {"n": N, "batch": BATCH, "epochs": EPOCHS, "freq": SAVE_FREQ,
                              "pause": PAUSE if pause else "", "extra": "Pause(), " if pause else ""})
    return path


def _finish(proc: subprocess.Popen[bytes], what: str) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out.decode(errors='replace')[-4000:]}"


def _entries(work: Path) -> list[Any]:
    from ckptcompat.store import CheckpointStore

    folder = work / "ckpt"
    return CheckpointStore(folder).checkpoints() if (folder / "ckptcompat.json").exists() else []


def _newest_step(entries: list[Any]) -> int:
    return max((e.global_step or 0 for e in entries), default=0)


def _started_from(work: Path, before: list[Any]) -> int:
    """The global step the last run continued from: every checkpoint it committed lies after
    the newest one that existed when it started (asserted); that step is returned."""
    start = _newest_step(before)
    known = {e.id for e in before}
    new = [e for e in _entries(work) if e.id not in known]
    assert new, "the rerun committed no checkpoint"
    assert min(e.global_step for e in new) > start, (start, [e.global_step for e in new])
    return start


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("reference")
    _finish(_spawn(_script(work, pause=False), work), "uninterrupted run")
    result = json.loads((work / "result.json").read_text())
    assert result["iterations"] == EPOCHS * PER_EPOCH
    return result


def _assert_same(work: Path, reference: dict[str, Any], note: str) -> None:
    got = json.loads((work / "result.json").read_text())
    assert got["iterations"] == reference["iterations"], note
    diffs = [i for i, (a, b) in enumerate(zip(reference["tensors"], got["tensors"])) if a != b]
    assert len(got["tensors"]) == len(reference["tensors"]) and not diffs, f"{note}: tensors {diffs} differ"
    # the epochs this run logged, the first one resumed mid-epoch: the same loss and metric
    # as the uninterrupted run (the epoch's metric accumulators were carried over)
    assert got["epochs"] and sorted(got["history"]) == sorted(reference["history"]) == ["loss", "mae"]
    for i, epoch in enumerate(got["epochs"]):
        for key, values in got["history"].items():
            assert values[i] == reference["history"][key][epoch], (note, key, epoch)


def _kill_after_next_checkpoint(proc: subprocess.Popen[bytes], work: Path, rng: random.Random) -> bool:
    """SIGKILL ``proc`` a random instant after it committed a new checkpoint; False when it
    finished first."""
    known = {e.id for e in _entries(work)}
    deadline = time.monotonic() + 240
    while not {e.id for e in _entries(work)} - known:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "no new checkpoint"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode == -signal.SIGKILL


def test_sigkill_at_random_instants_then_rerun_the_same_script(tmp_path: Path,
                                                               reference: dict[str, Any]) -> None:
    seed = int(os.environ.get("CKPTCOMPAT_KILL_SEED", random.SystemRandom().randrange(1 << 30)))
    rng, note = random.Random(seed), f"CKPTCOMPAT_KILL_SEED={seed}"
    script, kills, starts = _script(tmp_path, pause=False), 0, []
    for attempt in range(3):
        before = _entries(tmp_path)
        proc = _spawn(script, tmp_path)
        killed = kills < 2 and _kill_after_next_checkpoint(proc, tmp_path, rng)
        if not killed:
            _finish(proc, f"run {attempt + 1} after {kills} kills ({note})")
        if attempt:
            starts.append(_started_from(tmp_path, before))
        if not killed:
            break
        kills += 1
    assert kills >= 2, f"only {kills} kill(s) before the run finished ({note})"
    assert len(starts) == kills and all(s > 0 for s in starts) and starts == sorted(starts), (starts, note)
    _assert_same(tmp_path, reference, f"{kills} kills, reruns started at steps {starts} ({note})")


def _signal_at(script: Path, work: Path, signum: int, at: int) -> float:
    """Run the script, send ``signum`` while it pauses after global batch ``at``; returns the
    seconds from the signal to the process' exit."""
    proc = _spawn(script, work, PAUSE_AT=str(at))
    deadline = time.monotonic() + 240
    while not (work / "ready").exists():
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")[-4000:]
        assert time.monotonic() < deadline, "the run never reached the pause"
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signum)
    (work / "sent").touch()
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    text = out.decode(errors="replace")
    assert proc.returncode == 128 + signum, f"exit {proc.returncode}:\n{text[-4000:]}"
    assert signal.Signals(signum).name in text and "checkpoint saved" in text, text[-4000:]
    for name in ("ready", "sent"):
        (work / name).unlink()
    return took


def test_sigterm_then_sigint_mid_epoch_commit_that_batch_and_rerun(tmp_path: Path,
                                                                    reference: dict[str, Any]) -> None:
    script = _script(tmp_path, pause=True)
    at_term, at_int = PER_EPOCH // 2 + 3, PER_EPOCH + PER_EPOCH // 2 - 1   # not multiples of 8
    took = _signal_at(script, tmp_path, signal.SIGTERM, at_term)
    newest = max(_entries(tmp_path), key=lambda e: e.id)
    assert (newest.epoch, newest.step, newest.global_step) == (0, at_term, at_term)
    assert took < 60, took
    before = _entries(tmp_path)
    took = _signal_at(script, tmp_path, signal.SIGINT, at_int)
    assert _started_from(tmp_path, before) == at_term
    newest = max(_entries(tmp_path), key=lambda e: e.id)
    assert (newest.epoch, newest.step, newest.global_step) == (1, at_int - PER_EPOCH, at_int)
    assert took < 60, took
    before = _entries(tmp_path)
    _finish(_spawn(script, tmp_path, PAUSE_AT="0"), "rerun after SIGINT")
    assert _started_from(tmp_path, before) == at_int
    _assert_same(tmp_path, reference, "SIGTERM then SIGINT")
