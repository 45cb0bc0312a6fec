"""``ckptcompat migrate``: summary, progress bar, --force, and error lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _cli_helpers import FIXTURES, MODEL_H5, one_error_line
from ckptcompat.cli.commands import EXIT_ERROR, EXIT_OK, main
from ckptcompat.formats import registry


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "model.h5"
    path.parent.mkdir()
    shutil.copy2(MODEL_H5, path)
    return path


def test_summary(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    dst = tmp_path / "out" / "model.keras"
    assert main(["migrate", str(src), str(dst), "--to", "keras3"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""                                        # not a terminal and no --progress: no bar
    assert out.splitlines() == [
        f"source     {src} (keras_h5)",
        f"written    {dst} (keras_zip, --to keras3)",
        "tensors    12 (4 weight(s), 8 optimizer slot(s))",
        "optimizer  Adam  iterations=4",
        "epoch      -",
        "verified   yes: every tensor read back bitwise equal"]
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before
    assert registry.detect(dst) == "keras_zip"


def test_progress_bar(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", str(src), str(tmp_path / "m.ckpt"), "--to", "tf1", "--progress"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "read   [" in err and "write  [" in err
    assert err.rstrip().endswith(f"verify [{'#' * 30}] 12/12")
    assert "verified   yes" in out


def test_force_and_backup(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "model.h5"
    dst.write_bytes(b"old bytes")
    assert main(["migrate", str(src), str(dst), "--to", "h5"]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and "--force" in one_error_line(err, "migrate")
    assert dst.read_bytes() == b"old bytes"
    assert main(["migrate", str(src), str(dst), "--to", "h5", "--force"]) == EXIT_OK
    assert f"backup     {dst}.bak" in capsys.readouterr().out.splitlines()
    assert (tmp_path / "model.h5.bak").read_bytes() == b"old bytes"
    assert registry.read(dst).optimizer.iterations == 4


def test_no_optimizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "model.weights.h5"
    shutil.copy(FIXTURES / "tf221-keras3" / "mlp_adam" / "model.weights.h5", src)
    assert main(["migrate", str(src), str(tmp_path / "w.h5"), "--to", "h5"]) == EXIT_ERROR
    assert "--no-optimizer" in one_error_line(capsys.readouterr().err, "migrate")
    assert main(["migrate", str(src), str(tmp_path / "w.h5"), "--to", "h5", "--no-optimizer"]) == EXIT_OK
    assert "optimizer  none" in capsys.readouterr().out.splitlines()


def test_errors(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", str(tmp_path / "absent.h5"), str(tmp_path / "x.keras"), "--to", "keras3"]) == EXIT_ERROR
    assert "absent.h5" in one_error_line(capsys.readouterr().err, "migrate")
    notes = tmp_path / "notes.txt"
    notes.write_text("no weights\n")
    assert main(["migrate", str(notes), str(tmp_path / "x.keras"), "--to", "keras3"]) == EXIT_ERROR
    assert "not a checkpoint format" in one_error_line(capsys.readouterr().err, "migrate")
    assert main(["migrate", str(src), str(tmp_path / "x.h5"), "--to", "keras3"]) == EXIT_ERROR
    assert ".keras or .weights.h5" in one_error_line(capsys.readouterr().err, "migrate")
    bundle = tmp_path / "tf1"
    shutil.copytree(FIXTURES / "tf212" / "tf1_adam" / "tf1", bundle)
    index = bundle / "model.ckpt.index"
    index.write_bytes(index.read_bytes()[:-20])             # damaged: truncated index footer
    assert main(["migrate", str(bundle / "model.ckpt"), str(tmp_path / "y.ckpt"), "--to", "tf1"]) == EXIT_ERROR
    assert "index is damaged" in one_error_line(capsys.readouterr().err, "migrate")
    assert not (tmp_path / "y.ckpt.index").exists()
    with pytest.raises(SystemExit) as info:
        main(["migrate", str(src), str(tmp_path / "z"), "--to", "keras4"])
    assert info.value.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "notes.txt", "tf1"]
