#!/usr/bin/env python3
"""Issue #18 benchmark: ckptcompat against native Keras, whole processes, interleaved.

Builds a Dense model of about ``--size-mb`` MB of weights + Adam slots with the running Keras,
saves it natively as ``big.h5`` and ``big.keras``, then runs each operation ``--repeat`` times
as a fresh child process (imports included), the operations interleaved round after round so
that machine load hits all of them alike, and prints medians, the ratios against the native
operation measured in this same run, and each child's peak RSS (``os.wait4`` ``ru_maxrss``):

* ``ckptcompat inspect big.h5``                       vs native ``load_model(big.h5)``
* ``ckptcompat migrate big.h5 o.keras --to keras3``   vs native ``load_model`` + ``save(o.keras)``
* ``ckptcompat.resume(big.keras)``                    vs native ``load_model(big.keras)``
* ``fit`` with ``Checkpoint`` (sync, async, default)  vs ``fit`` with ``keras.callbacks.ModelCheckpoint``
  (same model and data, one save per epoch; ``fit_s`` is the child's own fit time)

    .venv/bin/python benchmarks/bench_issue18.py                 # quick (40 MB)
    .venv/bin/python benchmarks/bench_issue18.py --size-mb 400   # the issue's figure
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WIDTH = 1024

_BUILD = r"""
import os, sys, json, time
import numpy as np
from ckptcompat.runtime import keras_module
keras = keras_module()
width, depth = int(os.environ["B_WIDTH"]), int(os.environ["B_DEPTH"])
def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((width,))] +
                             [keras.layers.Dense(width, name=f"dense_{i}") for i in range(depth)])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.MeanSquaredError())
    return model
"""

_OPS = {
    "setup": """
model = build()
x = np.random.default_rng(0).standard_normal((16, width), dtype=np.float32)
model.fit(x, x, batch_size=8, epochs=1, verbose=0)
model.save(sys.argv[1] + "/big.h5"); model.save(sys.argv[1] + "/big.keras")
""",
    "native_load_h5": "keras.models.load_model(sys.argv[1] + '/big.h5')",
    "native_load_save": "keras.models.load_model(sys.argv[1] + '/big.h5').save(sys.argv[2] + '/o.keras')",
    "native_load_keras": "keras.models.load_model(sys.argv[1] + '/big.keras')",
    "resume_keras": "import ckptcompat; ckptcompat.resume(sys.argv[1] + '/big.keras')",
    "fit": """
import importlib
model = build()
steps, epochs = int(os.environ["B_STEPS"]), int(os.environ["B_EPOCHS"])
x = np.random.default_rng(0).standard_normal((steps * 64, width), dtype=np.float32)
kind = os.environ["B_KIND"]
if kind == "native":
    cb = keras.callbacks.ModelCheckpoint(sys.argv[2] + "/native-{epoch:02d}.keras")
else:
    from ckptcompat.callbacks import Checkpoint
    cb = Checkpoint(sys.argv[2] + "/store", **({} if kind == "default" else {"async_save": kind == "async"}))
t0 = time.perf_counter()
model.fit(x, x, batch_size=64, epochs=epochs, verbose=0, callbacks=[cb])
print(json.dumps({"fit_s": time.perf_counter() - t0}))
""",
}

_CLI = {
    "ckpt_inspect_h5": ["inspect", "{src}/big.h5"],
    "ckpt_migrate": ["migrate", "{src}/big.h5", "{out}/o.keras", "--to", "keras3"],
}

#: (ckptcompat operation, the native operation it is compared with)
PAIRS = [("ckpt_inspect_h5", "native_load_h5"), ("ckpt_migrate", "native_load_save"),
         ("resume_keras", "native_load_keras"), ("fit_sync", "fit_native"), ("fit_async", "fit_native"),
         ("fit_default", "fit_native")]


def run_child(op: str, src: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    """One child process: wall seconds, peak RSS (MB) from ``os.wait4``, its own JSON line."""
    if op in _CLI:
        argv = [sys.executable, "-m", "ckptcompat"] + [a.format(src=src, out=out) for a in _CLI[op]]
    else:
        code = _BUILD + _OPS["fit" if op.startswith("fit_") else op]
        argv = [sys.executable, "-c", code, str(src), str(out)]
    child_env = dict(env, B_KIND=op.split("_", 1)[1] if op.startswith("fit_") else "")
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=child_env, stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(errors="replace"), se.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{op} failed ({code}):\n{stderr[-3000:]}")
    result = {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def _clean(out: Path) -> None:
    import shutil

    for child in out.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _summary(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    med: dict[str, dict[str, float]] = {}
    for op, runs in results.items():
        med[op] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return med


def _print(med: dict[str, dict[str, float]], size_mb: float, repeat: int) -> None:
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{time.strftime('%Y-%m-%d')}  {platform.machine()} {cpus} CPU(s), load {load:.1f}, "
          f"python {platform.python_version()}; model {size_mb:.0f} MB (weights + Adam m, v); "
          f"median of {repeat} whole processes")
    print("| operation | median s | peak RSS MB | native | native s | native RSS MB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for ours, native in PAIRS:
        if ours not in med or native not in med:  # --only left one of the pair out
            continue
        a, b = med[ours], med[native]
        extra = (f" (fit {a['fit_s']:.2f}s vs {b['fit_s']:.2f}s: {a['fit_s'] / b['fit_s']:.2f}x)"
                 if "fit_s" in a else "")
        print(f"| {ours} | {a['seconds']:.2f} | {a['peak_mb']:.0f} | {native} | {b['seconds']:.2f} | "
              f"{b['peak_mb']:.0f} | {a['seconds'] / b['seconds']:.2f}x{extra} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=40.0, help="weights + Adam slots, default 40")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each operation (median kept)")
    parser.add_argument("--fit-steps", type=int, default=20, help="batches of 64 per epoch in the fit runs")
    parser.add_argument("--fit-epochs", type=int, default=3, help="epochs (= saves) in the fit runs")
    parser.add_argument("--only", nargs="*", help="operations to run (default: all)")
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: TMPDIR)")
    args = parser.parse_args(argv)
    depth = max(1, round(args.size_mb * 1e6 / (3 * 4 * _WIDTH * _WIDTH)))
    size_mb = 3 * 4 * depth * (_WIDTH * _WIDTH + _WIDTH) / 1e6
    env = dict(os.environ, B_WIDTH=str(_WIDTH), B_DEPTH=str(depth), B_STEPS=str(args.fit_steps),
               B_EPOCHS=str(args.fit_epochs), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    ops = [op for pair in PAIRS for op in pair]
    ops = [op for i, op in enumerate(ops) if op not in ops[:i] and (not args.only or op in args.only)]
    with tempfile.TemporaryDirectory(prefix="ckptcompat-bench18-", dir=args.dir) as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        run_child("setup", src, out, env)
        print(f"big.h5 {os.path.getsize(src / 'big.h5') / 1e6:.0f} MB, "
              f"big.keras {os.path.getsize(src / 'big.keras') / 1e6:.0f} MB", flush=True)
        results: dict[str, list[dict[str, float]]] = {op: [] for op in ops}
        for round_ in range(args.repeat):
            for op in ops:
                _clean(out)
                results[op].append(run_child(op, src, out, env))
                r = results[op][-1]
                print(f"round {round_ + 1} {op}: {r['seconds']:.2f}s, {r['peak_mb']:.0f} MB", flush=True)
    _print(_summary(results), size_mb, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
