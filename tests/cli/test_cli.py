"""The ``ckptcompat`` command: ``inspect`` output, error lines and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ckptcompat.cli.commands import EXIT_ERROR, EXIT_OK, main
from ckptcompat.formats import sidecar
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    sidecar.write(path, TrainingState(
        optimizer=OptimizerState("RMSprop", {"learning_rate": 0.001, "rho": 0.9}, iterations=120),
        progress=Progress(epoch=4, step=0, global_step=120),
        history={"loss": [0.4] * 4, "val_acc": [0.6] * 4},
        producer=Producer("keras", {"keras": "3.15.1", "tensorflow": "2.21.0"}),
        metric_names=("loss", "val_acc")))
    return path


def test_inspect_text(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(state_file)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"path         {state_file}"
    assert "format       state_json" in lines
    assert "epoch        4" in lines
    assert "optimizer    RMSprop  learning_rate=0.001  iterations=120  slots=0" in lines
    assert "metrics      loss, val_acc -> val_accuracy" in lines


def test_inspect_json(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(state_file), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "state_json" and doc["path"] == str(state_file)
    assert doc["progress"]["epoch"] == 4 and doc["optimizer"]["iterations"] == 120
    assert doc["producer"] == {"framework": "keras", "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"}}


def _error_line(err: str, path: Path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ckptcompat inspect: error: ") and str(path) in lines[0]
    assert "Hint: " in lines[0]
    return lines[0]


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.h5"
    assert main(["inspect", str(missing)]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    assert "no such file" in _error_line(err, missing)


def test_wrong_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not weights\n")
    assert main(["inspect", str(path)]) == EXIT_ERROR
    assert "not a checkpoint format" in _error_line(capsys.readouterr().err, path)


def test_damaged_file(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    assert main(["inspect", str(state_file)]) == EXIT_ERROR
    assert "not valid JSON" in _error_line(capsys.readouterr().err, state_file)


def test_unsafe_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"epoch": 1, "x": Evil()}))
    assert main(["inspect", str(path)]) == EXIT_ERROR
    assert f"{os.system.__module__}.system" in _error_line(capsys.readouterr().err, path)


@pytest.mark.parametrize("before, after", [(["-v"], []), ([], ["--verbose"])])
def test_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 before: list[str], after: list[str]) -> None:
    missing = tmp_path / "nope.h5"
    args = [*before, "inspect", str(missing), *after]
    assert main(args) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "CheckpointNotFoundError" in err
    assert err.rstrip().splitlines()[-1].startswith("ckptcompat inspect: error: ")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    assert info.value.code == 2


def _console_script() -> str:
    script = Path(sys.executable).with_name("ckptcompat")
    if script.exists():
        return str(script)
    found = shutil.which("ckptcompat")
    if found is None:
        pytest.skip("the ckptcompat console script is not installed in this environment")
    return found


def test_installed_console_script(state_file: Path, tmp_path: Path) -> None:
    script = _console_script()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    ok = subprocess.run([script, "inspect", str(state_file), "--json"], capture_output=True, text=True,
                        env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["progress"]["global_step"] == 120
    bad = subprocess.run([script, "inspect", str(tmp_path / "absent.keras")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    _error_line(bad.stderr, tmp_path / "absent.keras")
