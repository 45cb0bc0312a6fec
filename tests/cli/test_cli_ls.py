"""``ckptcompat ls``: the checkpoint table of stores and foreign folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ckptcompat.cli.commands import EXIT_ERROR, EXIT_OK, main

from _cli_helpers import MODEL_H5, make_store, one_error_line


def _rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "EPOCH", "STEP", "FORMAT", "STATUS", "MARK", "METRICS"]
    return [line.split() for line in lines[1:] if line and not line[0].isspace() and "checkpoint(s)" not in line]


def test_store_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    assert main(["ls", str(store)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    assert _rows(out) == [
        ["1", "ckpt-000001-e0001-s000000", "1", "0", "keras_h5", "ok", "-", "loss=0.9", "val_loss=0.8"],
        ["2", "ckpt-000002-e0002-s000000", "2", "0", "keras_h5", "ok", "best", "loss=0.7", "val_loss=0.5"],
        ["3", "ckpt-000003-e0003-s000000", "3", "0", "keras_h5", "ok", "latest", "loss=0.6", "val_loss=0.55"],
    ]
    assert out.splitlines()[-1] == "3 checkpoint(s), 0 damaged"


def test_store_monitor_option_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    assert main(["ls", str(store), "--monitor", "loss", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["epoch"], r["latest"], r["best"], r["status"]) for r in doc] == [
        ("1", 1, False, False, "ok"), ("2", 2, False, False, "ok"), ("3", 3, True, True, "ok")]
    assert doc[0]["metrics"] == {"loss": 0.9, "val_loss": 0.8} and doc[0]["format"] == "keras_h5"


def test_damaged_store_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    victim = store / "ckpt-000003-e0003-s000000" / "model.h5"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert main(["ls", str(store)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    rows = _rows(out)
    assert [r[5] for r in rows] == ["ok", "ok", "damaged"]
    assert rows[1][6] == "latest,best"                      # latest falls back to the newest intact one
    assert "3 checkpoint(s), 1 damaged" in out
    assert "  damaged ckpt-000003-e0003-s000000: files do not match the manifest" in out


def test_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("model-02-0.61.h5", "model-10-0.52.h5", "model-01-0.70.h5"):
        shutil.copy(MODEL_H5, folder / name)
    (folder / "model-11-0.50.h5").write_bytes(b"")          # interrupted save
    assert main(["ls", str(folder), "--pattern", "model-{epoch:02d}-{val_loss:.2f}.h5"]) == EXIT_OK
    rows = _rows(capsys.readouterr().out)
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        ("model-01-0.70.h5", "1", "keras_h5", "ok", "-"),
        ("model-02-0.61.h5", "2", "keras_h5", "ok", "-"),
        ("model-10-0.52.h5", "10", "keras_h5", "ok", "latest,best"),
        ("model-11-0.50.h5", "11", "-", "damaged", "-"),
    ]
    assert rows[0][7] == "val_loss=0.7"


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", str(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"no checkpoints in {tmp_path}"


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", str(tmp_path / "absent")]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and str(tmp_path / "absent") in one_error_line(err, "ls")
    notes = tmp_path / "notes.txt"
    notes.write_text("no weights here\n")
    assert main(["ls", str(notes)]) == EXIT_ERROR
    assert "not a checkpoint format" in one_error_line(capsys.readouterr().err, "ls")
    store = make_store(tmp_path / "run")
    (store / "ckptcompat.json").write_text("{broken")
    assert main(["ls", str(store)]) == EXIT_ERROR
    assert "ckptcompat.json.bak" in one_error_line(capsys.readouterr().err, "ls")
    assert main(["ls", str(tmp_path / "run"), "--monitor", "weird_score"]) == EXIT_ERROR


def test_nested_stores_with_their_latest_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Workflow 1's layout: a store per stage in a subfolder; hidden folders are not searched."""
    top = tmp_path / "checkpoints"
    make_store(top / "training" / "state")
    make_store(top / "finetune" / "state", [(1, 0.5, 0.4)])
    make_store(top / ".hidden" / "state")
    shutil.copy(MODEL_H5, top / "training" / "model-02-0.61-0.55.h5")
    assert main(["ls", str(top)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"no checkpoints in {top} itself",
                         "2 ckptcompat store(s) in subfolders (ckptcompat ls <store> lists one):"]
    assert lines[2].split() == ["STORE", "CHECKPOINTS", "LATEST", "EPOCH", "STEP", "STATUS", "METRICS"]
    assert [line.split() for line in lines[3:]] == [
        ["finetune/state/", "1", "1", "0", "ok", "loss=0.5", "val_loss=0.4"],
        ["training/state/", "3", "3", "0", "ok", "loss=0.6", "val_loss=0.55"]]
    assert main(["ls", str(top / "training"), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["name"], r["epoch"], r["checkpoints"]) for r in doc] == [
        ("checkpoint", "model-02-0.61-0.55.h5", 2, None), ("store", "state/", 3, 3)]
    assert main(["ls", str(top / "training" / "state")]) == EXIT_OK     # a store: no nested section
    assert "subfolders" not in capsys.readouterr().out


def test_metrics_from_file_names_without_a_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("weights-improvement-05-0.42.hdf5", "model.03-0.51.h5", "model-ep04-val_acc0.91.h5"):
        shutil.copy(MODEL_H5, folder / name)
    assert main(["ls", str(folder)]) == EXIT_OK
    out = capsys.readouterr().out
    assert {r[1]: (r[2], r[7:]) for r in _rows(out)} == {
        "model.03-0.51.h5": ("3", ["?=0.51"]),
        "model-ep04-val_acc0.91.h5": ("4", ["val_acc=0.91"]),
        "weights-improvement-05-0.42.hdf5": ("5", ["?=0.42"])}
    assert "?=: a number in the file name without a metric name (--pattern names it)" in out
    assert main(["ls", str(folder), "--pattern", "model.{epoch:02d}-{val_loss:.2f}.h5"]) == EXIT_OK
    rows = {r[1]: r[7:] for r in _rows(capsys.readouterr().out)}
    assert rows["model.03-0.51.h5"] == ["val_loss=0.51"]
    assert main(["ls", str(folder), "--json"]) == EXIT_OK
    doc = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert doc["weights-improvement-05-0.42.hdf5"]["unnamed_values"] == [0.42]
    assert doc["model-ep04-val_acc0.91.h5"]["metrics"] == {"val_acc": 0.91}
