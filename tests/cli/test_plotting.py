"""ckptcompat.cli.plot: history continuous across resumes; PNG via matplotlib Agg; missing matplotlib."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from _cli_helpers import MODEL_H5, make_store
from ckptcompat.errors import CheckpointNotFoundError, InvalidArgumentError, MissingDependencyError
from ckptcompat.formats import sidecar
from ckptcompat.cli.plot import load_history, plot_history
from ckptcompat.state import Progress, TrainingState

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_store_history_continuous_across_a_resume(tmp_path: Path) -> None:
    # epochs 1-3, then training resumed from the epoch-2 checkpoint and redid epoch 3, then 4
    store = make_store(tmp_path / "run", [(1, 0.9, 0.8), (2, 0.7, 0.5), (3, 0.6, 0.55),
                                          (3, 0.5, 0.45), (4, 0.4, 0.4)])
    history = load_history(store)
    assert history.series("loss") == ([1, 2, 3, 4], [0.9, 0.7, 0.5, 0.4])       # later commit wins
    assert history.series("val_loss") == ([1, 2, 3, 4], [0.8, 0.5, 0.45, 0.4])
    assert history.resumes == (3,)


def test_state_json_history_fills_epochs_without_checkpoints(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run", [(2, 0.7, 0.5)])      # history holds epochs 1..2
    (store / "ckpt-000001-e0002-s000000" / "state.json").unlink()
    assert load_history(store).series("loss") == ([2], [0.7])  # damaged entry: manifest metrics only
    state = tmp_path / "state.json"
    sidecar.write(state, TrainingState(progress=Progress(epoch=5),
                                       history={"acc": [0.5, 0.6, 0.7], "val_acc": [0.4, 0.5, 0.6]}))
    history = load_history(state)
    assert history.series("accuracy") == ([3, 4, 5], [0.5, 0.6, 0.7])  # canonical names, ends at epoch 5
    assert history.series("val_acc") == ([3, 4, 5], [0.4, 0.5, 0.6])


def test_foreign_folder_from_file_names(tmp_path: Path) -> None:
    for name in ("weights.02-val_loss_0.50.h5", "weights.01-val_loss_0.75.h5"):
        shutil.copy(MODEL_H5, tmp_path / name)
    assert load_history(tmp_path).series("val_loss") == ([1, 2], [0.75, 0.5])


def test_nothing_to_plot(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="no such file"):
        load_history(tmp_path / "absent")
    shutil.copy(MODEL_H5, tmp_path / "model.h5")
    with pytest.raises(CheckpointNotFoundError, match="no metric history found"):
        load_history(tmp_path)


def test_missing_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib -> ImportError
    store = make_store(tmp_path / "run")
    with pytest.raises(MissingDependencyError, match=r"ckptcompat\[plot\]"):
        plot_history(store, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


def test_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = make_store(tmp_path / "run", [(1, 0.9, 0.8), (2, 0.7, 0.5), (2, 0.65, 0.5), (3, 0.6, 0.4)])
    out = plot_history(store, tmp_path / "plots" / "h.png")
    assert out == tmp_path / "plots" / "h.png"
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 280)                     # one panel: loss and val_loss together
    assert sorted(p.name for p in out.parent.iterdir()) == ["h.png"]
    with pytest.raises(InvalidArgumentError, match="not recorded: auc"):
        plot_history(store, tmp_path / "x.png", metrics=["auc"])


def test_mid_epoch_checkpoints_are_not_resumes(tmp_path: Path) -> None:
    """Several commits inside one epoch (save_freq in batches) move forward: no resume marker."""
    from _cli_helpers import MODEL_H5 as model_h5
    from ckptcompat.store import CheckpointStore

    directory = tmp_path / "run"
    with CheckpointStore(directory, write=True) as store:
        for epoch, step in [(0, 4), (0, 8), (1, 3), (1, 7), (2, 0)]:
            with store.begin(epoch=epoch, step=step, metrics={"loss": 1.0 / (1 + epoch)},
                             format="keras_h5", producer={"keras": "2.12.0"}) as pending:
                shutil.copy(model_h5, pending.path / "model.h5")
        with store.begin(epoch=1, step=3, metrics={"loss": 0.4}, format="keras_h5",
                         producer={"keras": "2.12.0"}) as pending:  # resumed from (1, 3) and redone
            shutil.copy(model_h5, pending.path / "model.h5")
    assert load_history(directory).resumes == (1,)
