"""SIGKILL mid-epoch and resume on every Keras 3 backend (TensorFlow, JAX, torch): the rerun
starts from a checkpoint (step > 0) and ends bitwise equal to an uninterrupted run --
weights, optimizer slots, iterations and the seeded Dropout's SeedGenerator state, which no
weights file holds, and the loss and metric logged for the epoch resumed mid-way. On JAX and torch TensorFlow is never imported."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import _zygote_client

from _frameworks import running_keras30

pytestmark = [pytest.mark.backend, pytest.mark.slow]

CHILD = Path(__file__).with_name("_backend_child.py")
KILL_AT = 14  # epoch 2, batch 4 of 5; the last checkpoint is at iteration 12 (epoch 2, step 2)


def _run(mode: str, workdir: Path, *extra: str) -> int:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = _zygote_client.run([CHILD, mode, workdir, *extra], env, timeout=600)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.returncode


def test_sigkill_mid_epoch_then_resume_is_bitwise(tmp_path: Path) -> None:
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    assert _run("full", ref) == 0
    assert _run("kill", run, str(KILL_AT)) == -signal.SIGKILL
    assert not (run / "result-kill.json").exists()
    assert _run("resume", run) == 0
    started = json.loads((run / "started.json").read_text())
    assert started == {"epoch": 2, "step": 2, "iterations": 12}, started  # from a checkpoint
    want = json.loads((ref / "result-full.json").read_text())
    got = json.loads((run / "result-resume.json").read_text())
    assert got["iterations"] == want["iterations"] == 20
    seeds = [t for t in want["tensors"] if "seed_generator" in t[1]]
    assert seeds, "the model's Dropout must keep a SeedGenerator state"
    def values(result: dict) -> list:  # the rebuilt model's paths differ ("dense/kernel")
        return [[kind, dtype, shape, sha] for kind, _, dtype, shape, sha in result["tensors"]]

    assert values(got) == values(want)
    # the epochs the resumed run logged (epoch 2 resumed at its batch 2): the uninterrupted
    # run's loss and metric, bitwise (the epoch's metric accumulators were carried over)
    assert got["epochs"] == [2, 3] and sorted(got["history"]) == sorted(want["history"]) == ["loss", "mae"]
    for key, values_ in got["history"].items():
        if key == "loss" and running_keras30():
            # Keras 3.0.x adds 1 to its loss tracker's count when the data of the shortened
            # resumed epoch runs out (its graph step starts before the end of data is seen;
            # docs/resume.md): that one value differs, the next epochs do not
            assert values_[1:] == want["history"][key][3:], key
            continue
        assert values_ == want["history"][key][2:], key
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend in ("jax", "torch"):
        assert not got["tensorflow_imported"] and not want["tensorflow_imported"]
