"""``ckptcompat demo``: the cut point, the one-line error without TensorFlow, and (framework
venvs) a real run: SIGKILL mid-epoch, resume, bitwise-equal weights, exit code 0."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.cli import demo
from ckptcompat.cli.commands import main


def test_cut_point_is_mid_epoch_and_between_checkpoints() -> None:
    from ckptcompat.cli import demo_child as child

    assert demo.BATCHES_PER_EPOCH == child.N_TRAIN // child.BATCH_SIZE
    assert demo.SAVE_FREQ == child.SAVE_FREQ
    for epochs in range(1, 9):
        step = demo.cut_point(epochs)
        epoch, batch = divmod(step, demo.BATCHES_PER_EPOCH)
        assert 0 < batch < demo.BATCHES_PER_EPOCH          # never at an epoch boundary
        assert step % demo.SAVE_FREQ != 0                    # the resume has batches to redo
        assert step > demo.SAVE_FREQ                         # at least one checkpoint before the cut
        assert epoch == (epochs // 2 if epochs > 1 else 0)


def test_generated_images_are_a_function_of_the_seed() -> None:
    from ckptcompat.cli.demo_child import make_images

    a, b = make_images(30, 5), make_images(30, 5)
    assert a[0].dtype == np.float32 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert set(np.unique(a[1])) <= {0, 1, 2}
    assert not np.array_equal(a[0], make_images(30, 6)[0])


def test_without_tensorflow_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    assert main(["demo", "--workdir", str(tmp_path / "w")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("ckptcompat demo: error:") and "TensorFlow" in err and "pip install" in err


def test_no_framework_env_subprocess(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here; the framework test below runs the demo")
    done = subprocess.run([sys.executable, "-m", "ckptcompat", "demo", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "TensorFlow" in done.stderr


def test_bad_epochs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--workdir", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs 0" in capsys.readouterr().err


@pytest.mark.framework
@pytest.mark.slow
def test_demo_resumes_bitwise(tmp_path: Path, keras: Any) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "ckptcompat", "demo", "--workdir", str(tmp_path),
                           "--epochs", "2", "--seed", "3"], capture_output=True, text=True, timeout=400,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "weights bitwise-equal: yes" in done.stdout
    cut = re.search(r"SIGKILL at epoch (\d+), batch (\d+)", done.stdout)
    assert cut and (int(cut[1]), int(cut[2])) == (2, 6)      # cut_point(2) = 9 + 6 = global 15
    resumed = re.search(r"resumed from +epoch (\d+), batch (\d+) \(global (\d+)\)", done.stdout)
    assert resumed and resumed.groups() == ("2", "3", "12")  # the newest checkpoint before the cut
    # the verdict is really computed: the files it compared are equal
    with np.load(tmp_path / "interrupted" / "final.npz") as a, np.load(tmp_path / "straight" / "final.npz") as b:
        assert a.files == b.files and len(a.files) == 6
        for name in a.files:
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name])
