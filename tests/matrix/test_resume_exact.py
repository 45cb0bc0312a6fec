"""SIGKILL at a random batch, resume in a new process, finish: bitwise the uninterrupted run.

Each test runs at most three children of ``_resume_child.py`` (op determinism, fixed seeds):
the uninterrupted run (no Checkpoint, in parallel with) the run with ``Checkpoint`` +
``ArrayData`` that is SIGKILLed at a random batch, then ``ckptcompat.resume`` + finish.
Every weight and optimizer variable (``iterations`` included) must have the same sha256.
The kill batch is drawn from ``CKPTCOMPAT_KILL_SEED`` (default: random, printed on failure).
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

CHILD = Path(__file__).with_name("_resume_child.py")
ROOT = CHILD.parents[2]
BATCHES = 5  # per epoch (N=40, batch 8), see _resume_child.py
#: scenario -> (first batch a checkpoint exists after, last batch of the killed run's fit)
KILL_RANGE = {"epoch": (BATCHES + 1, 4 * BATCHES - 1), "batch": (3, 4 * BATCHES - 1),
              "lrsched": (2, 5 * BATCHES - 1), "finetune": (2, 2 * BATCHES - 1)}


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    return _zygote_client.popen([CHILD, *args], env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[bytes], what: str, timeout: float = 240) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{what} failed:\n{out.decode(errors='replace')[-4000:]}"


def _kill_at_progress(proc: subprocess.Popen[bytes], progress: Path, kill_at: int) -> None:
    deadline = time.monotonic() + 240
    while not progress.exists():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"killed child exited ({proc.returncode}) before batch {kill_at}:\n"
                                 f"{out[-4000:]}")
        assert time.monotonic() < deadline, "killed child made no progress"
        time.sleep(0.05)
    assert int(progress.read_text()) == kill_at
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("scenario", ["epoch", "batch", "lrsched", "finetune"])
def test_sigkill_resume_is_bitwise_exact(scenario: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("CKPTCOMPAT_KILL_SEED", random.SystemRandom().randrange(1 << 30)))
    lo, hi = KILL_RANGE[scenario]
    kill_at = random.Random(f"{seed}-{scenario}").randint(lo, hi)
    note = f"(scenario {scenario}, kill at batch {kill_at}, CKPTCOMPAT_KILL_SEED={seed})"
    full_dir, run_dir = tmp_path / "full", tmp_path / "run"
    full_dir.mkdir()
    run_dir.mkdir()
    full = _spawn("full", scenario, str(full_dir))
    killed = _spawn("kill", scenario, str(run_dir), str(kill_at))
    try:
        _kill_at_progress(killed, run_dir / "progress", kill_at)
        _finish(full, f"uninterrupted run {note}")
    finally:
        for proc in (full, killed):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    _finish(_spawn("resume", scenario, str(run_dir)), f"resumed run {note}")
    want = json.loads((full_dir / "result-full.json").read_text())
    got = json.loads((run_dir / "result-resume.json").read_text())
    assert got["iterations"] == want["iterations"], note
    assert got["optimizer"] == want["optimizer"], note
    assert len(got["tensors"]) == len(want["tensors"]), (note, got["tensors"], want["tensors"])
    diffs = [f"{a[0]} {a[1]} vs {b[1]}" for a, b in zip(want["tensors"], got["tensors"])
             if a[2:] != b[2:]]
    assert not diffs, f"{note}: {len(diffs)} tensor(s) differ: {diffs}"
