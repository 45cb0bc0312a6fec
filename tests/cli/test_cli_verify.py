"""``ckptcompat verify``: checksums plus reading every checkpoint; exit 0 / 1 problems / 2 error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _cli_helpers import FIXTURES, MODEL_H5, make_store, one_error_line
from ckptcompat.cli.commands import EXIT_ERROR, EXIT_OK, EXIT_PROBLEM, main
from ckptcompat.store import CheckpointStore


def _lines(out: str, head: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(head)]


def test_good_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    assert main(["verify", str(store)]) == EXIT_OK
    out, err = capsys.readouterr()
    assert err == ""
    assert _lines(out, "ok") == [
        f"ok       ckpt-00000{i}-e000{i}-s000000/{name}  ({fmt})"
        for i in (1, 2, 3) for name, fmt in (("model.h5", "keras_h5"), ("state.json", "state_json"))]
    assert out.splitlines()[-1] == "6 readable, 0 problem(s)"


def test_checksum_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    victim = store / "ckpt-000002-e0002-s000000" / "model.h5"
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0x01                                     # same size, one bit flipped
    victim.write_bytes(bytes(data))
    assert main(["verify", str(store)]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    problems = _lines(out, "PROBLEM")
    assert problems[0].startswith("PROBLEM  sha256-mismatch: ckpt-000002-e0002-s000000/model.h5 [checkpoint 2]")
    assert len(_lines(out, "ok")) == 4 and "ckpt-000002" not in "".join(_lines(out, "ok"))
    assert out.splitlines()[-1].endswith("problem(s)") and not out.splitlines()[-1].endswith(" 0 problem(s)")


def test_fast_mode_misses_a_flipped_bit_but_reading_does_not(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    state = store / "ckpt-000001-e0001-s000000" / "state.json"
    text = state.read_bytes()
    state.write_bytes(b"X" + text[1:])                     # same size, no longer JSON
    assert main(["verify", str(store), "--fast"]) == EXIT_PROBLEM
    problems = _lines(capsys.readouterr().out, "PROBLEM")
    assert len(problems) == 1
    assert problems[0].startswith("PROBLEM  ckpt-000001-e0001-s000000/state.json: ")


def test_checksums_fine_but_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with CheckpointStore(tmp_path / "run", write=True) as store:
        with store.begin(epoch=1, format="keras_h5") as pending:
            (pending.path / "model.h5").write_bytes(b"this was never HDF5" * 10)
    assert main(["verify", str(tmp_path / "run")]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    problems = _lines(out, "PROBLEM")
    assert len(problems) == 1
    assert problems[0].startswith("PROBLEM  ckpt-000001-e0001-s000000/model.h5: ")
    assert "not a checkpoint format ckptcompat knows" in problems[0]
    assert out.splitlines()[-1] == "0 readable, 1 problem(s)"


def test_damaged_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "run")
    (store / "ckptcompat.json").write_text("{broken")
    assert main(["verify", str(store)]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert _lines(out, "PROBLEM  manifest-corrupt: ckptcompat.json")
    assert any("ckptcompat.json.bak" in line for line in _lines(out, "PROBLEM  suggestion"))


def test_foreign_folder_and_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ckpts"
    shutil.copytree(FIXTURES / "tf212" / "mlp_adam", folder)
    assert main(["verify", str(folder)]) == EXIT_OK
    out = capsys.readouterr().out
    assert sorted(_lines(out, "ok")) == sorted([
        "ok       model.h5  (keras_h5)", "ok       model.keras  (keras_zip)",
        "ok       model.weights.h5  (keras_zip)", "ok       weights.h5  (keras_h5)"])
    shutil.copytree(FIXTURES / "tf212" / "tf1_adam" / "tf1", tmp_path / "tf1")
    assert main(["verify", str(tmp_path / "tf1" / "model.ckpt")]) == EXIT_OK
    assert _lines(capsys.readouterr().out, "ok") == ["ok       model.ckpt  (tf_bundle)"]
    shard = next((tmp_path / "tf1").glob("model.ckpt.data-*"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-4] + bytes(4))
    assert main(["verify", str(tmp_path / "tf1")]) == EXIT_PROBLEM
    problems = _lines(capsys.readouterr().out, "PROBLEM")
    assert len(problems) == 1 and problems[0].startswith("PROBLEM  model.ckpt: ")


def test_single_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "model.h5"
    shutil.copy(MODEL_H5, good)
    assert main(["verify", str(good)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["ok       model.h5  (keras_h5)", "1 readable, 0 problem(s)"]
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert main(["verify", str(empty)]) == EXIT_PROBLEM
    assert _lines(capsys.readouterr().out, "PROBLEM") == [
        "PROBLEM  empty.h5: empty file (0 bytes): the save was interrupted"]


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "absent")]) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == "" and "no such file" in one_error_line(err, "verify")
    notes = tmp_path / "notes.txt"
    notes.write_text("no weights here\n")
    assert main(["verify", str(notes)]) == EXIT_ERROR
    assert "not a checkpoint format" in one_error_line(capsys.readouterr().err, "verify")
    (tmp_path / "empty").mkdir()
    assert main(["verify", str(tmp_path / "empty")]) == EXIT_ERROR
    assert "no checkpoint found" in one_error_line(capsys.readouterr().err, "verify")
