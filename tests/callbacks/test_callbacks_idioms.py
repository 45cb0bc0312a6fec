"""The idioms users bring: PyImageSearch's ``TrainingMonitor(figPath, jsonPath, startAt)``, Keras-style
``verbose=1`` messages, and EarlyStopping's best weights kept inside the run's store."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from _cb_helpers import tiny_data, tiny_model

from ckptcompat.errors import InvalidArgumentError

pytestmark = pytest.mark.framework

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fit(model: Any, callbacks: list[Any], epochs: int, initial_epoch: int = 0) -> dict[str, Any]:
    x, y, xv, yv = tiny_data()
    return dict(model.fit(x, y, validation_data=(xv, yv), epochs=epochs, initial_epoch=initial_epoch,
                          batch_size=16, shuffle=False, verbose=0, callbacks=callbacks).history)


def test_training_monitor_takes_the_pyimagesearch_signature(keras: Any, tmp_path: Path) -> None:
    from ckptcompat.callbacks import TrainingMonitor

    fig, js = tmp_path / "out" / "plot.png", tmp_path / "out" / "history.json"
    monitor = TrainingMonitor(str(fig), str(js), 0)              # TrainingMonitor(figPath, jsonPath, startAt)
    assert (monitor.fig_path, monitor.json_path, monitor.start_at) == (str(fig), str(js), 0)
    _fit(tiny_model(keras), [monitor], epochs=2)
    assert json.loads(js.read_text())["epoch"] == [1, 2]
    if importlib.util.find_spec("matplotlib") is None:
        assert not fig.exists()
    else:
        assert fig.read_bytes()[:8] == PNG_MAGIC                 # the plot, never JSON, in the .png
    only_plot = TrainingMonitor(tmp_path / "p.png")
    assert (only_plot.fig_path, only_plot.json_path) == (str(tmp_path / "p.png"), None)
    by_keyword = TrainingMonitor(json_path=js, fig_path=fig)     # the keywords of before still work
    assert (by_keyword.fig_path, by_keyword.json_path) == (str(fig), str(js))


def test_training_monitor_refuses_json_into_an_image(keras: Any, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from ckptcompat.callbacks import TrainingMonitor

    with pytest.raises(InvalidArgumentError, match="image path"):
        TrainingMonitor(tmp_path / "a.png", tmp_path / "b.png")
    with pytest.raises(InvalidArgumentError, match="ends in .json"):
        TrainingMonitor(tmp_path / "a.json", tmp_path / "b.json")
    with pytest.raises(InvalidArgumentError, match="start_at"):
        TrainingMonitor(tmp_path / "a.png", tmp_path / "a.json", "val_acc")   # the old 3rd argument
    with pytest.raises(InvalidArgumentError, match="fig_path and/or json_path"):
        TrainingMonitor()
    # the old order, unambiguous by its .json suffix: understood, with a warning
    with caplog.at_level(logging.WARNING, logger="ckptcompat.callbacks.monitor"):
        old = TrainingMonitor(tmp_path / "h.json", tmp_path / "h.png")
    assert (old.fig_path, old.json_path) == (str(tmp_path / "h.png"), str(tmp_path / "h.json"))
    assert any("PyImageSearch order" in r.getMessage() for r in caplog.records)


def test_training_monitor_continues_an_old_history_on_the_first_resume(keras: Any, tmp_path: Path) -> None:
    """A JSON from before (PyImageSearch's own: lists without "epoch") is continued at the epoch
    fit resumes at, not overwritten; start_at=0 starts a new history."""
    from ckptcompat.callbacks import TrainingMonitor

    js = tmp_path / "history.json"
    old = {"loss": [0.9, 0.8, 0.7, 0.6], "val_loss": [1.0, 0.9, 0.85, 0.8]}
    js.write_text(json.dumps(old))
    model = tiny_model(keras)
    _fit(model, [TrainingMonitor(tmp_path / "plot.png", js)], epochs=5, initial_epoch=3)
    history = json.loads(js.read_text())
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert history["loss"][:3] == old["loss"][:3] and history["loss"][3] != old["loss"][3]
    _fit(model, [TrainingMonitor(tmp_path / "plot.png", js, start_at=2)], epochs=4, initial_epoch=2)
    assert json.loads(js.read_text())["epoch"] == [1, 2, 3, 4]
    _fit(model, [TrainingMonitor(tmp_path / "plot.png", js, 0)], epochs=6, initial_epoch=4)
    assert json.loads(js.read_text())["epoch"] == [5, 6]


def test_verbose_messages_print_like_keras(keras: Any, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ckptcompat.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau

    def callbacks(verbose: int) -> list[Any]:
        return [ModelCheckpoint(str(tmp_path / f"v{verbose}" / "m-{epoch:02d}.h5"), monitor="val_loss",
                                save_best_only=True, verbose=verbose),
                ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0, verbose=verbose),
                EarlyStopping(monitor="loss", min_delta=10.0, patience=1, verbose=verbose,
                              restore_best_weights=True, store=tmp_path / f"best{verbose}")]

    _fit(tiny_model(keras), callbacks(0), epochs=5)
    assert capsys.readouterr().out == ""
    history = _fit(tiny_model(keras), callbacks(1), epochs=5)
    out = capsys.readouterr().out
    first = f"{history['val_loss'][0]:0.5f}"
    assert (f"\nEpoch 00001: val_loss improved from inf to {first}, saving model to "
            f"{tmp_path / 'v1' / 'm-01.h5'}\n") in out
    assert "\nEpoch 00002: ReduceLROnPlateau reducing learning rate to " in out
    assert "\nEpoch 00002: early stopping; best loss = " in out
    assert "Restoring model weights from the end of the best epoch: 1.\n" in out


def test_early_stopping_keeps_best_weights_inside_the_checkpoint_store(keras: Any, tmp_path: Path) -> None:
    """No ``state-early_stopping-...`` folder in the user's checkpoint folder: the best weights
    live in the store's ``.aux-`` folder, which the store's verify accepts; a resume continues them."""
    import ckptcompat
    from ckptcompat.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint

    folder = tmp_path / "checkpoints" / "training"
    template = str(folder / "model-{epoch:02d}-{val_loss:.2f}.h5")

    def callbacks() -> list[Any]:
        return [ModelCheckpoint(template, save_best_only=True),
                EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True),
                Checkpoint(folder / "state")]

    model = tiny_model(keras)
    first = callbacks()
    _fit(model, first, epochs=3)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["state"]
    assert first[1].store == folder / "state" / ".aux-early_stopping-val_loss"
    assert sorted(os.listdir(folder / "state" / ".aux-early_stopping-val_loss"))
    assert ckptcompat.CheckpointStore(folder / "state").verify().problems == ()
    best, best_epoch = first[1].best, first[1].best_epoch

    again = tiny_model(keras, seed=5)          # a new process: new model, new callbacks, no store=
    run = ckptcompat.resume(folder / "state", model=again)
    assert run.initial_epoch == 3
    second = callbacks()
    history = _fit(again, second, epochs=5, initial_epoch=3)
    assert second[1].store == first[1].store   # the state's folder, inside the store
    # the best of all five epochs: the restored best unless epoch 4 or 5 beat it
    assert second[1].best == min([best, *history["val_loss"]])
    if second[1].best == best:
        assert second[1].best_epoch == best_epoch
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["state"]
    assert ckptcompat.CheckpointStore(folder / "state").verify().problems == ()
