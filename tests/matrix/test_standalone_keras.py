"""Standalone Keras 2.3 (the multi-backend ``keras`` package on TF 1.15) as the running framework.

Runs where that package is installed (the ``tf115-py37`` matrix row); skipped elsewhere.

- other generations' files (TF 2.12/2.15 ``.h5``, tf-keras and Keras 3 ``.keras``, a TF 2.15
  object bundle) and standalone Keras 2.3.1's own ``.h5`` resume into a live standalone Keras
  model with Adam, SGD (momentum) and RMSprop: every weight and slot bitwise what the producer
  saved (the manifest's sha256), iterations restored; also into a user's subclass of
  ``keras.Sequential``;
- every optimizer standalone Keras ships (enumerated from ``keras.optimizers``): ``fit`` with
  ``Checkpoint`` for 2 epochs, a new model resumed from the store (and from the native
  ``model.save`` ``.h5`` of the same moment) holds every variable of the saved model bitwise
  and, where Keras repeats its own run bitwise, trains 2 more to the state of 4 uninterrupted
  epochs (resume at epoch 2 and 8 iterations asserted);
- ``fit`` with ``Checkpoint`` SIGKILLed at a random batch, resumed in a new process, ends
  bitwise equal to an uninterrupted run.

Every check runs in a child process (a fresh TF1 graph and Keras session).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ckptcompat._compat import PackageNotFoundError, distribution_version
from tests._children import run_json_child
from tests._paths import FIXTURES

pytestmark = [pytest.mark.framework, pytest.mark.keras2, pytest.mark.slow]


def _standalone_keras() -> bool:
    try:
        major, minor = (int(p) for p in distribution_version("keras").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) <= (2, 3)


if not _standalone_keras():
    pytest.skip("standalone Keras <= 2.3 is not installed (the tf115-py37 matrix row has it)",
                allow_module_level=True)

#: (producer, file, optimizer): all hold Dense(5, relu) -> Dense(3, softmax)
FILES = tuple((producer, f"mlp_{opt}/{name}", opt) for producer, name in (
    ("tf212", "model.h5"), ("tf215", "model.h5"), ("tf221-tfkeras", "model.keras"),
    ("tf221-keras3", "model.keras"), ("tf215", "tf_checkpoint/ckpt-1"),
    ("keras231-tf115-py37", "model.h5")) for opt in ("adam", "sgd", "rmsprop"))
#: the slots of each optimizer in the order standalone Keras lists them in ``optimizer.weights``
SLOTS = {"adam": ("m", "v"), "sgd": ("momentum",), "rmsprop": ("rms",)}

_PRELUDE = r'''
import hashlib, json, os, signal, sys
import numpy as np
import tensorflow as tf
tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
import keras
K = keras.backend

def fresh():  # a new graph and session for each model: the graph does not grow from run to run
    K.clear_session()
    K.set_session(tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)))
import ckptcompat
from ckptcompat.callbacks import Checkpoint
OPTIMIZERS = {"adam": lambda: keras.optimizers.Adam(0.01), "rmsprop": lambda: keras.optimizers.RMSprop(0.005),
              "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9)}

def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

def mlp(seed, make_optimizer):
    fresh()
    m = keras.Sequential([keras.layers.Dense(5, activation="relu", input_shape=(4,)),
                          keras.layers.Dense(3, activation="softmax")])
    rng = np.random.RandomState(seed)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in m.get_weights()])
    m.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy")
    return m

rng = np.random.RandomState(0)
x = rng.rand(64, 4).astype("float32"); y = (x.sum(1) > 2).astype("int64")
'''

RESUME_CHILD = _PRELUDE + r'''
out = {}
for path, opt in zip(sys.argv[2::2], sys.argv[3::2]):
    model = mlp(5, OPTIMIZERS[opt])
    run = ckptcompat.resume(path, model=model)
    o = model.optimizer
    slots = [w for w in o.weights if w is not o.iterations and w.shape.as_list() != [1]]  # vhat placeholders
    n = len(model.trainable_weights)
    values = K.batch_get_value(slots)
    out[path] = {"weights": [sha(a) for a in K.batch_get_value(model.weights)],
                 "slots": [[sha(values[k * n + i]) for k in range(len(values) // n)] for i in range(n)],
                 "iterations": int(K.get_value(o.iterations)), "report_iterations": run.report.iterations,
                 "matching": run.report.matching}

class MySequential(keras.Sequential):  # a user's subclass, defined in __main__
    pass

fresh()
model = MySequential([keras.layers.Dense(5, activation="relu", input_shape=(4,)),
                      keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer=OPTIMIZERS["adam"](), loss="sparse_categorical_crossentropy")
run = ckptcompat.resume(sys.argv[2], model=model)
out["subclass"] = {"weights": [sha(a) for a in K.batch_get_value(model.weights)],
                   "iterations": run.report.iterations}
json.dump(out, open(sys.argv[1], "w"))
'''

SPLIT_CHILD = _PRELUDE + r'''
import inspect
out = {}
names = sorted(n for n, c in vars(keras.optimizers).items() if inspect.isclass(c)
               and issubclass(c, keras.optimizers.Optimizer) and c is not keras.optimizers.Optimizer
               and c.__module__.startswith("keras.") and n[0].isupper() and n != "TFOptimizer")
def state(m):  # weights, slots, step counter and Nadam's m_schedule (not in its weights in 2.2)
    o = m.optimizer
    extra = [v for v in (o.iterations, getattr(o, "m_schedule", None)) if v is not None]
    return [sha(v) for v in K.batch_get_value(m.weights + o.weights + extra)]

for name in names:
    make = lambda: getattr(keras.optimizers, name)()
    ends = []
    for _ in range(2):  # twice: does this Keras repeat its own run bitwise?
        full = mlp(1, make)
        full.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)
        ends.append(state(full))
    first = mlp(1, make)
    store = os.path.join(sys.argv[2], name)
    first.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[Checkpoint(store)])
    first.save(store + ".h5")  # the native file of the same moment
    out[name] = {"full": ends[0], "repeatable": ends[0] == ends[1], "saved": state(first)}
    for label, source, kwargs in (("store", store, {}), ("h5", store + ".h5", {"initial_epoch": 2})):
        second = mlp(9, make)
        run = ckptcompat.resume(source, model=second, **kwargs)
        restored = state(second)
        second.fit(x, y, batch_size=16, epochs=4, initial_epoch=run.initial_epoch, shuffle=False, verbose=0)
        out[name][label] = {
            "start": run.initial_epoch, "iterations": run.report.iterations,
            "slots": len(run.report.restored_slots), "restored": restored, "resumed": state(second)}
json.dump(out, open(sys.argv[1], "w"))
'''

FIT_CHILD = _PRELUDE + r'''
mode, store, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

class KillAt(keras.callbacks.Callback):
    def __init__(self):
        super().__init__(); self.batches = 0
    def on_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

start = 0
if mode == "resume":
    model = mlp(7, OPTIMIZERS["adam"])  # another initial state: only the restore can make the end equal
    start = ckptcompat.resume(store, model=model).initial_epoch
else:
    model = mlp(0, OPTIMIZERS["adam"])
callbacks = [] if mode == "full" else [Checkpoint(store, async_save=True), KillAt()]
model.fit(x, y, batch_size=16, epochs=5, initial_epoch=start, shuffle=False, verbose=0, callbacks=callbacks)
values = K.batch_get_value(model.weights + model.optimizer.weights)
json.dump({"start": start, "sha": [sha(v) for v in values]}, open(out, "w"))
'''


def _expected(producer: str, path: str, opt: str) -> dict[str, Any]:
    manifest = json.loads((FIXTURES / producer / "manifest.json").read_text())
    entry = next(e for e in manifest["fixtures"] if e["path"] == path)
    tensors = entry["tensors"]
    owners = [t["owner"] for t in tensors if t["kind"] == "weight"]  # in model order
    slot = {(t["owner"], t["slot"]): t["sha256"] for t in tensors if t["kind"] == "slot"}
    return {"weights": [t["sha256"] for t in tensors if t["kind"] == "weight"],
            "slots": [[slot[(owner, s)] for s in SLOTS[opt]] for owner in owners],
            "iterations": (entry.get("optimizer") or {}).get("iterations")}


def test_other_generations_resume_into_a_standalone_keras_model(tmp_path: Path) -> None:
    args = [a for producer, path, opt in FILES for a in (str(FIXTURES / producer / path), opt)]
    got = run_json_child(tmp_path, RESUME_CHILD, "{out}", *args)
    for producer, path, opt in FILES:
        want, have = _expected(producer, path, opt), got[str(FIXTURES / producer / path)]
        assert have["weights"] == want["weights"], f"{producer}/{path}: weights"
        assert have["slots"] == want["slots"] and len(want["slots"]) == 4, f"{producer}/{path}: slots"
        assert have["iterations"] == have["report_iterations"] == want["iterations"] > 0, f"{producer}/{path}"
        # standalone Keras names the layers dense_1 / dense_2, tf.keras and Keras 3 dense / dense_1
        assert have["matching"] == ("name" if producer.startswith("keras2") else "structure"), f"{producer}/{path}"
    first = _expected(FILES[0][0], FILES[0][1], FILES[0][2])  # into a subclass of keras.Sequential
    assert got["subclass"]["weights"] == first["weights"] and got["subclass"]["iterations"] == first["iterations"]


def test_every_standalone_optimizer_resumes_bitwise(tmp_path: Path) -> None:
    got = run_json_child(tmp_path, SPLIT_CHILD, "{out}", str(tmp_path))
    assert {"Adam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam"} <= set(got)
    # Keras 2.2 reads the step counter without an order against its increment: two identical
    # native runs may differ there (a different optimizer each time; measured with 2.2.4, where
    # the restored state is still bitwise). Keras 2.3 orders them and repeats every run; where
    # the native run repeats bitwise, so must the resumed one.
    version = tuple(int(p) for p in distribution_version("keras").split(".")[:2])
    repeatable = sorted(name for name, runs in got.items() if runs["repeatable"])
    print("native runs repeat bitwise:", ", ".join(repeatable))
    assert repeatable == (sorted(got) if version >= (2, 3) else repeatable) and repeatable, \
        "native runs that do not repeat: the end state cannot be compared"
    for name, runs in got.items():
        for source in ("store", "h5"):
            run = runs[source]
            assert run["start"] == 2 and run["iterations"] == 8, (name, source)  # the epoch-2 save
            assert run["slots"] >= 4, (name, source)
            assert run["restored"] == runs["saved"], (name, source)  # every variable, bitwise
            if runs["repeatable"]:
                assert run["resumed"] == runs["full"], (name, source)


def test_checkpoint_sigkilled_in_standalone_keras_resumes_bitwise(tmp_path: Path) -> None:
    store = tmp_path / "store"
    full = run_json_child(tmp_path, FIT_CHILD, "full", str(store), "{out}", "0")
    kill_at = random.Random().randint(10, 19)  # 4 batches an epoch: after 2-4 epoch-end saves
    run_json_child(tmp_path, FIT_CHILD, "first", str(store), "{out}", str(kill_at), killed=True)
    resumed = run_json_child(tmp_path, FIT_CHILD, "resume", str(store), "{out}", "0")
    last_save = (kill_at - 1) // 4  # the epochs ended before the kill; the newest save may have
    assert last_save - 1 <= resumed["start"] <= last_save, kill_at  # been in flight (async)
    assert resumed["start"] > 0, f"killed after batch {kill_at}"  # resumed from a checkpoint
    assert resumed["sha"] == full["sha"], f"killed after batch {kill_at}, resumed at epoch {resumed['start']}"
