"""Workflow 3: checkpoint + training state (university course notebook), without pickle.

The notebook subclassed ``ModelCheckpoint`` to pickle ``{"optimizer": get_config(), "epoch": e}``
next to every ``.h5``, then on resume did ``load_model`` + unpickle + rebuild the optimizer
from its config + recompile + ``fit(initial_epoch=saved_epoch)``: unpickling runs arbitrary
code, the rebuilt optimizer lost its slots, and the pickle broke across versions.
Here ``Checkpoint`` writes the model, the optimizer state, the epoch and the batch order
(``state.json``, no pickle) and, when the run's folder already holds checkpoints, restores
them by itself (the same script, no resume branch); the step-decay schedule
(1e-3 x 0.75^(epoch // 10)) sees the restored epoch, the one ``fit`` continues at. Runs live in
numbered folders (``00001-test-train``) with stdout tee'd to ``log.txt``::

    python 3_checkpoint_training_state.py --desc test-train          # new run 00001-test-train
    python 3_checkpoint_training_state.py --resume 00001-test-train   # continue it (or --resume latest)
"""

from __future__ import annotations

import sys
from pathlib import Path

import _tiny

from ckptcompat.callbacks import Checkpoint
from ckptcompat.data import ArrayData
from ckptcompat.runtime import keras_module


class Tee:
    """Write to the terminal and to the run's log.txt."""

    def __init__(self, path: Path) -> None:
        self.file, self.stdout = open(path, "a", buffering=1), sys.stdout

    def write(self, text: str) -> None:
        self.stdout.write(text)
        self.file.write(text)

    def flush(self) -> None:
        self.stdout.flush()
        self.file.flush()


def run_folder(root: Path, desc: str, resume: str | None) -> Path:
    """The folder to resume, or the next numbered ``NNNNN-desc`` folder."""
    runs = sorted(p for p in root.glob("[0-9]" * 5 + "-*") if p.is_dir())
    if resume == "latest":
        return runs[-1]
    if resume:
        return root / resume
    number = int(runs[-1].name[:5]) + 1 if runs else 1
    return root / f"{number:05d}-{desc}"


def main() -> None:
    p = _tiny.parser(__doc__)
    p.add_argument("--desc", default="test-train", help="description in the run folder name")
    p.add_argument("--resume", default=None, help="run folder to continue, or 'latest'")
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    keras = keras_module()
    size, n, epochs, every = (12, 96, 6, 2) if args.tiny else (24, 3000, 60, 10)
    epochs = args.epochs or epochs
    run_dir = run_folder(args.workdir, args.desc, args.resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout = Tee(run_dir / "log.txt")
    x, y = _tiny.images(n, 1, size)
    xv, yv = _tiny.images(n // 4, 2, size)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((size, size, 3)),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _tiny.write_summary(args.workdir, run=run_dir.name)
    rates: dict[int, float] = {}

    def step_decay(epoch: int, lr: float = 0.0) -> float:
        rates[epoch + 1] = 1e-3 * 0.75 ** (epoch // every)
        return rates[epoch + 1]

    train = ArrayData(x, y, batch_size=16, seed=0)
    callbacks = [keras.callbacks.LearningRateScheduler(step_decay), _tiny.report_start(keras, args.workdir),
                 Checkpoint(run_dir / "checkpoints", keep_last=2, data=train)]
    model.fit(train, validation_data=(xv, yv), epochs=epochs, shuffle=False, verbose=2,
              callbacks=callbacks + _tiny.stop_after(keras, args.stop_after))
    _tiny.write_summary(args.workdir, rates=rates, finished_epoch=epochs, weights=_tiny.weights_digest(model))


if __name__ == "__main__":
    main()
