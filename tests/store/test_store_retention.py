"""ckptcompat.store: retention rules (and the never-prune guarantees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _store_helpers import commit
from ckptcompat.store import CheckpointStore, Retention, verify

LOSSES = [0.9, 0.4, 0.7, 0.2, 0.6, 0.5, 0.8, 0.3]   # epoch e+1 -> loss; best is epoch 4


def _run(directory: Path, retention: Retention, *, monitor: str | None = "loss",
         mode: str = "min", losses: list[float] = LOSSES) -> list[int]:
    with CheckpointStore(directory, write=True, retention=retention, monitor=monitor,
                         mode=mode) as store:
        for epoch, loss in enumerate(losses, start=1):
            commit(store, epoch, metrics={"loss": loss})
    kept = [e.epoch for e in CheckpointStore(directory).checkpoints()]
    on_disk = sorted(p.name for p in directory.iterdir() if p.name.startswith("ckpt-"))
    assert on_disk == [e.name for e in CheckpointStore(directory).checkpoints()]
    assert verify(directory).ok
    return kept


@pytest.mark.parametrize("retention, monitor, expected", [
    (Retention(), "loss", [1, 2, 3, 4, 5, 6, 7, 8]),                    # no rule: keep all
    (Retention(keep_last=2), "loss", [4, 7, 8]),                        # + the best (4)
    (Retention(keep_last=2), None, [7, 8]),                             # no monitor: no best
    (Retention(keep_last=1), None, [8]),
    (Retention(keep_best=2), "loss", [4, 8]),      # best two are 4 (0.2) and 8 (0.3)
    (Retention(keep_best=3), "loss", [2, 4, 8]),
    (Retention(keep_best=1, monitor="loss", mode="max"), None, [1, 8]),
    (Retention(keep_every_n_epochs=3), None, [3, 6, 8]),                # + the newest
    (Retention(keep_last=1, keep_every_n_epochs=4), "loss", [4, 8]),
    (Retention(keep_last=2, keep_best=1, keep_every_n_epochs=5), "loss", [4, 5, 7, 8]),
])
def test_retention_rules(tmp_path: Path, retention: Retention, monitor: str | None,
                         expected: list[int]) -> None:
    assert _run(tmp_path, retention, monitor=monitor) == expected


def test_newest_is_kept_even_when_worst(tmp_path: Path) -> None:
    kept = _run(tmp_path, Retention(keep_best=1), losses=[0.5, 0.1, 0.9])
    assert kept == [2, 3]


def test_best_is_kept_even_outside_keep_last(tmp_path: Path) -> None:
    kept = _run(tmp_path, Retention(keep_last=1), mode="max", losses=[0.1, 0.9, 0.2, 0.3])
    assert kept == [2, 4]
    assert CheckpointStore(tmp_path).best().epoch == 2
    assert CheckpointStore(tmp_path).best().tags == ("best",)


def test_every_n_epochs_keeps_the_epoch_boundary_checkpoint(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True,
                         retention=Retention(keep_last=1, keep_every_n_epochs=2)) as store:
        for epoch, step in [(1, 0), (1, 50), (2, 0), (2, 50), (3, 0), (3, 50)]:
            commit(store, epoch, step)
    assert [(e.epoch, e.step) for e in CheckpointStore(tmp_path).checkpoints()] == [
        (2, 0), (3, 50)]


def test_pruned_directory_leaves_no_trace(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path, write=True, retention=Retention(keep_last=1)) as store:
        first = commit(store, 1)
        commit(store, 2)
    assert not first.path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-000002-e0002-s000000", "ckptcompat.json", "ckptcompat.json.bak"]


@pytest.mark.parametrize("kwargs", [{"keep_last": 0}, {"keep_best": -1},
                                    {"keep_every_n_epochs": 1.5}, {"keep_last": True},
                                    {"mode": "maximum"}])
def test_bad_retention_is_refused(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        Retention(**kwargs)
