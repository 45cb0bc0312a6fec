#!/usr/bin/env python3
"""Kill/resume soak: SIGKILL a training child at random moments, resume, compare bitwise.

A child process trains a tiny deterministic model (op determinism, fixed seeds,
``ckptcompat.data.ArrayData``, ``ckptcompat.callbacks.Checkpoint`` saving every few
batches). The driver SIGKILLs it after a random delay (often in the middle of a checkpoint
write), starts a new child that resumes with ``ckptcompat.resume``, and repeats until
training completes. The final weights and optimizer slots must equal, bit for bit, those of
an uninterrupted run. One training run absorbs up to ``ROUND_KILLS`` kills; a larger count
trains again from scratch (a new store) as many times as needed, each run compared.

    python tools/soak.py --kills 50            # prints kills, resumes, failures; rc 1 on failure
    python tools/soak.py --kills 5 --env-check # also run the reference twice (determinism check)

Each kill costs one child start (framework import dominates). ``soak()`` is the importable
core (used by tests/matrix/test_fault_injection.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUND_KILLS = 100  # kills per training run; a larger count trains again from scratch

CHILD = r"""
import json, os, sys, time
from pathlib import Path
import numpy as np

os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
import tensorflow as tf
import ckptcompat
import ckptcompat.resuming.orchestrate
from ckptcompat import runtime
from ckptcompat.callbacks import Checkpoint
from ckptcompat.data import ArrayData

keras = runtime.keras_module()


def train(folder, events, epochs, save_freq, async_save, kill_fsync=0):
    def event(**msg):
        with open(events, "a") as handle:
            handle.write(json.dumps(msg) + "\n")
    if kill_fsync:  # die by SIGKILL inside the kill_fsync-th fsync: in the middle of a save
        real_fsync, calls = os.fsync, [0]
        def fsync(fd):
            calls[0] += 1
            if calls[0] == kill_fsync:
                os.kill(os.getpid(), 9)
            return real_fsync(fd)
        os.fsync = fsync
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(7)
    x = rng.random((48, 4), dtype=np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.3]], dtype=np.float32)).astype(np.float32)
    data = ArrayData(x, y, batch_size=8, seed=1)
    store = folder / "store"
    resumed = None
    if (store / "ckptcompat.json").exists():
        run = ckptcompat.resume(store, data=data)
        model, kwargs = run.model, run.fit_kwargs()
        resumed = [run.initial_epoch, run.initial_step]
    else:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh", name="hidden"),
                                  keras.layers.Dense(1, name="out")])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mse")
        kwargs = {"initial_epoch": 0, "shuffle": False}
    extra = {"async_save": True} if async_save else {}
    ckpt = Checkpoint(store, save_freq=save_freq, data=data, keep_last=2, **extra)
    event(ready=time.time(), resumed=resumed)
    t0 = time.perf_counter()
    first = []

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not first:
                first.append(time.perf_counter() - t0)
                event(training=first[0])

    model.fit(data, epochs=epochs, verbose=0, callbacks=[data.tracker(), FirstBatch(), ckpt], **kwargs)
    train_s = time.perf_counter() - t0 - (first[0] if first else 0.0)
    state = runtime.capture(model)
    np.savez(folder / "final.npz", **{k.replace("/", "|"): v for k, v in state.tensors().items()})
    event(done=True, train_s=train_s, iterations=state.optimizer.iterations)


def zygote():
    # framework imported once; each job runs in a fork (no TF op has run in this process)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                train(Path(job["folder"]), job["events"], job["epochs"], job["save_freq"], job["async"],
                      job["kill_fsync"])
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": pid, "rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "zygote":
        zygote()
    else:
        train(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1",
              int(sys.argv[7]))
