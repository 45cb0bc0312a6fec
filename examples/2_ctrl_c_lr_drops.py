"""Workflow 2: Ctrl+C training with learning-rate drops (ResNet on Fashion-MNIST, here a tiny CNN).

Train at 1e-1; when the validation loss stalls press Ctrl+C and start again with a lower rate::

    python 2_ctrl_c_lr_drops.py --epochs 40                 # phase 1 at 1e-1
    python 2_ctrl_c_lr_drops.py --epochs 50 --lr 1e-2       # resumes where it stopped
    python 2_ctrl_c_lr_drops.py --epochs 55 --lr 1e-3

What ckptcompat replaces: ``EpochCheckpoint(every=5, startAt=...)``, typing
``--model output/checkpoints/epoch_40.hdf5 --start-epoch 40`` by hand,
``K.set_value(model.optimizer.lr, 1e-2)`` (gone in Keras 3) and trimming the history JSON
by hand: the script is the same for every phase; ``Checkpoint(..., learning_rate=args.lr)``
continues from the newest checkpoint (epoch, optimizer, batch order) at the new rate, and
``TrainingMonitor``'s history comes back trimmed to that epoch. Ctrl+C finishes the batch
and commits a checkpoint before the process exits.
"""

from __future__ import annotations

import _tiny

from ckptcompat.callbacks import Checkpoint, TrainingMonitor
from ckptcompat.data import ArrayData
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
    model, train = build(keras, size), ArrayData(x, y, batch_size=16, seed=0)
    callbacks = [_tiny.report_start(keras, args.workdir),
                 TrainingMonitor(out / "history.png", out / "history.json", monitor="val_accuracy"),
                 Checkpoint(out / "checkpoints", keep_last=3, data=train, learning_rate=args.lr)]
    model.fit(train, validation_data=(xv, yv), epochs=args.epochs, shuffle=False, verbose=2,
              callbacks=callbacks + _tiny.stop_after(keras, args.stop_after))
    _tiny.write_summary(args.workdir, finished_epoch=args.epochs)


if __name__ == "__main__":
    main()
