"""Workflow 1: robust two-stage transfer learning (new head on a frozen base, then fine-tuning).

What ckptcompat replaces: the hand-written "newest checkpoint = os.listdir(dir)[-1]", the
epoch parsed out of ``model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5``, ``initial_epoch``
bookkeeping, EarlyStopping whose patience/best restarted from zero after a resume, and
``SGD(lr=...)`` / ``period`` / ``metrics=['acc']`` differences between Keras versions.
One ``Checkpoint`` per stage in ``callbacks=[...]``: a rerun of this unchanged script continues
the unfinished stage from its newest checkpoint (weights, optimizer slots, epoch, batch
order, the state of ModelCheckpoint and EarlyStopping); the ``.h5`` best files stay as before.
The "pretrained" base is a small generated network (no downloads).
"""

from __future__ import annotations

from pathlib import Path

import _tiny
import numpy as np

import ckptcompat
from ckptcompat.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint
from ckptcompat.data import ArrayData
from ckptcompat.runtime import keras_module

TEMPLATE = "model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5"


def build(keras, size):
    """A "pretrained" base (fixed seed, layers ``base_*``, frozen) with a new 3-class head.

    The base layers are inlined (not a nested model): Keras 3.0 cannot write a nested model to .h5.
    """
    keras.utils.set_random_seed(7)
    base = [keras.layers.Conv2D(8, 3, activation="relu", name="base_block1_conv"),
            keras.layers.MaxPooling2D(2, name="base_block1_pool"),
            keras.layers.Conv2D(8, 3, activation="relu", name="base_block2_conv"),
            keras.layers.GlobalAveragePooling2D(name="base_avg_pool")]
    model = keras.Sequential([keras.Input((size, size, 3)), *base,
                              keras.layers.Dense(3, activation="softmax", name="head")], name="birds")
    for layer in base:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["acc"])
    return model


def run_stage(keras, model, folder: Path, final: Path, epochs: int, data, args) -> None:
    """Train ``model`` in ``folder`` (its Checkpoint continues an unfinished run) and save ``final``."""
    x, y, xv, yv = data
    counts = np.bincount(y, minlength=3)
    class_weight = np.array([len(y) / (3 * max(n, 1)) for n in counts], np.float32)
    train = ArrayData(x, y, batch_size=16, seed=0, sample_weight=class_weight[y])  # replayable order
    callbacks = [_tiny.report_start(keras, args.workdir, f"{folder.name}_started_at"),
                 ModelCheckpoint(str(folder / TEMPLATE), monitor="val_acc", mode="max", save_best_only=True),
                 EarlyStopping(monitor="val_acc", patience=5, restore_best_weights=True),
                 Checkpoint(folder / "state", data=train)] + _tiny.stop_after(keras, args.stop_after)
    model.fit(train, validation_data=(xv, yv), epochs=epochs, shuffle=False, verbose=2, callbacks=callbacks)
    model.save(final, include_optimizer=False)      # the next stage compiles its own optimizer


def main() -> None:
    args = _tiny.parser(__doc__).parse_args()
    keras = keras_module()
    size, n, epochs = (12, 96, 4) if args.tiny else (32, 2000, 25)
    data = (*_tiny.images(n, 1, size), *_tiny.images(n // 4, 2, size))
    ckpts = args.workdir / "checkpoints"
    initial, final = args.workdir / "birds_initial.h5", args.workdir / "birds_final.h5"
    if initial.exists():
        print(f"stage 1 done ({initial.name}): skipped")
    else:
        run_stage(keras, build(keras, size), ckpts / "training", initial, epochs, data, args)
    if final.exists():
        print(f"stage 2 done ({final.name}): skipped")
        return
    model = ckptcompat.resume(initial, compile=False).model       # any Keras version's file
    model.get_layer("base_block2_conv").trainable = True          # unfreeze the last block
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2 if args.tiny else 1e-4, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["acc"])
    run_stage(keras, model, ckpts / "finetune", final, epochs, data, args)
    _tiny.write_summary(args.workdir, done=True)


if __name__ == "__main__":
    main()