"""


@dataclass
class SoakResult:
    """What a soak run did; ``ok`` when every resumed run ended bitwise equal to the reference."""

    kills: int = 0
    kills_mid_write: int = 0
    kills_in_fsync: int = 0
    resumes: int = 0
    cycles: int = 0
    rounds: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reference_train_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (f"kills={self.kills} (inside an fsync {self.kills_in_fsync}, left a temp dir "
                f"{self.kills_mid_write}) resumes={self.resumes} "
                f"cycles={self.cycles} rounds={self.rounds} failures={len(self.failures)} "
                f"time={self.seconds:.1f}s reference_train={self.reference_train_s:.2f}s")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class _Launcher:
    """Starts training children: fresh processes (``spawn``) or forks of a zygote (``fork``)."""

    def __init__(self, script: Path, mode: str, epochs: int, save_freq: int, async_save: bool) -> None:
        self.script, self.mode = script, mode
        self.args = (epochs, save_freq, async_save)
        self.zygote: subprocess.Popen[str] | None = None
        if mode == "fork":
            with open(script.parent / "zygote.log", "ab") as err:
                self.zygote = subprocess.Popen([sys.executable, str(script), "zygote"], env=_env(),
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               stderr=err, text=True)
        self.proc: subprocess.Popen[str] | None = None
        self.pid = 0

    def start(self, folder: Path, events: Path, log: Path, kill_fsync: int = 0) -> None:
        epochs, save_freq, async_save = self.args
        if self.zygote is None:
            with open(log, "ab") as handle:  # noqa: SIM117
                self.proc = subprocess.Popen(
                    [sys.executable, str(self.script), "run", str(folder), str(events), str(epochs),
                     str(save_freq), str(int(async_save)), str(kill_fsync)],
                    env=_env(), stdout=handle, stderr=handle)
            self.pid = self.proc.pid
            return
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        self.zygote.stdin.write(json.dumps({"folder": str(folder), "events": str(events), "log": str(log),
                                            "epochs": epochs, "save_freq": save_freq,
                                            "async": async_save, "kill_fsync": kill_fsync}) + "\n")
        self.zygote.stdin.flush()
        line = self.zygote.stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died:\n" + _log_tail(self.script.parent / "zygote.log"))
        self.pid = int(json.loads(line)["pid"])

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                return handle.read().split(")")[-1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):  # reaped between the open and the read
            return False

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 600) -> int:
        if self.proc is not None:
            return self.proc.wait(timeout)
        assert self.zygote is not None and self.zygote.stdout is not None
        line = self.zygote.stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died")
        return int(json.loads(line)["rc"])

    def wait_or_kill(self, timeout: float) -> int:
        """Wait for the child; SIGKILL it after ``timeout`` seconds (a hang is a failure)."""
        deadline = time.time() + timeout
        while self.running() and time.time() < deadline:
            time.sleep(0.02)
        if self.running():
            self.kill()
            self.wait()
            return -999
        return self.wait()

    def close(self) -> None:
        if self.zygote is not None:
            assert self.zygote.stdin is not None
            self.zygote.stdin.close()
            self.zygote.wait(60)


def _wait_event(launcher: _Launcher, events: Path, key: str, timeout: float = 300) -> dict[str, Any] | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for msg in _events(events):
            if key in msg:
                return msg
        if not launcher.running():
            for msg in _events(events):
                if key in msg:
                    return msg
            return None
        time.sleep(0.005)
    return None


def _load(path: Path) -> dict[str, Any]:
    import numpy as np

    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _compare(ref: dict[str, Any], got: dict[str, Any]) -> list[str]:
    import numpy as np

    problems = [f"missing tensor {k}" for k in sorted(set(ref) - set(got))]
    problems += [f"extra tensor {k}" for k in sorted(set(got) - set(ref))]
    for key in sorted(set(ref) & set(got)):
        a, b = ref[key], got[key]
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            problems.append(f"tensor {key.replace('|', '/')} differs")
    return problems


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace").strip()[-3000:]
    except FileNotFoundError:
        return ""


def _run_once(launcher: _Launcher, folder: Path, name: str) -> tuple[dict[str, Any], float]:
    folder.mkdir(parents=True)
    events, log = folder / f"{name}.jsonl", folder / f"{name}.log"
    launcher.start(folder, events, log)
    rc = launcher.wait()
    done = [m for m in _events(events) if m.get("done")]
    if rc != 0 or not done:
        raise RuntimeError(f"the uninterrupted run failed (rc {rc}):\n{_log_tail(log)}")
    return _load(folder / "final.npz"), float(done[-1]["train_s"])


def soak(kills: int, *, workdir: str | os.PathLike[str] | None = None, seed: int | None = None,
         epochs: int = 30, save_freq: int = 2, env_check: bool = False, async_save: bool = False,
         mode: str = "fork", log: Any = None) -> SoakResult:
    """Reference run, then ``kills`` SIGKILLed children and a final one; compare bitwise.

    ``mode="fork"``: children are forks of one process that imported the framework (fast
    cycles); the reference always runs in a fresh process. ``env_check`` also compares a
    second reference run (forked in fork mode) with the first.
    """
    say = log or (lambda msg: None)
    result = SoakResult()
    start = time.perf_counter()
    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    with tempfile.TemporaryDirectory(prefix="ckptcompat-soak-", dir=workdir) as tmp:
        base = Path(tmp)
        script = base / "child.py"
        script.write_text(CHILD)
        fresh = _Launcher(script, "spawn", epochs, save_freq, async_save)
        launcher = fresh if mode == "spawn" else _Launcher(script, mode, epochs, save_freq, async_save)
        try:
            ref, ref_s = _run_once(fresh, base / "ref", "ref")
            result.reference_train_s = ref_s
            say(f"reference run (fresh process): {ref_s:.2f}s of training after the first batch")
            if env_check:
                again, _ = _run_once(launcher, base / "ref2", "ref2")
                problems = _compare(ref, again)
                if problems:
                    result.failures.append("environment not deterministic: two uninterrupted runs "
                                           "differ: " + "; ".join(problems[:5]))
                    return result
                say(f"env-check: two uninterrupted runs ({mode}) are bitwise equal")
            # a training run absorbs about ROUND_KILLS kills; more kills -> more runs from scratch
            while not result.failures and (result.rounds == 0 or result.kills < kills):
                result.rounds += 1
                budget = min(kills - result.kills, ROUND_KILLS)
                _kill_loop(launcher, base / f"run-{result.rounds:03d}", result.kills + budget,
                           ref, ref_s, rng, result, say)
                say(f"round {result.rounds}: training completed after {result.kills} kills in all, "
                    f"{'bitwise equal to the reference' if not result.failures else 'FAILED'}")
        finally:
            launcher.close()
            result.seconds = time.perf_counter() - start
    return result


def _kill_loop(launcher: _Launcher, run_dir: Path, kills: int, ref: dict[str, Any], ref_s: float,
               rng: random.Random, result: SoakResult, say: Any) -> None:
    run_dir.mkdir()
    store = run_dir / "store"
    # a delay drawn in [0, window): about kills/2 cycles' worth of progress lands before the end
    window = max(ref_s / max(kills - result.kills, 1), 0.02)
    child_timeout = 120 + 20 * ref_s
    while True:
        result.cycles += 1
        if (store / "ckptcompat.json").exists():
            result.resumes += 1
        events, log = run_dir / f"cycle-{result.cycles:03d}.jsonl", run_dir / "children.log"
        # every third kill happens inside a save: SIGKILL in the n-th os.fsync of the child
        in_write = result.kills < kills and result.kills % 3 == 2
        launcher.start(run_dir, events, log, rng.randint(1, 60) if in_write else 0)
        ready = _wait_event(launcher, events, "ready")
        if ready is None:
            rc = launcher.wait_or_kill(1.0)
            result.failures.append(f"cycle {result.cycles}: child ended before training (rc {rc}):\n"
                                   f"{_log_tail(log)}")
            return
        if in_write:
            rc = launcher.wait_or_kill(child_timeout)
        elif result.kills < kills:
            if rng.random() < 0.1:   # now and then during start-up (resume, first trace)
                time.sleep(rng.uniform(0.0, 0.5))
            elif _wait_event(launcher, events, "training") is not None:
                time.sleep(rng.uniform(0.0, window))
            launcher.kill()
            rc = launcher.wait()
            if rc == -signal.SIGKILL:
                result.kills += 1
                if store.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(store)):
                    result.kills_mid_write += 1
                say(f"cycle {result.cycles}: killed (started at {ready['resumed']})")
                continue
        else:
            rc = launcher.wait_or_kill(child_timeout)
        if rc == -999:
            result.failures.append(f"cycle {result.cycles}: child hung for {child_timeout:.0f}s:\n"
                                   f"{_log_tail(log)}")
            return
        if in_write and rc == -signal.SIGKILL:
            result.kills += 1
            result.kills_in_fsync += 1
            if store.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(store)):
                result.kills_mid_write += 1
            say(f"cycle {result.cycles}: killed inside an fsync (started at {ready['resumed']})")
            continue
        if rc != 0:
            result.failures.append(f"cycle {result.cycles}: child failed (rc {rc}):\n{_log_tail(log)}")
            return
        if any(m.get("done") for m in _events(events)):
            say(f"cycle {result.cycles}: training completed (started at {ready['resumed']})")
            break
    result.failures.extend(_compare(ref, _load(run_dir / "final.npz")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver (default 20)")
    parser.add_argument("--env-check", action="store_true",
                        help="first check that two uninterrupted runs are bitwise equal")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--save-freq", type=int, default=2, help="save every N batches")
    parser.add_argument("--async-save", action="store_true",
                        help="train with Checkpoint(async_save=True)")
    parser.add_argument("--mode", choices=("fork", "spawn"),
                        default="fork" if hasattr(os, "fork") else "spawn",
                        help="fork: children forked from one process that imported the framework "
                             "(fast); spawn: a fresh interpreter per child")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill delays")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = soak(args.kills, seed=args.seed, epochs=args.epochs, save_freq=args.save_freq,
                  env_check=args.env_check, async_save=args.async_save, mode=args.mode,
                  log=None if args.quiet else (lambda m: print(m, flush=True)))
    for failure in result.failures:
        print("FAILURE:", failure)
    print(f"kills: {result.kills}  resumes: {result.resumes}  failures: {len(result.failures)}")
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
