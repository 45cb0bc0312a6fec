"""Multi-worker training: the same script on every worker with ``Checkpoint``.

Two workers of ``tf.distribute.MultiWorkerMirroredStrategy`` on 127.0.0.1 run the unchanged
script; only the chief commits into the store (the other worker's saves go to a private
scratch folder it removes). With ``save_freq=3`` both are SIGKILLed at a random instant after a
new checkpoint (one worker killed first, the other as a scheduler would once its peer is
gone), then both run the same script again, twice; the end is bitwise equal (every weight and
optimizer variable, ``iterations``) to an uninterrupted two-worker run, every rerun provably
started from a checkpoint (all it commits lies after the newest one at its start), and one
process resumes the two workers' store exactly. With ``save_freq="epoch"``: SIGTERM to the
non-chief alone stops nothing, SIGTERM to the chief stops both at the step it names.

MirroredStrategy on one host (two logical CPU devices, Keras 2 and 3) and Keras 3 on JAX with
``keras.distribution.DataParallel`` over two CPU devices, integer ``save_freq``: SIGKILLed
twice and rerun, bitwise. ``CKPTCOMPAT_KILL_SEED`` replays the random instants.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from _children import spawn as _spawn
from _frameworks import keras_backend, keras_flavour, running_keras30

pytestmark = [pytest.mark.slow]

N, BATCH, EPOCHS, SAVE_FREQ = 256, 16, 3, 3
#: seconds per batch in the runs a test kills: 48 batches take at least 2.4 s, so two kills (each
#: at most 0.5 s after a checkpoint) land before the end even on JAX, which trains in well under that
KILLED_BATCH_SLEEP = "0.05"

COMMON = r'''
import hashlib, json, os, sys
import numpy as np
%(strategy)s
from ckptcompat.callbacks import Checkpoint
from ckptcompat.data import ArrayData
from ckptcompat.runtime import keras_module

work = sys.argv[1]
keras = keras_module()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((%(n)d, 8), dtype=np.float32)
y = (x @ rng.random((8, 1), dtype=np.float32)).astype(np.float32)
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
data = ArrayData(x, y, batch_size=%(batch)d, seed=3)
extra = []
if os.environ.get("BATCH_SLEEP"):  # time for a test to send its signals mid-training
    import time
    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(float(os.environ["BATCH_SLEEP"]))
    extra.append(Slow())
model.fit(data, epochs=%(epochs)d, shuffle=False, verbose=0,
          callbacks=[*extra, Checkpoint(os.path.join(work, "ckpt"), save_freq=%(freq)s, data=data)])

def variables(obj):
    value = obj.variables
    return list(value() if callable(value) else value)

digest = [hashlib.sha256(np.ascontiguousarray(np.asarray(v.numpy())).tobytes()).hexdigest()
          for v in [*model.weights, *variables(model.optimizer)]]
with open(os.path.join(work, "result-%%s.json" %% os.environ.get("WORKER", "0")), "w") as out:
    json.dump({"tensors": digest, "iterations": int(model.optimizer.iterations.numpy())}, out)
'''

MULTI_WORKER = r'''
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": os.environ["PEERS"].split(",")},
                                      "task": {"type": "worker", "index": int(os.environ["WORKER"])}})
strategy = tf.distribute.MultiWorkerMirroredStrategy()
'''

MIRRORED = r'''
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
'''


#: Keras 3 on JAX: keras.distribution.DataParallel over two CPU devices of one process
JAX_DATA_PARALLEL = r'''
import contextlib, types
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import keras
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu")))
assert len(keras.distribution.list_devices("cpu")) == 2
strategy = types.SimpleNamespace(scope=contextlib.nullcontext)
'''


def _script(tmp: Path, strategy: str, freq: str = str(SAVE_FREQ)) -> Path:
    path = tmp / "train.py"
    path.write_text(COMMON % {"n": N, "batch": BATCH, "epochs": EPOCHS, "freq": freq,
                              "strategy": strategy})
    return path


def _ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(script: Path, work: Path, **env: str) -> list[subprocess.Popen[bytes]]:
    peers = ",".join(f"127.0.0.1:{p}" for p in _ports(2))
    scratch = work.parent / "tmp"  # the workers' temporary folder (where a scratch store goes)
    scratch.mkdir(exist_ok=True)
    return [_spawn(script, work, WORKER=str(i), PEERS=peers, TMPDIR=str(scratch), **env) for i in range(2)]


def _finish(procs: list[subprocess.Popen[bytes]], what: str) -> None:
    for i, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, f"{what}, worker {i} ({proc.returncode}):\n{out.decode(errors='replace')[-4000:]}"


def _entries(work: Path) -> list[Any]:
    from ckptcompat.store import CheckpointStore

    folder = work / "ckpt"
    return CheckpointStore(folder).checkpoints() if (folder / "ckptcompat.json").exists() else []


def _digest(model: Any) -> list[str]:
    import hashlib

    import numpy as np

    def variables(obj: Any) -> list[Any]:
        value = obj.variables
        return list(value() if callable(value) else value)

    return [hashlib.sha256(np.ascontiguousarray(np.asarray(v.numpy())).tobytes()).hexdigest()
            for v in [*model.weights, *variables(model.optimizer)]]


def _result(work: Path, worker: int = 0) -> dict[str, Any]:
    return json.loads((work / f"result-{worker}.json").read_text())


def _kill_after_next_checkpoint(procs: list[subprocess.Popen[bytes]], work: Path,
                                rng: random.Random) -> bool:
    """SIGKILL one worker (random) at a random instant after a new checkpoint, then the other;
    False when the run finished first."""
    known = {e.id for e in _entries(work)}
    deadline = time.monotonic() + 300
    while not {e.id for e in _entries(work)} - known:
        if any(p.poll() is not None for p in procs):
            _finish(procs, "run before any kill")
            return False
        assert time.monotonic() < deadline, "no new checkpoint"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    order = rng.sample(procs, len(procs))
    for proc in order:
        proc.send_signal(signal.SIGKILL)
        time.sleep(rng.uniform(0.0, 0.2))  # the survivor runs on alone until the scheduler kills it
    for proc in procs:
        proc.communicate(timeout=60)
    return all(p.returncode == -signal.SIGKILL for p in procs)


def _killed_twice_then_rerun(script: Path, tmp: Path, start: Any) -> tuple[dict[str, Any], Path, int]:
    """The reference (uninterrupted), then a run SIGKILLed twice after new checkpoints and
    rerun unchanged each time (the runs to be killed sleep ``KILLED_BATCH_SLEEP`` per batch, so
    a fast backend cannot finish before its kills land); returns (reference result, run folder, seed) after asserting
    that the last rerun started from a checkpoint (step > 0) and committed only after it."""
    reference = tmp / "reference"
    reference.mkdir()
    _finish(start(script, reference), "uninterrupted run")
    expected = _result(reference)
    seed = int(os.environ.get("CKPTCOMPAT_KILL_SEED", random.randrange(1 << 30)))
    rng, work = random.Random(seed), tmp / "run"
    work.mkdir()
    kills, procs = 0, start(script, work, BATCH_SLEEP=KILLED_BATCH_SLEEP)
    while _kill_after_next_checkpoint(procs, work, rng):
        kills += 1
        before = _entries(work)
        procs = start(script, work, BATCH_SLEEP=KILLED_BATCH_SLEEP if kills < 2 else "")
        if kills == 2:
            _finish(procs, f"last rerun (seed {seed})")
            break
    assert kills == 2, f"the run ended before two kills (seed {seed})"
    started = max((e.global_step or 0 for e in before), default=0)
    known = {e.id for e in before}
    new = [e.global_step for e in _entries(work) if e.id not in known]
    assert new and min(new) > started > 0, (seed, started, new)
    assert _result(work) == expected, f"differs from the uninterrupted run (seed {seed})"
    return expected, work, seed


@pytest.mark.framework
@pytest.mark.skipif(keras_flavour() != "keras2", reason="Keras 3's own fit fails under "
                    "MultiWorkerMirroredStrategy (a PerReplica batch reaches its data adapter; seen "
                    "with Keras 3.15 and no callback at all): multi-worker Keras 3 is keras.distribution")
def test_two_workers_sigkilled_and_rerun_end_bitwise_like_an_uninterrupted_run(tmp_path: Path) -> None:
    script = _script(tmp_path, MULTI_WORKER)
    expected, work, seed = _killed_twice_then_rerun(script, tmp_path, _workers)
    reference = tmp_path / "reference"
    assert _result(reference, 1) == expected  # the workers agree
    assert _result(work, 1) == expected, f"worker 1 differs (seed {seed})"
    steps = [e.global_step for e in _entries(reference)]
    assert steps[:3] == [3, 6, 9] and steps[-1] == expected["iterations"]  # the chief committed all
    assert not list(tmp_path.glob("*/ckpt/*/*worker*"))
    # another worker count: one process resumes the two workers' store exactly
    import ckptcompat

    run = ckptcompat.resume(reference / "ckpt")
    assert _digest(run.model) == expected["tensors"] and run.initial_epoch == EPOCHS
    # worker 1's scratch: a killed run's is removed by the rerun, a finished run removes its own
    assert not list((tmp_path / "tmp").glob("ckptcompat-*")), "scratch left behind"


@pytest.mark.backend
@pytest.mark.skipif(keras_backend() != "jax", reason="keras.distribution on JAX")
def test_jax_data_parallel_over_two_devices_resumes_exactly(tmp_path: Path) -> None:
    script = _script(tmp_path, JAX_DATA_PARALLEL)
    expected, _, _ = _killed_twice_then_rerun(script, tmp_path, lambda s, w, **env: [_spawn(s, w, **env)])
    assert expected["iterations"] == EPOCHS * (N // BATCH)


@pytest.mark.framework
@pytest.mark.skipif(running_keras30(), reason="Keras 3.0 has no hook to start fit at a later epoch "
                    "from a callback (docs/callbacks.md)")
def test_mirrored_strategy_with_integer_save_freq_resumes_exactly(tmp_path: Path) -> None:
    script = _script(tmp_path, MIRRORED)
    expected, _, _ = _killed_twice_then_rerun(script, tmp_path, lambda s, w, **env: [_spawn(s, w, **env)])
    assert expected["iterations"] == EPOCHS * (N // BATCH)
    steps = [e.global_step for e in _entries(tmp_path / "reference")]
    assert steps[:3] == [3, 6, 9] and steps[-1] == expected["iterations"]


def _wait_for_checkpoint(procs: list[subprocess.Popen[bytes]], work: Path) -> None:
    deadline = time.monotonic() + 300
    while not _entries(work):
        assert all(p.poll() is None for p in procs), "a worker ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.02)


@pytest.mark.framework
@pytest.mark.skipif(keras_flavour() != "keras2", reason="multi-worker Keras 2 only (see above)")
def test_sigterm_the_chief_decides_every_worker_saves_at_the_same_step(tmp_path: Path) -> None:
    """SIGTERM to both workers: the chief names a step, both save there (the chief commits) and
    exit 143; a SIGTERM to the non-chief alone stops nothing. Reruns end like the reference.
    Saves once per epoch here (the SIGKILL test saves every 3 batches)."""
    script = _script(tmp_path, MULTI_WORKER, freq='"epoch"')
    reference = tmp_path / "reference"
    reference.mkdir()
    _finish(_workers(script, reference), "uninterrupted two-worker run")
    expected = _result(reference)

    work = tmp_path / "run"
    work.mkdir()
    procs = _workers(script, work, BATCH_SLEEP="0.05")
    _wait_for_checkpoint(procs, work)
    procs[1].send_signal(signal.SIGTERM)  # the non-chief alone: noted, training goes on
    time.sleep(0.2)
    assert procs[1].poll() is None
    procs[0].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [143, 143], outs[0][-3000:] + outs[1][-3000:]
    assert "every worker stops after step" in outs[0] and "the chief decides" in outs[1]
    stopped = _entries(work)[-1]
    assert 0 < stopped.global_step < expected["iterations"], stopped
    assert not (work / "ckpt" / ".ckptcompat-stop.json").exists()

    _finish(_workers(script, work), "rerun after SIGTERM")
    assert min(e.global_step for e in _entries(work) if e.id > stopped.id) > stopped.global_step
    for worker in (0, 1):
        assert _result(work, worker) == expected, f"worker {worker} differs"
