"""``ckptcompat plot``: PNG of the history; one-line errors with exit code 2."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from _cli_helpers import MODEL_H5, make_store, one_error_line
from ckptcompat.cli.commands import EXIT_ERROR, EXIT_OK, main


def test_plot_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    store = make_store(tmp_path / "run")
    out_png = tmp_path / "h.png"
    assert main(["plot", str(store), "-o", str(out_png)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.strip() == f"wrote {out_png}" and err == ""
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_output_in_current_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    store = make_store(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(store), "--metric", "val_loss"]) == EXIT_OK
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    store = make_store(tmp_path / "run")
    assert main(["plot", str(store), "-o", str(tmp_path / "h.png")]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and "pip install 'ckptcompat[plot]'" in one_error_line(err, "plot")
    assert not (tmp_path / "h.png").exists()


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "absent")]) == EXIT_ERROR
    assert "no such file" in one_error_line(capsys.readouterr().err, "plot")
    shutil.copy(MODEL_H5, tmp_path / "model.h5")
    assert main(["plot", str(tmp_path)]) == EXIT_ERROR
    assert "no metric history found" in one_error_line(capsys.readouterr().err, "plot")
    bad = tmp_path / "state.json"
    bad.write_text('{"ckptcompat_state": 1, "trunc')
    assert main(["plot", str(bad)]) == EXIT_ERROR
    assert "no metric history found" in one_error_line(capsys.readouterr().err, "plot")
