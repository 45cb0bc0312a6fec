"""AsyncWriter: background commits, one in flight, errors re-raised, flushed at exit and SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ckptcompat.callbacks.async_writer import AsyncWriter, snapshot
from ckptcompat.errors import CkptCompatError, StoreWriteError
from ckptcompat.state import OptimizerState, TrainingState

ROOT = Path(__file__).resolve().parents[2]


def _slow(log: list[str], tag: str, seconds: float, gate: threading.Event | None = None):
    def job() -> None:
        log.append(f"start {tag}")
        if gate is not None:
            assert gate.wait(10)
        time.sleep(seconds)
        log.append(f"end {tag}")
    return job


def test_submit_returns_while_the_write_runs_and_flush_waits() -> None:
    log: list[str] = []
    gate = threading.Event()
    with AsyncWriter(handle_sigterm=False) as writer:
        t0 = time.perf_counter()
        writer.submit(_slow(log, "a", 0.0, gate))
        assert time.perf_counter() - t0 < 0.5
        assert writer.busy and "end a" not in log
        gate.set()
        assert writer.flush(timeout=10) is True
        assert log == ["start a", "end a"] and not writer.busy
        assert (writer.submitted, writer.completed) == (1, 1)


def test_flush_timeout_returns_false_while_a_write_is_blocked() -> None:
    gate = threading.Event()
    writer = AsyncWriter(handle_sigterm=False)
    writer.submit(_slow([], "a", 0.0, gate))
    assert writer.flush(timeout=0.05) is False
    gate.set()
    writer.close()
    assert writer.completed == 1


def test_at_most_one_write_in_flight_and_order_kept() -> None:
    running = 0
    peak = 0
    order: list[int] = []
    lock = threading.Lock()

    def job(i: int):
        def run() -> None:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.03)
            order.append(i)
            with lock:
                running -= 1
        return run

    with AsyncWriter(handle_sigterm=False) as writer:
        stalls = []
        for i in range(6):
            writer.submit(job(i))
            stalls.append(writer.last_stall_s)
    assert order == list(range(6)) and peak == 1
    assert stalls[0] < 0.02 and min(stalls[1:]) > 0.01   # later submits waited for the previous


def test_next_submit_waits_for_the_previous_write() -> None:
    log: list[str] = []
    with AsyncWriter(handle_sigterm=False) as writer:
        writer.submit(_slow(log, "a", 0.2))
        writer.submit(_slow(log, "b", 0.0))
        assert log[:2] == ["start a", "end a"]      # "a" was done before "b" was queued
    assert log == ["start a", "end a", "start b", "end b"]


def test_failure_is_reraised_typed_at_next_submit_and_that_job_is_not_run() -> None:
    ran: list[str] = []

    def fail() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/a/.tmp-x/model.h5")

    writer = AsyncWriter(handle_sigterm=False)
    writer.submit(fail)
    time.sleep(0.05)
    with pytest.raises(StoreWriteError) as info:
        writer.submit(lambda: ran.append("next"))
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert info.value.errno == errno.ENOSPC and "background checkpoint write failed" in str(info.value)
    assert "/runs/a/.tmp-x/model.h5" in str(info.value)
    writer.flush()
    assert ran == []                                  # the rejected job never ran
    writer.submit(lambda: ran.append("after"))        # the error was reported once; writer usable
    writer.close()
    assert ran == ["after"]


@pytest.mark.parametrize("where", ["flush", "close"])
def test_failure_is_reraised_at_flush_and_close(where: str) -> None:
    class Boom(RuntimeError):
        pass

    def fail() -> None:
        time.sleep(0.05)
        raise Boom("disk on fire")

    writer = AsyncWriter(handle_sigterm=False)
    writer.submit(fail)
    with pytest.raises(StoreWriteError) as info:
        getattr(writer, where)()
    assert type(info.value.__cause__) is Boom and info.value.errno is None
    assert isinstance(info.value, CkptCompatError) and "Boom: disk on fire" in str(info.value)
    writer.close()                                    # already reported: closes quietly


def test_close_flushes_and_refuses_new_work() -> None:
    log: list[str] = []
    writer = AsyncWriter(handle_sigterm=False)
    writer.submit(_slow(log, "a", 0.1))
    writer.close()
    assert log == ["start a", "end a"]
    assert not writer._thread.is_alive()  # noqa: SLF001
    with pytest.raises(CkptCompatError, match="closed"):
        writer.submit(lambda: None)
    writer.close()                                    # idempotent
    with pytest.raises(TypeError):
        AsyncWriter(handle_sigterm=False).submit("not callable")  # type: ignore[arg-type]


def test_snapshot_shares_no_memory_with_the_captured_state() -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = np.ones(3, dtype=np.float64)
    state = TrainingState(weights={"dense/kernel": w},
                          optimizer=OptimizerState("Adam", {"learning_rate": 0.1}, 7,
                                                   {"dense/kernel": {"m": m}}),
                          history={"loss": [1.0]}, callbacks={"cb": {"wait": [1]}})
    snap = snapshot(state)
    w += 100
    m[:] = -1
    state.history["loss"].append(2.0)
    state.callbacks["cb"]["wait"].append(2)
    assert np.array_equal(snap.weights["dense/kernel"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert snap.weights["dense/kernel"].dtype == np.float32
    assert np.array_equal(snap.optimizer.slots["dense/kernel"]["m"], np.ones(3))
    assert snap.optimizer.slots["dense/kernel"]["m"].dtype == np.float64
    assert snap.history == {"loss": [1.0]} and snap.callbacks == {"cb": {"wait": [1]}}
    assert snap.optimizer.iterations == 7 and snap.optimizer.class_name == "Adam"


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_SLOW_WRITE = """
    import sys, time
    from pathlib import Path
    from ckptcompat.callbacks.async_writer import AsyncWriter
    out = Path(sys.argv[1])
    def job():
        time.sleep(0.8)
        out.write_text("committed")
    writer = AsyncWriter()
