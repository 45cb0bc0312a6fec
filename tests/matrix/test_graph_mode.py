"""TF1-style graph execution as the running framework (TF 1.15 natively; ``tf.compat.v1.
disable_eager_execution()`` on the TF 2 / Keras 2 environments): ckptcompat reads and writes
the live variables through the Keras session.

- checkpoints of other generations (TF 2.12/2.15 ``.h5``, tf-keras and Keras 3 ``.keras``, a TF2
  object bundle) resume into a live graph-mode ``tf.keras`` model: every weight and Adam slot
  bitwise what the producer saved (the manifest's sha256), the iteration count restored;
- ``fit`` with ``Checkpoint``, SIGKILLed at a random batch, resumed in a new process (another
  initial seed) from an epoch-end checkpoint, ends bitwise equal to an uninterrupted run;
- a ``tf.compat.v1.train.Saver`` loop, SIGKILLed and resumed through ``resume(path,
  session=sess)``, ends bitwise equal to an uninterrupted run.

Every check runs in a child process: graph mode must be chosen before TensorFlow runs anything.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests._children import run_json_child
from tests._paths import FIXTURES

pytestmark = [pytest.mark.framework, pytest.mark.keras2, pytest.mark.slow]

#: mlp_adam of other generations: (producer, file); all hold Dense(5, relu) -> Dense(3) + Adam
OTHER_GENERATIONS = (("tf212", "mlp_adam/model.h5"), ("tf215", "mlp_adam/model.h5"),
                     ("tf221-tfkeras", "mlp_adam/model.keras"), ("tf221-keras3", "mlp_adam/model.keras"),
                     ("tf215", "mlp_adam/tf_checkpoint/ckpt-1"))

_PRELUDE = r'''
import hashlib, json, os, signal, sys
sys.path.insert(0, os.environ["CKPT_TESTS_ROOT"])
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
tf.config.threading.set_inter_op_parallelism_threads(1)  # the Keras session's sums in one order:
tf.config.threading.set_intra_op_parallelism_threads(1)  # two TF 2 processes train alike
import ckptcompat
k = tf.keras

def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

def mlp(seed):
    import random  # tf.keras >= 2.7 draws an unseeded initializer's seed from Python's random
    random.seed(seed); np.random.seed(seed); tf.compat.v1.set_random_seed(seed)
    m = k.Sequential([k.layers.Dense(5, activation="relu", input_shape=(4,)),
                      k.layers.Dense(3, activation="softmax")])
    # from tf.keras 2.11 on the new optimizers need eager execution: graph mode uses the legacy ones
    adam = getattr(getattr(k.optimizers, "legacy", None), "Adam", k.optimizers.Adam)
    m.compile(optimizer=adam(0.01), loss="sparse_categorical_crossentropy")
    return m
'''

RESUME_CHILD = _PRELUDE + r'''
out = {"eager": tf.executing_eagerly()}
for path in sys.argv[2:]:
    model = mlp(seed=5)
    run = ckptcompat.resume(path, model=model)
    opt = model.optimizer
    slots = [k.backend.get_value(opt.get_slot(v, n)) for v in model.trainable_weights
             for n in ("m", "v")]  # per weight in model order: Adam's m, then v
    out[path] = {"weights": [sha(a) for a in k.backend.batch_get_value(model.weights)],
                 "slots": [[sha(a) for a in slots[i * 2:i * 2 + 2]] for i in range(len(slots) // 2)],
                 "iterations": int(k.backend.get_value(opt.iterations)),
                 "report_iterations": run.report.iterations,
                 # the hyper-parameters read in one session run: get_config()'s values, its variables kept
                 "config_same": ckptcompat.runtime.flavour_for(model)._OPS.optimizer_config(opt) == opt.get_config()
                 and all(hasattr(v, "op") for v in opt._hyper.values())}
if tf.__version__.startswith("1."):  # rebuilt from the file's config (tf.keras >= 2.11 would
    run = ckptcompat.resume(sys.argv[3])  # compile a new optimizer, which needs eager execution)
    out["rebuilt"] = [sha(a) for a in k.backend.batch_get_value(run.model.weights)]
json.dump(out, open(sys.argv[1], "w"))
'''

FIT_CHILD = _PRELUDE + r'''
from ckptcompat.callbacks import Checkpoint
mode, store, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.RandomState(0)
x = rng.rand(64, 4).astype("float32"); y = (x.sum(1) > 2).astype("int64")

class KillAt(k.callbacks.Callback):
    def __init__(self):
        super().__init__(); self.batches = 0
    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

start = 0
if mode == "resume":
    model = mlp(seed=7)  # another initial state: only the restore can make the end equal
    run = ckptcompat.resume(store, model=model)
    start = run.initial_epoch
else:
    model = mlp(seed=0)
callbacks = [] if mode == "full" else [Checkpoint(store, async_save=True), KillAt()]
model.fit(x, y, batch_size=16, epochs=5, initial_epoch=start, shuffle=False, verbose=0, callbacks=callbacks)
values = k.backend.batch_get_value(model.weights + model.optimizer.weights)
json.dump({"start": start, "eager": tf.executing_eagerly(), "sha": [sha(v) for v in values]}, open(out, "w"))
'''

SAVER_CHILD = r'''
import json, os, signal, sys
sys.path.insert(0, os.environ["CKPT_TESTS_ROOT"])
import _tf1_graph as G
import ckptcompat
mode, folder, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
net = G.build(lr=3e-2, seed=0 if mode != "resume" else 9)
x, y = G.data()
step = 0
if mode == "resume":
    step = ckptcompat.resume(folder, session=net.sess).global_step
start = step
while step < 40:
    bx, by = G.batch(step, x, y)
    net.sess.run(net.train, {net.x: bx, net.y: by})
    step += 1
    if mode != "full" and step % 5 == 0:
        with net.graph.as_default():  # TF 2: the Saver builds its ops in the net's graph
            net.saver.save(net.sess, os.path.join(folder, "model.ckpt"), global_step=step)
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
json.dump({"start": start, "step": int(net.sess.run(net.global_step)),
           "sha": {name: G.sha(v) for name, v in G.values(net).items()}}, open(out, "w"))
'''


def _expected(producer: str, path: str) -> dict[str, Any]:
    manifest = json.loads((FIXTURES / producer / "manifest.json").read_text())
    entry = next(e for e in manifest["fixtures"] if e["path"] == path)
    tensors = entry["tensors"]
    owners = [t["owner"] for t in tensors if t["kind"] == "weight"]  # in model order
    slot = {(t["owner"], t["slot"]): t["sha256"] for t in tensors if t["kind"] == "slot"}
    return {"weights": [t["sha256"] for t in tensors if t["kind"] == "weight"],
            "slots": [[slot[(owner, "m")], slot[(owner, "v")]] for owner in owners],
            "iterations": (entry.get("optimizer") or {}).get("iterations")}


def test_other_generations_resume_into_a_graph_mode_model(tmp_path: Path) -> None:
    paths = [str(FIXTURES / producer / path) for producer, path in OTHER_GENERATIONS]
    got = run_json_child(tmp_path, RESUME_CHILD, "{out}", *paths)
    assert got.pop("eager") is False
    for (producer, path), full in zip(OTHER_GENERATIONS, paths):
        want = _expected(producer, path)
        have = got[full]
        assert have["weights"] == want["weights"], f"{producer}/{path}: weights"
        assert have["slots"] == want["slots"] and len(want["slots"]) == 4, f"{producer}/{path}: Adam m, v"
        assert have["iterations"] == have["report_iterations"] > 0, f"{producer}/{path}: iterations"
        assert have["config_same"], f"{producer}/{path}: the optimizer config read in one run differs"
        if want["iterations"] is not None:
            assert have["iterations"] == want["iterations"], f"{producer}/{path}: iterations"
    if "rebuilt" in got:  # TF 1.x: resume(path) without a model rebuilds it from the TF 2.15 config
        assert got["rebuilt"] == _expected(*OTHER_GENERATIONS[1])["weights"]


def test_checkpoint_sigkilled_in_graph_mode_resumes_bitwise(tmp_path: Path) -> None:
    store = tmp_path / "store"
    full = run_json_child(tmp_path, FIT_CHILD, "full", str(store), "{out}", "0")
    kill_at = random.Random().randint(10, 19)  # 4 batches an epoch: after 2-4 epoch-end saves
    run_json_child(tmp_path, FIT_CHILD, "first", str(store), "{out}", str(kill_at), killed=True)
    resumed = run_json_child(tmp_path, FIT_CHILD, "resume", str(store), "{out}", "0")
    assert full["eager"] is False and resumed["eager"] is False
    last_save = (kill_at - 1) // 4  # the epochs ended before the kill; the newest save may have
    assert last_save - 1 <= resumed["start"] <= last_save, kill_at  # been in flight (async)
    assert resumed["start"] > 0, f"killed after batch {kill_at}"  # resumed from a checkpoint
    assert resumed["sha"] == full["sha"], f"killed after batch {kill_at}, resumed at epoch {resumed['start']}"


def test_tf1_saver_sigkilled_resumes_through_the_session_bitwise(tmp_path: Path) -> None:
    folder = tmp_path / "saver"
    folder.mkdir()
    full = run_json_child(tmp_path, SAVER_CHILD, "full", str(folder), "{out}", "0")
    kill_at = random.Random().randint(7, 33)
    run_json_child(tmp_path, SAVER_CHILD, "first", str(folder), "{out}", str(kill_at), killed=True)
    resumed = run_json_child(tmp_path, SAVER_CHILD, "resume", str(folder), "{out}", "0")
    assert resumed["start"] == kill_at // 5 * 5 > 0, f"killed at step {kill_at}"  # the last Saver step
    assert resumed["step"] == full["step"] == 40
    assert resumed["sha"] == full["sha"], f"killed at step {kill_at}, resumed at {resumed['start']}"
