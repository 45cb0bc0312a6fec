"""ckptcompat.store at URLs: memory:// and file:// stores, missing packages, interrupted commits."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _store_helpers import commit, payload
from ckptcompat.errors import InvalidArgumentError, MissingDependencyError, StoreWriteError
from ckptcompat.store import CheckpointStore, Retention

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def url() -> Any:
    """A fresh memory:// store URL; its files are removed afterwards."""
    root = f"/ckptcompat-test-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}/run"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _remote_names(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))


# ------------------------------------------------------------------ missing packages
@pytest.mark.parametrize("call", ["store", "store-read", "resume", "read", "inspect", "ls",
                                  pytest.param("checkpoint", marks=pytest.mark.framework)])
def test_url_without_its_package_is_a_typed_error_and_creates_nothing(
        call: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    import ckptcompat
    from ckptcompat.cli.tables import list_rows

    def checkpoint() -> Any:
        from ckptcompat.callbacks import Checkpoint

        return Checkpoint(target)

    monkeypatch.chdir(tmp_path)
    target = "gs://bucket/run"
    calls = {
        "store": lambda: CheckpointStore(target, write=True),
        "store-read": lambda: CheckpointStore(target),
        "checkpoint": checkpoint,
        "resume": lambda: ckptcompat.resume(target),
        "read": lambda: ckptcompat.read(f"{target}/model.keras"),
        "inspect": lambda: ckptcompat.inspect(f"{target}/model.keras"),
        "ls": lambda: list_rows(target),
    }
    with pytest.raises(MissingDependencyError) as info:
        calls[call]()
    assert "gcsfs" in str(info.value) and "pip install gcsfs" in str(info.value)
    assert isinstance(info.value, ImportError)
    assert list(tmp_path.iterdir()) == []          # no ./gs: folder, nothing at all


def test_path_of_a_mangled_url_is_refused_not_created(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match="pass the URL as a string"):
        CheckpointStore(Path("gs://bucket/run"), write=True)     # pathlib made it gs:/bucket/run
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the store API
def test_memory_store_commit_list_latest_and_retention(url: str) -> None:
    with CheckpointStore(url, write=True, retention=Retention(keep_last=2)) as store:
        for epoch in (1, 2, 3):
            commit(store, epoch, metrics={"loss": 1.0 / epoch})
        assert [e.epoch for e in store.checkpoints()] == [2, 3]
    assert _remote_names(url) == ["ckpt-000002-e0002-s000000", "ckpt-000003-e0003-s000000",
                                  "ckptcompat.json"]       # pruned one deleted, lock released
    reader = CheckpointStore(url)
    assert [e.id for e in reader.checkpoints()] == [2, 3]
    latest = reader.latest_good()
    assert latest is not None and latest.epoch == 3
    for rel, data in payload(3).items():                  # downloaded and checked
        assert (reader.fetch(latest) / rel).read_bytes() == data
    assert reader.best(metric="loss").epoch == 3
    assert reader.verify().ok
    mirror = reader.directory
    assert mirror.is_dir() and not str(mirror).startswith(("memory:", "gs:"))
    reader.close()
    assert not mirror.exists()                             # the local copy is removed


def test_interrupted_upload_leaves_committed_checkpoints_and_hides_the_half_one(
        url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from ckptcompat.store.remote import RemoteFiles

    with CheckpointStore(url, write=True) as store:
        first = commit(store, 1)
        real_open = store.remote.fs.open
        writes: list[str] = []

        def failing_open(path: str, mode: str = "rb", **kwargs: Any) -> Any:
            if "w" in mode and "ckpt-" in path:
                writes.append(path)
                if len(writes) == 2:                       # after the first file of the commit
                    raise OSError(28, "No space left on device")
            return real_open(path, mode, **kwargs)

        monkeypatch.setattr(store.remote.fs, "open", failing_open)
        with pytest.raises(StoreWriteError, match="nothing was committed"):
            commit(store, 2)
        monkeypatch.undo()
        assert [e.id for e in store.checkpoints()] == [first.id]
        third = commit(store, 3)                           # the writer goes on, fresh key
        assert third.id > first.id + 1
    reader = CheckpointStore(url)
    assert [e.epoch for e in reader.good_checkpoints()] == [3, 1]
    assert reader.verify().ok

    # a writer killed mid-upload: files under a key the manifest never listed
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/ckpt-000009-e0009-s000000/model.weights.h5", b"half")
    assert [e.epoch for e in CheckpointStore(url).good_checkpoints()] == [3, 1]   # invisible
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        CheckpointStore(url, write=True).close()          # the next open cleans it up
    assert "ckpt-000009-e0009-s000000" not in _remote_names(url)
    assert any("interrupted commit" in r.getMessage() for r in caplog.records)
    assert RemoteFiles(url).read_manifest() is not None


def test_damaged_remote_file_is_skipped_by_readers(url: str) -> None:
    import ckptcompat.store.local_view as local_view

    with CheckpointStore(url, write=True) as store:
        commit(store, 1)
        second = commit(store, 2)
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/{second.name}/model.weights.h5", b"x" * second.files["model.weights.h5"].size)
    assert CheckpointStore(url).latest_good().epoch == 1
    from ckptcompat.discovery import find_checkpoints
    found = find_checkpoints(url)
    assert [(c.epoch, c.ok) for c in found] == [(1, True), (2, False)]
    local_view.clear()


def test_lazy_copy_downloads_only_what_a_reader_picks(url: str) -> None:
    """resume reads one checkpoint: a lazy copy downloads the manifest, then only the picked
    checkpoint; a damaged pick is found by its sha256 and the next one fetched in turn."""
    import ckptcompat.store.local_view as local_view
    from ckptcompat.discovery import find_checkpoints
    from ckptcompat.resuming.read import _verify_store_entry
    from ckptcompat.errors import CorruptCheckpointError

    with CheckpointStore(url, write=True) as store:
        entries = [commit(store, epoch) for epoch in (1, 2, 3)]
    fs, root = fsspec.core.url_to_fs(url)
    newest = entries[-1]
    fs.pipe_file(f"{root}/{newest.name}/model.weights.h5", b"x" * newest.files["model.weights.h5"].size)
    local_view.clear()
    found = find_checkpoints(url, deep=None)
    mirror = local_view.localize(url, lazy=True)
    assert [c.epoch for c in found] == [1, 2, 3]
    assert not [p for p in mirror.iterdir() if p.name.startswith("ckpt-")]  # nothing downloaded yet
    with pytest.raises(CorruptCheckpointError):
        _verify_store_entry(found[-1])
    _verify_store_entry(found[-2])
    assert sorted(p.name for p in mirror.iterdir() if p.name.startswith("ckpt-")) == \
        [entries[1].name, newest.name]
    find_checkpoints(url)  # a listing that checks every checkpoint downloads the rest
    assert len([p for p in mirror.iterdir() if p.name.startswith("ckpt-")]) == 3
    local_view.clear()


def test_advisory_lock_object_is_written_and_removed(url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    with CheckpointStore(url, write=True):
        holder = json.loads(fs.cat_file(f"{root}/.ckptcompat.lock"))
        assert holder["pid"] == os.getpid()
    assert not fs.exists(f"{root}/.ckptcompat.lock")
    fs.pipe_file(f"{root}/.ckptcompat.lock", b'{"pid": 7, "host": "gone"}')
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        with CheckpointStore(url, write=True) as store:
            commit(store, 1)
    assert any("advisory" in r.getMessage() and "gone" in r.getMessage() for r in caplog.records)


def test_file_url_is_the_local_store(tmp_path: Path) -> None:
    with CheckpointStore(f"file://{tmp_path}/run", write=True) as store:
        assert type(store) is CheckpointStore and store.directory == tmp_path / "run"
        entry = commit(store, 1)
    assert CheckpointStore(tmp_path / "run").latest_good() == entry
    assert CheckpointStore(f"file://{tmp_path}/run").latest_good() == entry
    assert (tmp_path / "run" / entry.name / "model.weights.h5").read_bytes() == \
        payload(1)["model.weights.h5"]


# ------------------------------------------------------------------ training and resume
def _model(keras: Any) -> Any:
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _data() -> Any:
    from ckptcompat.data import ArrayData

    rng = np.random.default_rng(0)
    x = rng.random((40, 4), dtype=np.float32)
    return ArrayData(x, x @ rng.random((4, 1), dtype=np.float32), batch_size=8, seed=2)


@pytest.mark.framework
@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_checkpoint_callback_and_resume_through_a_url(keras: Any, tmp_path: Path, url: str,
                                                      scheme: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ckptcompat
    from ckptcompat.callbacks import Checkpoint

    monkeypatch.chdir(tmp_path)
    target = url if scheme == "memory" else f"file://{tmp_path}/run"
    data, model = _data(), _model(keras)
    model.fit(data, epochs=3, shuffle=False, verbose=0,
              callbacks=[data.tracker(), Checkpoint(target, keep_last=2)])
    expected = [np.array(w) for w in model.get_weights()]
    expected_opt = [np.asarray(v.numpy()) for v in model.optimizer.variables]
    store = CheckpointStore(target)
    assert [(e.epoch, e.step, e.global_step) for e in store.checkpoints()] == [(2, 0, 10),
                                                                                 (3, 0, 15)]
    run = ckptcompat.resume(target, data=_data())
    assert (run.initial_epoch, run.initial_step, run.global_step) == (3, 0, 15)
    if scheme == "memory":  # only the checkpoint resumed from was downloaded
        from ckptcompat.store import local_view

        mirror = local_view.localize(target, lazy=True)
        assert sorted(p.name for p in mirror.iterdir() if p.name.startswith("ckpt-")) == \
            [store.checkpoints()[-1].name]
    got = run.model.get_weights()
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(expected, got))
    got_opt = [np.asarray(v.numpy()) for v in run.model.optimizer.variables]
    assert len(got_opt) == len(expected_opt)
    assert all(np.array_equal(a, b) for a, b in zip(expected_opt, got_opt))
    rows = __import__("ckptcompat.cli.tables", fromlist=["list_rows"]).list_rows(target)
    assert [(r.epoch, r.latest) for r in rows] == [(2, False), (3, True)]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ([] if scheme == "memory" else ["run"])    # no memory: folder here
