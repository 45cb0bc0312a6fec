"""Workflow 5: feature extraction, then fine-tuning, with ``AUC()`` (house-interior classifier).

Stage 1 trains a head on a frozen base (here a small generated network instead of
EfficientNetB0: no downloads) with ``metrics=[AUC()]``, ``EarlyStopping(val_loss, patience=10)``
and ``ModelCheckpoint("feature_extraction.h5", save_best_only=True)``. Stage 2 unfreezes the
last layers (not BatchNormalization), recompiles with Adam 1e-5 and a *second* ``AUC()``,
which Keras logs as ``auc_1`` / ``val_auc_1``, and trains into ``fine_tuned_house.h5``.

What ckptcompat replaces: monitors, file templates and plots keyed on ``val_auc`` broke on
the second ``AUC()`` (and the suffix changes again after a restart); ckptcompat's callbacks
look ``val_auc`` up under every spelling. ``Checkpoint("finetune")`` in stage 2's callbacks
makes it restartable: a rerun continues the fine-tuning from its newest checkpoint.
"""

from __future__ import annotations

import _tiny

from ckptcompat.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint, TrainingMonitor
from ckptcompat.runtime import keras_module


def build(keras, size):
    """Base layers ``stem_*``/``top_conv`` (frozen; inlined, as Keras 3.0 cannot write nested
    models to .h5) and a sigmoid head."""
    keras.utils.set_random_seed(0)
    base = [keras.layers.Conv2D(8, 3, name="stem_conv"),
            keras.layers.BatchNormalization(name="stem_bn"),
            keras.layers.Activation("relu", name="stem_relu"),
            keras.layers.Conv2D(8, 3, activation="relu", name="top_conv"),
            keras.layers.GlobalAveragePooling2D(name="avg_pool")]
    model = keras.Sequential([keras.Input((size, size, 3)), *base,
                              keras.layers.Dense(1, activation="sigmoid", name="head")])
    for layer in base:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC()])
    return model


def main() -> None:
    args = _tiny.parser(__doc__).parse_args()
    keras = keras_module()
    size, n, e1, e2, lr2 = (12, 96, 3, 3, 1e-3) if args.tiny else (64, 3000, 50, 50, 1e-5)
    x, y = _tiny.images(n, 1, size, classes=2)
    xv, yv = _tiny.images(n // 4, 2, size, classes=2)
    work = args.workdir
    model = build(keras, size)
    model.fit(x, y, validation_data=(xv, yv), batch_size=16, epochs=e1, verbose=2,
              callbacks=[EarlyStopping(monitor="val_loss", patience=10),
                         ModelCheckpoint(str(work / "feature_extraction.h5"), save_best_only=True)])
    # fine_tune_model(): unfreeze the last layers except BatchNormalization, recompile
    for layer in model.layers:                               # the last layers, never BatchNormalization
        layer.trainable = layer.name in ("top_conv", "head")
    model.compile(optimizer=keras.optimizers.Adam(lr2), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC()])           # logs auc_1 / val_auc_1
    stopper = EarlyStopping(monitor="val_auc", patience=20, restore_best_weights=True)
    hist = model.fit(x, y, validation_data=(xv, yv), batch_size=16, epochs=e1 + e2,
                     initial_epoch=e1, verbose=2,
                     callbacks=[ModelCheckpoint(str(work / "fine_tuned_house.h5"), monitor="val_auc",
                                                save_best_only=True),
                                stopper, TrainingMonitor(json_path=work / "history.json", monitor="val_auc"),
                                Checkpoint(work / "finetune")] + _tiny.stop_after(keras, args.stop_after))
    _tiny.write_summary(work, logged=sorted(hist.history), best_val_auc=stopper.best,
                        best_epoch=stopper.best_epoch)


if __name__ == "__main__":
    main()
