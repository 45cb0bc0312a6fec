"""ckptcompat.store: commit, manifest, listing, best, verify, order independence."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from pathlib import Path

import pytest

from _store_helpers import commit, payload, store_names
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    CorruptCheckpointError,
    StoreWriteError,
    UnsupportedFormatError,
)
from ckptcompat.state import Producer
from ckptcompat.store import CheckpointStore, Retention, verify


def test_commit_lists_every_file_with_size_and_sha256(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        entry = commit(store, 3, 0, global_step=300, metrics={"val_loss": 0.25, "accuracy": 0.9},
                       format="keras_zip", producer={"keras": "3.15.1", "tensorflow": "2.21.0"})
    assert entry.name == "ckpt-000001-e0003-s000000"
    assert entry.path == tmp_path / entry.name
    doc = json.loads((tmp_path / "ckptcompat.json").read_text())
    assert doc["schema"] == 1 and doc["ckptcompat_version"] == "0.1.0"
    [saved] = doc["checkpoints"]
    assert (saved["id"], saved["epoch"], saved["step"], saved["global_step"]) == (1, 3, 0, 300)
    assert saved["metrics"] == {"val_loss": 0.25, "accuracy": 0.9}
    assert saved["format"] == "keras_zip"
    assert saved["producer"] == {"framework": None,
                                 "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"}}
    assert saved["time"].endswith("Z") and saved["time"][:2] == "20"
    expected = {rel: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for rel, data in payload(3).items()}
    assert saved["files"] == expected
    for rel, data in payload(3).items():
        assert (tmp_path / entry.name / rel).read_bytes() == data
    assert store_names(tmp_path) == ["ckpt-000001-e0003-s000000", "ckptcompat.json"]


def test_list_latest_get_and_reader_view(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        first = commit(store, 1)
        second = commit(store, 2)
        mid = commit(store, 2, 50)
        assert store.latest() == mid
    reader = CheckpointStore(tmp_path)
    assert [e.id for e in reader.checkpoints()] == [first.id, second.id, mid.id]
    assert reader.latest() == mid
    assert reader.get(second.id) == second
    assert reader.get(second.name) == second
    with pytest.raises(CheckpointNotFoundError):
        reader.get(99)
    assert reader.latest_good() == mid
    assert reader.good_checkpoints() == [mid, second, first]


def test_ordering_is_epoch_step_then_commit_order(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        late = commit(store, 5)
        early = commit(store, 3)          # e.g. re-trained from an earlier checkpoint
        again = commit(store, 3)
    entries = CheckpointStore(tmp_path).checkpoints()
    assert [e.id for e in entries] == [early.id, again.id, late.id]
    assert CheckpointStore(tmp_path).latest() == late


def test_best_by_monitor_and_mode_and_best_tag(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True, monitor="val_loss", mode="min") as store:
        a = commit(store, 1, metrics={"val_loss": 0.5, "val_acc": 0.70})
        b = commit(store, 2, metrics={"val_loss": 0.2, "val_acc": 0.60})
        c = commit(store, 3, metrics={"val_loss": float("nan"), "val_acc": 0.90})
        d = commit(store, 4, metrics={"val_loss": 0.2, "val_acc": 0.80})
    reader = CheckpointStore(tmp_path)
    assert reader.monitor == "val_loss" and reader.mode == "min"   # recorded in the manifest
    assert reader.best() == reader.get(b.id)                        # ties go to the earlier
    assert reader.best("val_accuracy", "max").id == c.id           # spelling variant matched
    assert reader.best("val_acc", "min").id == b.id
    assert reader.best("missing_metric") is None
    tags = {e.id: e.tags for e in reader.checkpoints()}
    assert tags == {a.id: (), b.id: ("best",), c.id: (), d.id: ()}
    assert math.isnan(reader.get(c.id).metrics["val_loss"])
    doc = json.loads((tmp_path / "ckptcompat.json").read_text())   # standard JSON, no NaN
    assert doc["checkpoints"][2]["metrics"]["val_loss"] == "nan"
    with pytest.raises(ValueError):
        CheckpointStore(tmp_path).best(mode="sideways")


def test_best_needs_a_metric(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        commit(store, 1, metrics={"loss": 1.0})
    with pytest.raises(ValueError, match="needs a metric"):
        CheckpointStore(tmp_path).best()
    assert CheckpointStore(tmp_path).best("loss").epoch == 1


def test_best_verified_skips_a_damaged_best(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True, monitor="loss") as store:
        a = commit(store, 1, metrics={"loss": 0.3})
        b = commit(store, 2, metrics={"loss": 0.1})
        commit(store, 3, metrics={"loss": 0.5})
    target = b.path / "model.weights.h5"
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    reader = CheckpointStore(tmp_path)
    assert reader.best().id == b.id
    assert reader.best(verified=True).id == a.id


def test_producer_object_gives_framework_versions_and_format(tmp_path: Path) -> None:
    producer = Producer(framework="tf.keras", versions={"keras": "2.15.0", "tensorflow": "2.15.1"},
                        format="keras_h5")
    with CheckpointStore(tmp_path, write=True) as store:
        entry = commit(store, 1, producer=producer)
    assert (entry.framework, dict(entry.versions), entry.format) == (
        "tf.keras", {"keras": "2.15.0", "tensorflow": "2.15.1"}, "keras_h5")
    assert CheckpointStore(tmp_path).get(entry.id) == entry


def test_exception_inside_begin_commits_nothing_and_leaves_no_temp(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        kept = commit(store, 1)
        before = (tmp_path / "ckptcompat.json").read_bytes()
        with pytest.raises(KeyError, match="boom"):
            with store.begin(epoch=2) as pending:
                (pending.path / "model.weights.h5").write_bytes(b"half")
                raise KeyError("boom")
        assert not pending.path.exists()
        assert store.checkpoints() == [kept]
        assert (tmp_path / "ckptcompat.json").read_bytes() == before
        assert [n for n in store_names(tmp_path) if n.startswith(".tmp-")] == []
        assert [n for n in store_names(tmp_path) if n.startswith("ckpt-")] == [kept.name]
        later = commit(store, 2)               # the store is still usable
    assert later.id == kept.id + 1
    assert verify(tmp_path).ok


def test_empty_pending_is_refused_and_removed(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        with pytest.raises(StoreWriteError, match="nothing was written"):
            with store.begin(epoch=1) as pending:
                pass
        assert not pending.path.exists()
        assert store.checkpoints() == []


def test_symlink_in_pending_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"data")
    store_dir = tmp_path / "store"
    with CheckpointStore(store_dir, write=True) as store:
        with pytest.raises(StoreWriteError, match="symbolic link"):
            with store.begin(epoch=1) as pending:
                (pending.path / "model.h5").symlink_to(outside)
        assert store.checkpoints() == [] and not pending.path.exists()


def test_read_only_store_refuses_begin_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        CheckpointStore(tmp_path / "absent")
    reader = CheckpointStore(tmp_path)
    assert reader.checkpoints() == [] and reader.latest() is None and reader.latest_good() is None
    with pytest.raises(CkptCompatError, match="not open for writing"):
        reader.begin(epoch=1)
    assert not (tmp_path / ".ckptcompat.lock").exists()


def test_one_pending_at_a_time_and_bad_arguments(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        pending = store.begin(epoch=1)
        with pytest.raises(CkptCompatError, match="already being written"):
            store.begin(epoch=2)
        pending.abort()
        assert not pending.path.exists()
        for bad in ({"epoch": -1}, {"epoch": 1.5}, {"epoch": True},
                    {"epoch": 1, "metrics": {"loss": "low"}}):
            with pytest.raises(ValueError):
                store.begin(**bad)
        assert [n for n in store_names(tmp_path) if n.startswith(".tmp-")] == []
    with pytest.raises(ValueError, match="mode"):
        CheckpointStore(tmp_path, mode="best")
    with pytest.raises(ValueError, match="monitor"):
        CheckpointStore(tmp_path, write=True, retention=Retention(keep_best=1))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-type", "path-escape",
                                    "empty"])
def test_corrupt_manifest_raises_with_backup_hint(tmp_path: Path, damage: str) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        commit(store, 1)
        commit(store, 2)
    manifest = tmp_path / "ckptcompat.json"
    text = manifest.read_text()
    assert json.loads((tmp_path / "ckptcompat.json.bak").read_text())["checkpoints"][0]["epoch"] == 1
    damaged = {
        "garbage": "\x00\x01not json",
        "truncated": text[: len(text) // 2],
        "wrong-type": text.replace('"epoch": 2', '"epoch": "two"'),
        "path-escape": text.replace('"model.weights.h5"', '"../../etc/passwd"'),
        "empty": "",
    }[damage]
    manifest.write_text(damaged)
    reader = CheckpointStore(tmp_path)
    for call in (reader.checkpoints, reader.latest, reader.latest_good):
        with pytest.raises(CorruptCheckpointError) as info:
            call()
        assert "ckptcompat.json.bak" in str(info.value) and "lists 1 checkpoint" in str(info.value)
    with pytest.raises(CorruptCheckpointError):
        CheckpointStore(tmp_path, write=True)
    assert not (tmp_path / ".ckptcompat.lock").exists()     # lock released on the failure
    report = verify(tmp_path)
    assert not report.ok and "manifest-corrupt" in report.kinds()
    assert any("ckptcompat.json.bak" in s for s in report.suggestions)


def test_newer_schema_is_unsupported(tmp_path: Path) -> None:
    (tmp_path / "ckptcompat.json").write_text('{"schema": 2, "checkpoints": []}')
    with pytest.raises(UnsupportedFormatError, match="upgrade ckptcompat"):
        CheckpointStore(tmp_path).checkpoints()


def test_unlisted_directory_is_ignored_and_reported(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True) as store:
        entry = commit(store, 1)
    foreign = tmp_path / "ckpt-000007-e0009-s000000"       # e.g. rename done, manifest not
    foreign.mkdir()
    (foreign / "model.weights.h5").write_bytes(b"x")
    assert CheckpointStore(tmp_path).checkpoints() == [entry]
    report = verify(tmp_path)
    assert [(p.kind, p.path) for p in report.problems] == [("unlisted-dir", foreign.name)]
    with CheckpointStore(tmp_path, write=True) as store:     # ids never collide with it
        assert commit(store, 2).id == 8
    assert foreign.exists()


def test_callback_aux_folder_is_not_a_problem(tmp_path: Path) -> None:
    """``.aux-<name>``: a callback's own store inside the run's store (EarlyStopping's best weights)."""
    with CheckpointStore(tmp_path, write=True) as store:
        entry = commit(store, 1)
    with CheckpointStore(tmp_path / ".aux-early_stopping-val_loss", write=True) as aux:
        commit(aux, 1)
    (tmp_path / "elsewhere").mkdir()
    assert CheckpointStore(tmp_path).checkpoints() == [entry]
    assert [(p.kind, p.path) for p in verify(tmp_path).problems] == [("unlisted-dir", "elsewhere")]


class _Listing(list):  # type: ignore[type-arg]
    """A list usable like os.scandir's iterator (``with os.scandir(...) as it``)."""

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _shuffled(real, mode):  # type: ignore[no-untyped-def]
    def listing(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(*args, **kwargs)
        if hasattr(result, "__enter__"):
            with result as it:
                items = list(it)
        else:
            items = list(result)
        if mode == "reverse":
            items.sort(key=lambda x: x if isinstance(x, str) else x.name, reverse=True)
        else:
            random.Random(len(items)).shuffle(items)
        return _Listing(items)
    return listing


def _observable(directory: Path) -> tuple:  # type: ignore[type-arg]
    reader = CheckpointStore(directory)
    report = reader.verify()
    return ([e.name for e in reader.checkpoints()], reader.latest().name,
            reader.latest_good().name, [e.name for e in reader.good_checkpoints()],
            reader.best("loss", "min").name, [str(p) for p in report.problems])


@pytest.mark.parametrize("mode", ["reverse", "shuffle"])
def test_results_do_not_depend_on_listing_order(tmp_path: Path, mode: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def build(directory: Path) -> None:
        with CheckpointStore(directory, write=True, retention=Retention(keep_last=3),
                             monitor="loss") as store:
            for epoch, loss in [(9, 0.3), (10, 0.2), (2, 0.4), (11, 0.5), (10, 0.25), (12, 0.6)]:
                commit(store, epoch, metrics={"loss": loss})
        bad = directory / CheckpointStore(directory).latest().name / "state" / "state.json"
        bad.write_bytes(bad.read_bytes()[:-1] + b"!")
        (directory / ".tmp-ckpt-000099-e0001-s000000-dead").mkdir()

    build(tmp_path / "plain")
    expected = _observable(tmp_path / "plain")
    assert expected[0] == ["ckpt-000002-e0010-s000000", "ckpt-000005-e0010-s000000",
                           "ckpt-000004-e0011-s000000", "ckpt-000006-e0012-s000000"]
    assert expected[2] == "ckpt-000004-e0011-s000000"
    monkeypatch.setattr(os, "listdir", _shuffled(os.listdir, mode))
    monkeypatch.setattr(os, "scandir", _shuffled(os.scandir, mode))
    build(tmp_path / "patched")
    assert _observable(tmp_path / "patched") == expected
    assert _observable(tmp_path / "plain") == expected
