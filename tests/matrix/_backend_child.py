"""Child process of tests/matrix/test_backend_resume.py: one tiny Keras 3 run on the running
backend (TensorFlow, JAX or torch), never importing TensorFlow on JAX / torch.

    python _backend_child.py <mode> <workdir> [<kill_at_batch>]

mode: ``full`` (uninterrupted, no Checkpoint), ``kill`` (with Checkpoint every 3 steps; SIGKILLs
itself at the end of global batch ``kill_at_batch``), ``resume`` (``ckptcompat.resume`` from the
store, then finish). ``full`` and ``resume`` write ``<workdir>/result-<mode>.json``: sha256 of
every model variable (weights and seed-generator states) and optimizer variable, iterations,
the epochs and loss / metric values ``fit`` logged, and whether TensorFlow was imported; ``resume`` also writes where it started.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

N, BATCH, SEED, EPOCHS, SAVE_FREQ = 40, 8, 7, 4, 3  # 5 batches per epoch


def deterministic(keras) -> None:
    """The per-backend settings that make two runs bitwise equal (docs/backends.md)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
    keras.utils.set_random_seed(SEED)  # jax on CPU: deterministic as it is


def data():
    from ckptcompat.data import ArrayData

    rng = np.random.default_rng(0)
    x = rng.random((N, 6), dtype=np.float32)
    y = (x @ rng.random((6, 1), dtype=np.float32)).astype(np.float32)
    return ArrayData(x, y, batch_size=BATCH, seed=3)


def model(keras):
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dropout(0.3, seed=1), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    return m


def digest(keras, m) -> dict:
    out = []
    for kind, variables in (("model", m.variables), ("optimizer", m.optimizer.variables)):
        for var in variables:
            arr = np.asarray(keras.ops.convert_to_numpy(var))
            out.append([kind, var.path, str(arr.dtype), list(arr.shape),
                        hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()])
    return {"tensors": out, "iterations": int(keras.ops.convert_to_numpy(m.optimizer.iterations)),
            "tensorflow_imported": "tensorflow" in sys.modules}


def main(argv: list[str]) -> None:
    mode, workdir = argv[0], Path(argv[1])
    kill_at = int(argv[2]) if len(argv) > 2 else 0
    from ckptcompat.runtime import keras_module

    keras = keras_module()
    deterministic(keras)
    import ckptcompat
    from ckptcompat.callbacks import Checkpoint

    ds, store = data(), workdir / "store"

    class Killer(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Killer.seen += 1
            if Killer.seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    extra = [Checkpoint(store, save_freq=SAVE_FREQ, data=ds, keep_last=2)] if mode != "full" else []
    callbacks = [ds.tracker(), *extra, *([Killer()] if mode == "kill" else [])]
    if mode == "resume":
        run = ckptcompat.resume(store, data=ds)
        m = run.model
        started = {"epoch": run.initial_epoch, "step": ds.state_dict()["position"],
                   "iterations": int(keras.ops.convert_to_numpy(m.optimizer.iterations))}
        (workdir / "started.json").write_text(json.dumps(started))
        hist = m.fit(ds, epochs=EPOCHS, verbose=0, callbacks=callbacks, **run.fit_kwargs())
    else:
        m = model(keras)
        hist = m.fit(ds, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    if mode == "kill":
        raise SystemExit(f"training ended before batch {kill_at}")
    logged = {"epochs": list(hist.epoch),
              "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()}}
    (workdir / f"result-{mode}.json").write_text(json.dumps({**digest(keras, m), **logged}))


if __name__ == "__main__":
    main(sys.argv[1:])
