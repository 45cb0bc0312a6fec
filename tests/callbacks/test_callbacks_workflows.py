"""The five workflows' callback configurations, written as their users wrote them, on a tiny model."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _cb_helpers import WeightRecorder, tiny_data, tiny_model, weights_equal

from ckptcompat.errors import InvalidArgumentError

pytestmark = pytest.mark.framework


def _callbacks() -> Any:
    from ckptcompat import callbacks

    return callbacks


def _major() -> int:
    from ckptcompat import runtime

    return 3 if runtime.detect() == "keras3" else 2


@pytest.mark.parametrize("metric", ["acc", "accuracy"])
def test_workflow1_two_stage_checkpoint_and_early_stopping(keras: Any, tmp_path: Path, metric: str) -> None:
    cb = _callbacks()
    x, y, xv, yv = tiny_data()
    model = tiny_model(keras, metrics=[metric])
    recorder = WeightRecorder.make(keras)
    template = str(tmp_path / "training" / "model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5")
    checkpoint = cb.ModelCheckpoint(template, monitor="val_acc", mode="max", save_best_only=True, period=1)
    stopper = cb.EarlyStopping(monitor="val_acc", patience=5, restore_best_weights=True,
                               store=tmp_path / "best")
    history = model.fit(x, y, validation_data=(xv, yv), epochs=12, batch_size=16, shuffle=False,
                        verbose=0, callbacks=[checkpoint, stopper, recorder]).history
    val_acc = history["val_acc" if metric == "acc" else "val_accuracy"]
    # the files are exactly the improvements of val_acc, named with the values Keras logged
    best, expected = None, []
    for epoch, value in enumerate(val_acc):
        if best is None or value > best:
            best = value
            expected.append(f"model-{epoch + 1:02d}-{value:.2f}-{history['val_loss'][epoch]:.2f}.h5")
    assert sorted(os.listdir(tmp_path / "training")) == sorted(expected)
    assert checkpoint.best == max(val_acc)
    assert stopper.best == max(val_acc) and stopper.best_epoch == int(np.argmax(val_acc))
    assert weights_equal(model.get_weights(), recorder.by_epoch[stopper.best_epoch])
    # the newest file is found from the epoch in its name, never the directory order
    newest = max(os.listdir(tmp_path / "training"), key=lambda n: int(re.match(r"model-(\d+)", n)[1]))
    assert newest == expected[-1]


def test_restore_best_weights_has_one_meaning_stopped_or_not(keras: Any, tmp_path: Path) -> None:
    cb = _callbacks()
    x, y, xv, yv = tiny_data()
    model = tiny_model(keras)
    recorder = WeightRecorder.make(keras)
    stopper = cb.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True,
                               store=tmp_path / "best")
    history = model.fit(x, y, validation_data=(xv, yv), epochs=6, batch_size=16, shuffle=False,
                        verbose=0, callbacks=[stopper, recorder]).history
    assert len(history["loss"]) == 6 and stopper.stopped_epoch == 0  # never stopped early
    best_epoch = int(np.argmin(history["val_loss"]))
    assert stopper.best_epoch == best_epoch
    assert weights_equal(model.get_weights(), recorder.by_epoch[best_epoch])


def test_workflow2_monitor_history_trimmed_on_resume(keras: Any, tmp_path: Path, caplog: Any) -> None:
    cb = _callbacks()
    from ckptcompat import runtime

    x, y, xv, yv = tiny_data()
    model = tiny_model(keras, lr=0.1)
    json_path, fig_path = tmp_path / "output" / "history.json", tmp_path / "output" / "plot.png"
    with caplog.at_level(logging.INFO, logger="ckptcompat.callbacks.monitor"):
        model.fit(x, y, validation_data=(xv, yv), epochs=4, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[cb.TrainingMonitor(fig_path, json_path, monitor="val_acc")])
    first = json.loads(json_path.read_text())
    assert first["epoch"] == [1, 2, 3, 4]
    if importlib.util.find_spec("matplotlib") is not None:
        assert fig_path.exists()
    else:
        assert not fig_path.exists()
        assert sum("matplotlib is not installed" in r.getMessage() for r in caplog.records) == 1
    # "Ctrl+C" after epoch 4, restart at epoch 2 with a lower learning rate
    assert runtime.set_learning_rate(model, 0.01) == pytest.approx(0.1)
    monitor = cb.TrainingMonitor(fig_path, json_path, 2, monitor="val_acc")
    model.fit(x, y, validation_data=(xv, yv), initial_epoch=2, epochs=5, batch_size=16, shuffle=False,
              verbose=0, callbacks=[monitor])
    second = json.loads(json_path.read_text())
    assert second["epoch"] == [1, 2, 3, 4, 5]
    assert second["loss"][:2] == first["loss"][:2]
    assert second["loss"][2:] != first["loss"][2:4]


def test_workflow3_subclassed_checkpoint(keras: Any, tmp_path: Path) -> None:
    cb = _callbacks()

    class CheckpointWithState(cb.ModelCheckpoint):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            super().on_epoch_end(epoch, logs)
            Path(self.last_saved + ".json").write_text(json.dumps({"epoch": epoch + 1}))

    x, y, xv, yv = tiny_data()
    model = tiny_model(keras)
    callback = CheckpointWithState(str(tmp_path / "00001-test-train" / "model-{epoch:02d}.h5"))
    assert isinstance(callback, cb.ModelCheckpoint) and isinstance(callback, keras.callbacks.Callback)
    model.fit(x, y, validation_data=(xv, yv), epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    names = sorted(os.listdir(tmp_path / "00001-test-train"))
    assert names == ["model-01.h5", "model-01.h5.json", "model-02.h5", "model-02.h5.json",
                     "model-03.h5", "model-03.h5.json"]
    restored = keras.models.load_model(tmp_path / "00001-test-train" / "model-03.h5")
    assert weights_equal(restored.get_weights(), model.get_weights())


def test_workflow4_iteration_based_early_stopping(keras: Any, tmp_path: Path) -> None:
    cb = _callbacks()
    x, y, xv, yv = tiny_data(noise=0.45)
    model = tiny_model(keras, metrics=["accuracy"], lr=0.5)
    seen: dict[int, list[np.ndarray]] = {}

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            seen[len(seen) + 1] = [np.array(w) for w in self.model.get_weights()]

    stopper = cb.EarlyStopping(monitor="val_accuracy", mode="max", evaluate_every_steps=2,
                               patience_steps=6, validation_data=(xv, yv), restore_best_weights=True,
                               store=tmp_path / "best_validation")
    # Steps first: it records the weights after each batch before the stopper evaluates them
    model.fit(x, y, epochs=200, batch_size=16, shuffle=False, verbose=0, callbacks=[Steps(), stopper])
    assert stopper.stopped_step == len(seen) < 800  # stopped inside fit, at an evaluation step
    assert stopper.stopped_step % 2 == 0 and stopper.best_step % 2 == 0
    assert stopper.stopped_step - stopper.best_step >= 6
    assert stopper.stopped_step - stopper.best_step < 6 + 2
    best_model = tiny_model(keras, metrics=["accuracy"])
    best_model.set_weights(seen[stopper.best_step])
    try:
        value = best_model.evaluate(xv, yv, verbose=0, return_dict=True)["accuracy"]
    except TypeError:  # tf.keras < 2.2: no return_dict
        value = dict(zip(best_model.metrics_names, best_model.evaluate(xv, yv, verbose=0)))["accuracy"]
    assert float(value) == stopper.best
    assert weights_equal(model.get_weights(), seen[stopper.best_step])


def test_workflow5_second_auc_and_templates(keras: Any, tmp_path: Path, monkeypatch: Any) -> None:
    cb = _callbacks()
    x, y, xv, yv = tiny_data()
    keras.metrics.AUC()  # an earlier AUC: the model's one logs as auc_1 on every version
    model = tiny_model(keras, metrics=[keras.metrics.AUC])
    template = str(tmp_path / "fine-{epoch}-{val_auc:.3f}.h5")
    monkeypatch.chdir(tmp_path)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=3, batch_size=16, verbose=0, callbacks=[
        cb.EarlyStopping(monitor="val_loss", patience=10),
        cb.ModelCheckpoint("feature_extraction.h5", save_best_only=True),
        cb.ModelCheckpoint(template, monitor="val_auc",
                           save_best_only=True),
    ]).history
    # Keras numbers AUC metrics per process: in a fresh process this is val_auc_1 (what users'
    # monitors keyed on val_auc broke on); after other tests it is val_auc_<n>, never val_auc
    numbered = [k for k in history if re.fullmatch(r"val_auc_[1-9][0-9]*", k)]
    assert len(numbered) == 1 and "val_auc" not in history, sorted(history)
    auc_key = numbered[0]
    assert (tmp_path / "feature_extraction.h5").exists()
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("fine-"))
    expected, best = [], None
    for epoch, value in enumerate(history[auc_key]):
        if best is None or value > best:
            best = value
            expected.append(f"fine-{epoch + 1}-{value:.3f}.h5")
    assert names == sorted(expected)


def test_missing_monitored_key_warns_once_and_never_saves(keras: Any, tmp_path: Path, caplog: Any) -> None:
    cb = _callbacks()
    x, y, _, _ = tiny_data()
    model = tiny_model(keras)
    with caplog.at_level(logging.WARNING, logger="ckptcompat.callbacks.model_checkpoint"):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                  callbacks=[cb.ModelCheckpoint(str(tmp_path / "m-{epoch}.h5"), monitor="val_acc",
                                                save_best_only=True)])
    assert os.listdir(tmp_path) == []
    assert sum("'val_acc' is not in the logs" in r.getMessage() for r in caplog.records) == 1


def test_suffixes_and_save_freq_in_batches(keras: Any, tmp_path: Path, caplog: Any) -> None:
    cb = _callbacks()
    x, y, _, _ = tiny_data()
    model = tiny_model(keras)
    with caplog.at_level(logging.WARNING, logger="ckptcompat.callbacks.model_checkpoint"):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[
            cb.ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.h5"), save_weights_only=True, save_freq=3),
            cb.ModelCheckpoint(str(tmp_path / "full-{epoch}"), period=2)])
    names = sorted(os.listdir(tmp_path))
    weights = "weights.h5" if _major() == 3 else "h5"
    full = ["full-2.keras"] if _major() == 3 else ["full-2"]  # Keras 2: a SavedModel folder
    # 4 batches per epoch, every 3rd batch: global batches 3 (epoch 1 batch 3) and 6 (epoch 2 batch 2)
    assert names == sorted([f"w-1-3.{weights}", f"w-2-2.{weights}"] + full)
    warned = [r.getMessage() for r in caplog.records if "Keras 3 refuses" in r.getMessage()]
    assert len(warned) == (2 if _major() == 3 else 0)  # once per callback


def test_bad_arguments_are_typed_errors(keras: Any, tmp_path: Path) -> None:
    cb = _callbacks()
    with pytest.raises(InvalidArgumentError):
        cb.ModelCheckpoint(str(tmp_path / "m.h5"), monitor="my_score", save_best_only=True)
    with pytest.raises(InvalidArgumentError):
        cb.ModelCheckpoint(str(tmp_path / "m.h5"), period=2, save_freq=10)
    with pytest.raises(InvalidArgumentError):
        cb.EarlyStopping(evaluate_every_steps=10)
    with pytest.raises(InvalidArgumentError):
        cb.ReduceLROnPlateau(factor=1.5)
