"""Workflow 2: Ctrl+C training with learning-rate drops (ResNet on Fashion-MNIST, here a tiny CNN).

Train at 1e-1; when the validation loss stalls press Ctrl+C and start again with a lower rate::

    python 2_ctrl_c_lr_drops.py --epochs 40                 # phase 1 at 1e-1
    python 2_ctrl_c_lr_drops.py --epochs 50 --lr 1e-2       # resumes where it stopped
    python 2_ctrl_c_lr_drops.py --epochs 55 --lr 1e-3

What ckptcompat replaces: ``EpochCheckpoint(every=5, startAt=...)``, typing
``--model output/checkpoints/epoch_40.hdf5 --start-epoch 40`` by hand,
``K.set_value(model.optimizer.lr, 1e-2)`` (gone in Keras 3) and trimming the history JSON
by hand: ``ckptcompat.resume(..., learning_rate=...)`` finds the newest checkpoint and its
epoch, and ``TrainingMonitor``'s history comes back trimmed to that epoch.
"""

from __future__ import annotations

import _tiny
import numpy as np

import ckptcompat
from ckptcompat.callbacks import Checkpoint, TrainingMonitor
from ckptcompat.runtime import keras_module


def build(keras, size):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((size, size, 3)),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="pool"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-1, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    p = _tiny.parser(__doc__)
    p.add_argument("--epochs", type=int, default=40, help="train until this epoch")
    p.add_argument("--lr", type=float, default=None, help="new learning rate for the resumed run")
    args = p.parse_args()
    keras = keras_module()
    size, n = (12, 96) if args.tiny else (28, 4000)
    x, y = _tiny.images(n, 1, size)
    xv, yv = _tiny.images(n // 4, 2, size)
    out = args.workdir / "output"
    try:                                             # Ctrl+C'd before: carry on
        run = ckptcompat.resume(out / "checkpoints", learning_rate=args.lr)
        model, start = run.model, run.initial_epoch
    except ckptcompat.CheckpointNotFoundError:       # first start
        model, start = build(keras, size), 0
    lr = float(np.asarray(model.optimizer.learning_rate))
    print(f"epochs {start + 1}..{args.epochs} at learning rate {lr:g}")
    _tiny.write_summary(args.workdir, started_at=start, learning_rate=lr)
    callbacks = [TrainingMonitor(out / "history.png", out / "history.json", monitor="val_accuracy"),
                 Checkpoint(out / "checkpoints", keep_last=3)] + _tiny.stop_after(keras, args.stop_after)
    model.fit(x, y, validation_data=(xv, yv), batch_size=16, epochs=args.epochs, initial_epoch=start,
              verbose=2, callbacks=callbacks)
    _tiny.write_summary(args.workdir, finished_epoch=args.epochs)


if __name__ == "__main__":
    main()
