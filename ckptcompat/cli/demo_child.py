"""The training child of ``ckptcompat demo``: synthetic images, a small CNN, one of three runs.

Imported only inside the child process (``python -m ckptcompat.cli.demo child ...``), so the
framework imports below never reach ``import ckptcompat``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_images", "run_child", "BATCH_SIZE", "SAVE_FREQ", "N_TRAIN"]

BATCH_SIZE = 16
SAVE_FREQ = 4          # Checkpoint every 4 training batches (mid-epoch)
N_TRAIN = 144          # 9 batches per epoch
N_VAL = 48
SIZE = 12


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 12x12 images of 3 classes (horizontal stripes, vertical stripes, a square).

    A pure function of ``(n, seed)``: every child of the demo builds the same arrays.
    """
    rng = np.random.default_rng([seed, n])
    y = rng.integers(0, 3, size=n)
    x = np.zeros((n, SIZE, SIZE, 1), dtype=np.float32)
    grid = np.arange(SIZE)
    for i, label in enumerate(y):
        phase, width = int(rng.integers(0, 3)), int(rng.integers(3, 7))
        if label == 0:
            x[i, (grid + phase) % 3 == 0, :, 0] = 1.0
        elif label == 1:
            x[i, :, (grid + phase) % 3 == 0, 0] = 1.0
        else:
            r, c = rng.integers(0, SIZE - width, size=2)
            x[i, r:r + width, c:c + width, 0] = 1.0
    x += rng.normal(0.0, 0.35, size=x.shape).astype(np.float32)
    return x, y.astype(np.int64)


def _build(keras: Any, seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 1)),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ], name="demo_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run_child(mode: str, workdir: Path, epochs: int, seed: int, cut_at: int) -> None:
    """Train in this process: ``mode`` is ``cut`` (stop and wait at global batch ``cut_at``),
    ``resume`` (continue the store ``workdir/interrupted``) or ``straight`` (uninterrupted).

    Writes ``<run>/final.npz`` (weights) and ``<run>/outcome.json`` at the end.
    """
    import tensorflow as tf

    import ckptcompat
    from ckptcompat.callbacks import Checkpoint
    from ckptcompat.runtime import keras_module
    from ckptcompat.data import ArrayData

    tf.config.experimental.enable_op_determinism()
    keras = keras_module()
    run_dir = workdir / ("straight" if mode == "straight" else "interrupted")
    store = run_dir / "checkpoints"
    x, y = make_images(N_TRAIN, seed)
    xv, yv = make_images(N_VAL, seed + 1)
    data = ArrayData(x, y, batch_size=BATCH_SIZE, seed=seed)
    outcome: dict[str, Any] = {"mode": mode, "pid": os.getpid()}
    if mode == "resume":
        run = ckptcompat.resume(store, data=data)
        model, fit_kwargs = run.model, run.fit_kwargs()
        outcome["resumed_from"] = {"path": str(run.source.path), "epoch": run.initial_epoch,
                                   "step": run.initial_step, "global_step": run.global_step}
    else:
        model, fit_kwargs = _build(keras, seed), {"shuffle": False}

    run_dir.mkdir(parents=True, exist_ok=True)
    progress = _progress_callback(keras, mode, cut_at, data, run_dir)
    callbacks = [data.tracker(), Checkpoint(store, save_freq=SAVE_FREQ, data=data), progress]
    started = time.perf_counter()
    hist = model.fit(data, validation_data=(xv, yv), epochs=epochs, verbose=0,
                     callbacks=callbacks, **fit_kwargs)
    outcome["train_seconds"] = round(time.perf_counter() - started, 2)
    _write_results(model, hist, run_dir, x, y, outcome)


def _progress_callback(keras: Any, mode: str, cut_at: int, data: Any, run_dir: Path) -> Any:
    """A callback that, in ``cut`` mode, writes the position at global batch ``cut_at`` to
    ``<run>/progress.json`` and then waits for the parent's SIGKILL."""
    from ckptcompat._atomic import atomic_write

    class Progress(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        """Writes the position after each batch; in ``cut`` mode waits at ``cut_at`` for SIGKILL."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = int(epoch)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            done = int(np.asarray(self.model.optimizer.iterations))
            if mode == "cut" and done == cut_at:
                marker = {"epoch": self.epoch, "batch": int(data.state_dict()["position"]),
                          "global_step": done}
                atomic_write(run_dir / "progress.json", json.dumps(marker))
                time.sleep(600)  # the parent SIGKILLs us here

    return Progress()


def _write_results(model: Any, hist: Any, run_dir: Path, x: np.ndarray, y: np.ndarray,
                   outcome: dict[str, Any]) -> None:
    """Write ``<run>/final.npz`` (the trained weights) and ``<run>/outcome.json`` (loss,
    accuracy, iterations and history on the training set, plus ``outcome`` so far)."""
    from ckptcompat._atomic import atomic_path, atomic_write

    weights = [np.asarray(w) for w in model.get_weights()]
    with atomic_path(run_dir / "final.npz") as tmp:
        np.savez(tmp, *weights)
    loss, acc = model.evaluate(x, y, batch_size=N_TRAIN, verbose=0)
    outcome.update({"epochs_run": len(hist.history.get("loss", [])), "final_loss": float(loss),
                    "final_accuracy": float(acc),
                    "iterations": int(np.asarray(model.optimizer.iterations)),
                    "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()}})
    atomic_write(run_dir / "outcome.json", json.dumps(outcome, indent=1))
