"""ckptcompat.store under failure: SIGKILL mid-write, damaged files, disk full."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _store_helpers import commit, payload, store_names
from ckptcompat import store as store_module
from ckptcompat.errors import CkptCompatError, StoreWriteError
from ckptcompat.store import CheckpointStore, Retention, verify

ROOT = Path(__file__).resolve().parents[2]

_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from ckptcompat.store import CheckpointStore
    store = CheckpointStore(sys.argv[1], write=True)
    with store.begin(epoch=3, metrics={"loss": 0.1}) as pending:
        (pending.path / "model.weights.h5").write_bytes(b"w" * 4096)   # half of the files
        print(pending.path.name, flush=True)
        time.sleep(120)
        (pending.path / "state.json").write_bytes(b"{}")
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_temp_that_readers_ignore_and_writer_cleans(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        good = commit(store, 1)
        commit(store, 2)
    manifest_before = (tmp_path / "ckptcompat.json").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        temp_name = proc.stdout.readline().strip() if proc.stdout else ""
    finally:
        proc.kill()                       # SIGKILL: no finally, no atexit
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert temp_name.startswith(".tmp-ckpt-000003-e0003-s000000-")
    assert (tmp_path / temp_name / "model.weights.h5").exists()
    assert (tmp_path / ".ckptcompat.lock").exists()

    reader = CheckpointStore(tmp_path)    # readers: the half-written checkpoint does not exist
    assert [e.epoch for e in reader.checkpoints()] == [1, 2]
    assert reader.latest_good().epoch == 2
    assert (tmp_path / "ckptcompat.json").read_bytes() == manifest_before
    report = verify(tmp_path)
    assert report.good == (good.id, good.id + 1)
    assert sorted(p.kind for p in report.problems) == ["stale-lock", "temp-leftover"]
    assert [p.path for p in report.problems if p.kind == "temp-leftover"] == [temp_name]

    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        with CheckpointStore(tmp_path, write=True) as store:   # takes over the stale lock
            assert not (tmp_path / temp_name).exists()
            again = commit(store, 3)
    assert any("stale store lock" in r.getMessage() for r in caplog.records)
    assert any(temp_name in r.getMessage() for r in caplog.records)
    assert again.id == 3                   # the killed attempt was never committed
    assert verify(tmp_path).ok
    assert store_names(tmp_path) == ["ckpt-000001-e0001-s000000", "ckpt-000002-e0002-s000000",
                                     again.name, "ckptcompat.json", "ckptcompat.json.bak"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("rel", sorted(payload(0)))
@pytest.mark.parametrize("damage, kind", [(_truncate, "size-mismatch"),
                                          (_flip, "sha256-mismatch"),
                                          (_delete, "missing-file")])
def test_damaged_newest_falls_back_to_previous(tmp_path: Path, rel: str, damage, kind: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        first = commit(store, 1)
        second = commit(store, 2)
        newest = commit(store, 3)
    damage(newest.path / rel)
    reader = CheckpointStore(tmp_path)
    assert reader.latest() == newest                        # the manifest still lists it
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        assert reader.latest_good() == second
    assert any(newest.name in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert reader.good_checkpoints() == [second, first]
    report = reader.verify()
    assert [(p.kind, p.path, p.checkpoint) for p in report.problems] == [
        (kind, f"{newest.name}/{rel}", newest.id)]
    assert report.good == (first.id, second.id) and report.damaged == (newest.id,)
    assert not report.ok and kind in str(report)


def test_shallow_verify_sees_size_but_not_a_flipped_byte(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        commit(store, 1)
        newest = commit(store, 2)
    _flip(newest.path / "model.weights.h5")
    assert verify(tmp_path, deep=False).ok
    assert CheckpointStore(tmp_path).latest_good(deep=False) == newest
    assert verify(tmp_path).kinds() == {"sha256-mismatch"}
    _truncate(newest.path / "model.weights.h5")
    assert verify(tmp_path, deep=False).kinds() == {"size-mismatch"}


def test_missing_checkpoint_dir_and_extra_file_are_reported(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        first = commit(store, 1)
        second = commit(store, 2)
    (first.path / "extra.txt").write_text("added later")
    os.rename(second.path, tmp_path / "elsewhere")
    report = verify(tmp_path)
    assert [(p.kind, p.path) for p in report.problems] == [
        ("unlisted-file", f"{first.name}/extra.txt"), ("missing-dir", second.name),
        ("unlisted-dir", "elsewhere")]
    assert report.good == (first.id,) and report.damaged == (second.id,)
    assert CheckpointStore(tmp_path).latest_good() == first


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".ckptcompat.lock"}


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_inside_pending_is_typed_and_changes_nothing(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        commit(store, 1)
        commit(store, 2)
        before = _snapshot(tmp_path)
        with pytest.raises(StoreWriteError) as info:
            with store.begin(epoch=3) as pending:
                (pending.path / "model.weights.h5").write_bytes(b"partial")
                _enospc()                        # the framework's writer hits a full disk
        assert info.value.errno == errno.ENOSPC
        assert isinstance(info.value, OSError) and isinstance(info.value, CkptCompatError)
        assert isinstance(info.value.__cause__, OSError)
        assert "disk" in str(info.value) and "No space left" in str(info.value)
        assert not pending.path.exists()
        assert _snapshot(tmp_path) == before
        assert [n for n in store_names(tmp_path) if n.startswith(".tmp-")] == []
    assert verify(tmp_path).ok


@pytest.mark.parametrize("where", ["fsync", "rename", "manifest", "backup"])
def test_io_error_during_commit_changes_nothing(tmp_path: Path, where: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with CheckpointStore(tmp_path, write=True, monitor="loss",
                         retention=Retention(keep_last=1)) as store:
        commit(store, 1, metrics={"loss": 0.5})
        commit(store, 2, metrics={"loss": 0.9})
        before = _snapshot(tmp_path)
        real_replace, real_rename = os.replace, os.rename
        if where == "fsync":
            monkeypatch.setattr(os, "fsync", _enospc)
        elif where == "rename":
            def rename(src, dst):  # type: ignore[no-untyped-def]
                if Path(src).name.startswith(".tmp-ckpt-"):
                    _enospc()
                return real_rename(src, dst)
            monkeypatch.setattr(os, "rename", rename)
        else:
            target = "ckptcompat.json" if where == "manifest" else "ckptcompat.json.bak"

            def replace(src, dst):  # type: ignore[no-untyped-def]
                if Path(dst).name == target:
                    _enospc()
                return real_replace(src, dst)
            monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(StoreWriteError) as info:
            commit(store, 3, metrics={"loss": 0.1})
        monkeypatch.undo()
        assert info.value.errno == errno.ENOSPC
        assert _snapshot(tmp_path) == before
        assert [n for n in store_names(tmp_path) if n.startswith((".tmp-", "ckpt-000003"))] == []
        assert [e.epoch for e in store.checkpoints()] == [1, 2]
        commit(store, 4, metrics={"loss": 0.7})   # the store works again once space is back
    assert [e.epoch for e in CheckpointStore(tmp_path).checkpoints()] == [1, 4]
    assert verify(tmp_path).ok


def test_failed_prune_keeps_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    with CheckpointStore(tmp_path, write=True, retention=Retention(keep_last=1)) as store:
        commit(store, 1)
        calls = {"n": 0}
        real = store_module.save_manifest

        def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 2:                  # the commit's save works, the prune's fails
                _enospc()
            return real(*args, **kwargs)
        monkeypatch.setattr(store_module, "save_manifest", flaky)
        with caplog.at_level(logging.WARNING, logger="ckptcompat"):
            newest = commit(store, 2)
        assert any("pruning skipped" in r.getMessage() for r in caplog.records)
        assert [e.epoch for e in store.checkpoints()] == [1, 2]
        assert store.latest() == newest
        monkeypatch.undo()
        commit(store, 3)
    assert [e.epoch for e in CheckpointStore(tmp_path).checkpoints()] == [3]
    assert verify(tmp_path).ok
