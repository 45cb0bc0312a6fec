"""Workflow 4: TF1 session loop with iteration-based early stopping, SIGKILLed and resumed.

An uninterrupted run and a run killed at a random point (then resumed in a new process)
must stop at the same iteration and restore bitwise-equal best weights.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import _zygote_client

pytestmark = [pytest.mark.framework, pytest.mark.slow]
TESTS = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np
import _tf1_graph as G
from ckptcompat.runtime.tf1 import read_session
from ckptcompat.tf1.early_stopping import IterationEarlyStopping

store, out = sys.argv[1], sys.argv[2]
delay = float(sys.argv[4])
net = G.build(lr=3e-2)
x, y = G.data()
vx, vy = G.data(n=48, seed=7)
es = IterationEarlyStopping(evaluate_every=4, patience=12, mode="max", store=store)
step = es.resume(net.sess)
while not es.should_stop(step) and step < 400:
    bx, by = G.batch(step, x, y)
    net.sess.run(net.train, {net.x: bx, net.y: by})
    step += 1
    time.sleep(delay)
    if es.should_evaluate(step):
        es.update(step, float(net.sess.run(net.acc, {net.x: vx, net.y: vy})), net.sess)
best_step = es.restore_best(net.sess)
vals = read_session(net.sess)
json.dump({"stop": step, "best_step": best_step, "best": es.best,
           "sha": {k: G.sha(v) for k, v in vals.items()},
           "dtype": {k: str(v.dtype) for k, v in vals.items()}}, open(out, "w"))
'''


def _run(script: Path, store: Path, out: Path, delay: float) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return _zygote_client.popen([script, store, out, TESTS, str(delay)], env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)


def _commits(store: Path) -> int:
    try:
        return json.loads((store / "ckptcompat.json").read_text())["next_id"] - 1
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(CHILD)
    ref = _run(script, tmp_path / "ref", tmp_path / "ref.json", 0.0)
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()[-3000:]
    expected = json.loads((tmp_path / "ref.json").read_text())
    assert expected["stop"] < 400, "the reference run should stop early"

    rnd = random.Random()
    kill_after = rnd.randint(1, max(1, expected["stop"] // 4 - 2))  # commits before the kill
    proc = _run(script, tmp_path / "run", tmp_path / "run.json", 0.01)
    deadline = time.time() + 300
    while _commits(tmp_path / "run") < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    time.sleep(rnd.random() * 0.03)  # land anywhere: mid-step, mid-commit
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (tmp_path / "run.json").exists()
    resumed = _run(script, tmp_path / "run", tmp_path / "run.json", 0.0)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-3000:]
    got = json.loads((tmp_path / "run.json").read_text())
    assert got["stop"] == expected["stop"]
    assert got["best_step"] == expected["best_step"] and got["best"] == expected["best"]
    assert got["dtype"] == expected["dtype"]
    assert got["sha"] == expected["sha"]  # every variable (weights, Adam slots, powers) bitwise
