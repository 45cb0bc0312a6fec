"""Child process of tests/matrix/test_resume_exact.py (one tiny training run per process).

    python _resume_child.py <mode> <scenario> <workdir> [<kill_at_batch>]

mode: ``full`` (uninterrupted, no Checkpoint), ``kill`` (with Checkpoint; at global batch
``kill_at_batch`` it writes ``<workdir>/progress`` and sleeps until the parent SIGKILLs it),
``resume`` (``ckptcompat.resume`` from the store, then finish).
scenario: ``epoch`` | ``batch`` | ``lrsched`` | ``finetune``.
``full`` and ``resume`` write ``<workdir>/result-<mode>.json``: sha256 of every model weight
and optimizer variable (in order, with names) plus ``iterations``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from _cb_helpers import deterministic  # noqa: E402
from ckptcompat.runtime import keras_module  # noqa: E402

N, BATCH, SEED = 40, 8, 7           # 5 batches per epoch
EPOCHS = {"epoch": 4, "batch": 4, "lrsched": 5, "finetune": 4}
STAGE1 = 2                          # finetune: epochs of stage 1 (Adam), then SGD 1e-4
SAVE_FREQ = {"epoch": "epoch", "batch": 3, "lrsched": 2, "finetune": 2}


def _data():
    from ckptcompat.data import ArrayData

    rng = np.random.default_rng(0)
    x = rng.random((N, 6), dtype=np.float32)
    y = (x @ rng.random((6, 1), dtype=np.float32)).astype(np.float32)
    return ArrayData(x, y, batch_size=BATCH, seed=3)


def _model(keras):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    return model


def _schedule(epoch: int, lr: float = 0.0) -> float:
    return 1e-3 * 0.75 ** (epoch // 2)


def _extra_callbacks(keras, scenario: str) -> list:
    if scenario == "lrsched":
        return [keras.callbacks.LearningRateScheduler(_schedule)]
    return []


def _variables(obj) -> list:
    value = getattr(obj, "variables")
    return list(value() if callable(value) else value)


def _digest(model) -> dict:
    out = []
    for kind, variables in (("weight", model.weights), ("optimizer", _variables(model.optimizer))):
        for var in variables:
            arr = np.asarray(var.numpy())
            out.append([kind, var.name, str(arr.dtype), list(arr.shape),
                        hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()])
    return {"tensors": out, "iterations": int(np.asarray(model.optimizer.iterations)),
            "optimizer": type(model.optimizer).__name__}


class _Killer:
    def __init__(self, keras, workdir: Path, kill_at: int) -> None:
        self.keras, self.workdir, self.kill_at, self.seen = keras, workdir, kill_at, 0

    def callback(self):
        outer = self

        class Killer(self.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.seen += 1
                if outer.seen == outer.kill_at:
                    tmp = outer.workdir / "progress.tmp"
                    tmp.write_text(str(outer.seen))
                    os.replace(tmp, outer.workdir / "progress")
                    while True:  # the parent SIGKILLs us here
                        time.sleep(1)

        return Killer()


def main(argv: list[str]) -> None:
    mode, scenario, workdir = argv[0], argv[1], Path(argv[2])
    kill_at = int(argv[3]) if len(argv) > 3 else 0
    keras = keras_module()
    deterministic(keras, SEED)
    import ckptcompat
    from ckptcompat.callbacks import Checkpoint

    epochs, freq = EPOCHS[scenario], SAVE_FREQ[scenario]
    data = _data()
    store = workdir / ("stage2" if scenario == "finetune" else "store")
    extra = [_Killer(keras, workdir, kill_at).callback()] if mode == "kill" else []

    def callbacks():
        own = [Checkpoint(store, save_freq=freq, data=data, keep_last=2)] if mode != "full" else []
        return [data.tracker(), *_extra_callbacks(keras, scenario), *own, *extra]

    if mode == "resume":
        run = ckptcompat.resume(store, data=data)
        model = run.model
        model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks(), **run.fit_kwargs())
    else:
        model = _model(keras)
        if scenario == "finetune":
            model.fit(data, epochs=STAGE1, shuffle=False, verbose=0, callbacks=[data.tracker()])
            model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse", metrics=["mae"])
            model.fit(data, epochs=epochs, initial_epoch=STAGE1, shuffle=False, verbose=0,
                      callbacks=callbacks())
        else:
            model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks())
    if mode == "kill":
        raise SystemExit(f"training ended before batch {kill_at}")
    (workdir / f"result-{mode}.json").write_text(json.dumps(_digest(model)))


if __name__ == "__main__":
    main(sys.argv[1:])