"""
_SLOW_WRITE = textwrap.dedent(_SLOW_WRITE)


def test_pending_write_is_finished_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    proc = _child(_SLOW_WRITE + "writer.submit(job)\nprint('submitted', flush=True)\n", str(out))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "submitted" and out.read_text() == "committed"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_sigterm_finishes_the_write_then_dies_by_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    code = _SLOW_WRITE + ("writer.submit(job)\nprint('submitted', flush=True)\n"
                          "for _ in range(600):\n    time.sleep(0.1)\nprint('not killed')\n")
    proc = _child(code, str(out))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "submitted"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, stderr   # default action re-raised
    assert out.read_text() == "committed" and "not killed" not in stdout


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_sigterm_chains_to_the_previous_python_handler(tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    code = textwrap.dedent("""
        import signal, sys, time
        from pathlib import Path
        def previous(signum, frame):
            print("previous handler; write done:", Path(sys.argv[1]).exists(), flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, previous)
    """) + _SLOW_WRITE + (
        "writer.submit(job)\nprint('submitted', flush=True)\nfor _ in range(600):\n    time.sleep(0.1)\n")
    proc = _child(code, str(out))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "submitted"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "previous handler; write done: True" in stdout and out.read_text() == "committed"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_writer_stays_usable_when_the_previous_handler_lets_the_process_go_on(tmp_path: Path) -> None:
    out = tmp_path / "done.txt"
    code = textwrap.dedent("""
        import signal, sys, time
        from pathlib import Path
        got = []
        signal.signal(signal.SIGTERM, lambda s, f: got.append(Path(sys.argv[1]).exists()))
    """) + _SLOW_WRITE + textwrap.dedent("""
        writer.submit(job)
        print('submitted', flush=True)
        while not got:
            time.sleep(0.01)
        writer.submit(lambda: Path(sys.argv[1] + ".2").write_text("second"))
        writer.close()
        print("handler saw write done:", got[0], flush=True)
    """)
    proc = _child(code, str(out))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "submitted"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "handler saw write done: True" in stdout
    assert Path(str(out) + ".2").read_text() == "second"


def test_no_sigterm_handler_from_a_worker_thread_nor_when_disabled() -> None:
    code = """
        import signal, threading
        from ckptcompat.callbacks.async_writer import AsyncWriter
        made = []
        t = threading.Thread(target=lambda: made.append(AsyncWriter()))
        t.start(); t.join()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        AsyncWriter(handle_sigterm=False)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        AsyncWriter()
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        print("ok")
    """
    proc = _child(code)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and stdout.strip() == "ok", stderr


def test_failed_write_at_exit_is_logged_not_hidden(tmp_path: Path) -> None:
    code = """
        import logging, time
        logging.basicConfig(level=logging.INFO)
        from ckptcompat.callbacks.async_writer import AsyncWriter
        def job():
            time.sleep(0.3)
            raise OSError(28, "No space left on device")
        AsyncWriter().submit(job)
    """
    proc = _child(code)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "background checkpoint write failed" in stderr and "No space left" in stderr
