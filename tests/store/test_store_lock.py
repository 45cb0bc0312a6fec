"""ckptcompat.store: the single-writer lock."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _store_helpers import commit
from ckptcompat.errors import CkptCompatError, StoreLockedError
from ckptcompat.store import CheckpointStore

ROOT = Path(__file__).resolve().parents[2]
LOCK = ".ckptcompat.lock"


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()                      # reaped: this pid is certainly not alive any more
    return child.pid


def test_lock_file_names_holder_and_is_released(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, write=True)
    holder = json.loads((tmp_path / LOCK).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["time"].endswith("Z")
    store.close()
    assert not (tmp_path / LOCK).exists()
    store.close()                     # idempotent
    with pytest.raises(CkptCompatError, match="not open for writing"):
        store.begin(epoch=1)


def test_second_writer_in_same_process_is_refused(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as first:
        with pytest.raises(StoreLockedError) as info:
            CheckpointStore(tmp_path, write=True)
        assert isinstance(info.value, BlockingIOError) and isinstance(info.value, CkptCompatError)
        assert f"pid {os.getpid()}" in str(info.value)
        assert info.value.holder["pid"] == os.getpid()
        commit(first, 1)              # the holder still works, its lock untouched
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    with CheckpointStore(tmp_path, write=True) as again:   # free after close
        commit(again, 2)


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True):
        result = _run("""
            import sys
            from ckptcompat.errors import StoreLockedError
            from ckptcompat.store import CheckpointStore
            try:
                CheckpointStore(sys.argv[1], write=True)
            except StoreLockedError as exc:
                print("LOCKED", exc.holder["pid"])
        """, str(tmp_path))
    assert result.stdout.split() == ["LOCKED", str(os.getpid())], result.stderr


def test_readers_take_no_lock_and_work_while_a_writer_holds_it(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as writer:
        entry = commit(writer, 1)
        before = (tmp_path / LOCK).read_bytes()
        reader = CheckpointStore(tmp_path)
        assert reader.latest_good() == entry and reader.verify().ok
        assert (tmp_path / LOCK).read_bytes() == before


def test_stale_lock_of_dead_pid_is_taken_over(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    pid = _dead_pid()
    (tmp_path / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                             "time": "2020-01-01T00:00:00Z"}))
    report = CheckpointStore(tmp_path).verify()
    assert [p.kind for p in report.problems] == ["stale-lock"]
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        with CheckpointStore(tmp_path, write=True) as store:
            assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
            commit(store, 1)
    assert any("stale" in r.getMessage() and str(pid) in r.getMessage() for r in caplog.records)
    assert not (tmp_path / LOCK).exists()


@pytest.mark.parametrize("content", [
    # a job rescheduled on another host of a shared file system
    {"pid": 4242, "host": "some-other-host", "time": "2020-01-01T00:00:00Z"},
    # a restarted container: the trainer is pid 1 again, or the pid is reused by ourselves
    {"pid": 1, "host": socket.gethostname(), "time": "2020-01-01T00:00:00Z"},
    {"pid": os.getpid(), "host": socket.gethostname(), "time": "2020-01-01T00:00:00Z"},
    # a live process of this host (our parent) that does not hold the OS lock
    {"pid": os.getppid(), "host": socket.gethostname(), "time": "2020-01-01T00:00:00Z"},
], ids=["other-host", "pid-1", "own-pid", "live-pid-without-lock"])
def test_lock_whose_os_lock_is_free_is_taken_over_whatever_it_names(
        tmp_path: Path, content: dict, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[type-arg]
    (tmp_path / LOCK).write_text(json.dumps(content))
    assert [p.kind for p in CheckpointStore(tmp_path).verify().problems] == ["stale-lock"]
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        with CheckpointStore(tmp_path, write=True) as store:
            mine = json.loads((tmp_path / LOCK).read_text())
            assert mine["pid"] == os.getpid() and mine["host"] == socket.gethostname()
            assert mine["time"] != content["time"]
            commit(store, 1)
    assert any("stale" in r.getMessage() and f"pid {content['pid']} on host "
               f"{content['host']!r}" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / LOCK).exists()


def test_live_holder_in_another_process_is_refused_whatever_its_file_says(tmp_path: Path) -> None:
    """Ownership is the OS lock: a holder whose file names another host is still live."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, json, os, sys
        fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": 1, "host": "elsewhere", "time": "t"}).encode())
        print("held", flush=True)
        sys.stdin.read()
    """), str(tmp_path / LOCK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError) as info:
            CheckpointStore(tmp_path, write=True)
        assert "pid 1 on host 'elsewhere'" in str(info.value)
        assert info.value.holder == {"pid": 1, "host": "elsewhere", "time": "t"}
        assert CheckpointStore(tmp_path).verify().ok                  # held: not stale
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    with CheckpointStore(tmp_path, write=True) as store:              # free once it exits
        commit(store, 1)


def test_empty_lock_file_without_holder_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text("")  # a crash between creating and writing the lock
    with CheckpointStore(tmp_path, write=True):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_lock_released_at_exit_without_close(tmp_path: Path) -> None:
    result = _run("""
        import sys
        from ckptcompat.store import CheckpointStore
        store = CheckpointStore(sys.argv[1], write=True)
        print("held")
    """, str(tmp_path))
    assert result.stdout.strip() == "held", result.stderr
    assert not (tmp_path / LOCK).exists()
    with CheckpointStore(tmp_path, write=True) as store:
        commit(store, 1)
