"""The end-to-end tests' child processes forked from a pre-imported Python (tests/_zygote.py)
behave as ``python script args`` would: argv, working directory, environment, sys.path, exit
status (signals included), captured output; what a fork cannot honour runs as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import _zygote_client

#: slow: the README command starts no forked child (its end-to-end suites are slow ones); the matrix rows
#: that run them test the fork server (tf221-keras3 with the slow tests, tf221-tfkeras, tf216-keras30)
pytestmark = [pytest.mark.framework, pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, /proc")]

SCRIPT = r'''
import atexit, json, os, sys, tempfile, time
import numpy as np
import helper_module
MARK = "kept"
atexit.register(lambda: print("at exit:", sys.modules["__main__"].__dict__.get("MARK"), flush=True))
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "x": os.environ.get("ZYGOTE_X"),
                  "path0": sys.path[0], "helper": helper_module.__file__, "main": __name__,
                  "cwd_on_path": os.getcwd() in sys.path, "hash": hash("ckptcompat"),
                  "numpy_draw": float(np.random.random_sample()), "tmp": tempfile.gettempdir(),
                  "preloaded": "tensorflow" in sys.modules and "ckptcompat" not in sys.modules}))
sys.stdout.flush()
mode = sys.argv[1]
if mode == "unbuffered":
    print("written before the kill")
    os.kill(os.getpid(), 9)
if mode == "exit":
    sys.exit(3)
if mode == "raise":
    raise ValueError("told to")
if mode == "sigkill":
    os.kill(os.getpid(), 9)
if mode == "sleep":
    time.sleep(600)
'''


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    pytest.importorskip("tensorflow")
    if _zygote_client.Zygote.get(None) is None:
        pytest.skip("no zygote here")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper_module.py").write_text("")
    path = tmp_path / "child.py"
    path.write_text(SCRIPT)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, ZYGOTE_X="42", PYTHONPATH=str(tmp_path / "lib"), **extra)


def _seen(done: "subprocess.CompletedProcess[str]") -> dict[str, object]:
    return dict(json.loads(done.stdout.splitlines()[0]))


def test_a_forked_child_runs_like_python_script_args(script: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done = _zygote_client.run([script, "exit", "b c"], _env(tmp_path, TMPDIR=str(work)), timeout=60, cwd=work)
    assert done.returncode == 3, done.stderr
    seen = _seen(done)
    assert {k: seen[k] for k in ("argv", "cwd", "x", "path0", "helper", "main", "tmp", "preloaded")} == {
        "argv": [str(script), "exit", "b c"], "cwd": str(work), "x": "42", "path0": str(tmp_path),
        "helper": str(tmp_path / "lib" / "helper_module.py"), "main": "__main__", "tmp": str(work),
        "preloaded": True}
    assert seen["cwd_on_path"] is False
    assert done.stdout.splitlines()[-1] == "at exit: kept"  # __main__ lives until the interpreter ends


def test_hash_seeds_and_random_draws_differ_between_children_as_between_processes(script: Path,
                                                                                   tmp_path: Path) -> None:
    unseeded = _env(tmp_path)
    unseeded.pop("PYTHONHASHSEED", None)  # (the matrix sets one for every process)
    runs = [_seen(_zygote_client.run([script, "exit"], unseeded, timeout=60)) for _ in range(2)]
    assert runs[0]["preloaded"] and runs[1]["preloaded"]
    assert runs[0]["hash"] != runs[1]["hash"] and runs[0]["numpy_draw"] != runs[1]["numpy_draw"]
    fixed = [_seen(_zygote_client.run([script, "exit"], _env(tmp_path, PYTHONHASHSEED="0"), timeout=60))
             for _ in range(2)]
    plain = subprocess.run([sys.executable, "-c", "print(hash('ckptcompat'))"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONHASHSEED="0"), check=True)
    assert fixed[0]["hash"] == fixed[1]["hash"] == int(plain.stdout)


def test_python_path_and_unbuffered_output_as_python_has_them(script: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "lib"), "", "rel"])  # "" is the working folder
    done = _zygote_client.run([script, "unbuffered"], env, timeout=60, cwd=work)
    assert done.returncode == -signal.SIGKILL
    assert _seen(done)["cwd_on_path"] is True and _seen(done)["preloaded"] is True
    assert done.stdout.splitlines()[-1] == "written before the kill"


def test_an_uncaught_exception_exits_1_with_its_traceback(script: Path, tmp_path: Path) -> None:
    done = _zygote_client.run([script, "raise"], _env(tmp_path), timeout=60)
    assert done.returncode == 1
    assert "ValueError: told to" in done.stderr


def test_signals_end_the_child_as_they_would_a_process(script: Path, tmp_path: Path) -> None:
    assert _zygote_client.run([script, "sigkill"], _env(tmp_path), timeout=60).returncode == -signal.SIGKILL
    proc = _zygote_client.popen([script, "sleep"], _env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert isinstance(proc, _zygote_client.ForkedChild)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert json.loads(out.splitlines()[0])["argv"][1] == "sleep"


def test_a_startup_variable_the_zygote_lacks_gets_a_fresh_interpreter(script: Path, tmp_path: Path) -> None:
    proc = _zygote_client.popen([script, "exit"], _env(tmp_path, KERAS_BACKEND="jax"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert isinstance(proc, subprocess.Popen)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3 and json.loads(out.splitlines()[0])["preloaded"] is False
