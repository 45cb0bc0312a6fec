#!/usr/bin/env python3
"""Reader benchmark: ckptcompat inspect / full read vs. native ``load_model`` of the same file.

Writes a model of about ``--size-mb`` MB (weights + Adam moments) with the running Keras as a
legacy ``.h5`` and as a ``.keras`` zip, then times, each in a fresh process (so peak memory is
that operation's own), native ``load_model``, ``ckptcompat.inspect`` and ``ckptcompat.read``, and
prints seconds, peak RSS and the ratios against native measured in this same run.

    .venv/bin/python benchmarks/bench_read.py --size-mb 400
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_MEASURE = r"""
import json, resource, sys, time
op, path = sys.argv[1], sys.argv[2]
if op == "native":
    KERAS_IMPORT
else:
    import ckptcompat, h5py
    import ckptcompat.formats.keras_h5, ckptcompat.formats.keras_zip, ckptcompat.inspection
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
if op == "native":
    keras.models.load_model(path)
elif op == "inspect":
    ckptcompat.inspect(path)
else:
    ckptcompat.read(path)
seconds = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "extra_mb": peak_mb - base_mb}))
"""

_KERAS_IMPORT = """
from ckptcompat.runtime import keras_module
keras = keras_module()
"""

_WRITE = r"""
import os, sys
import numpy as np
from ckptcompat.runtime import keras_module
keras = keras_module()
width, out = int(sys.argv[1]), sys.argv[2]
inputs = keras.Input((width,))
x = keras.layers.Dense(width, name="d1")(inputs)
x = keras.layers.Dense(width, name="d2")(x)
model = keras.Model(inputs, x)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=keras.losses.MeanSquaredError())
data = np.random.default_rng(0).standard_normal((8, width)).astype("float32")
model.fit(data, data, batch_size=8, epochs=1, verbose=0)
model.save(os.path.join(out, "big.h5"))
model.save(os.path.join(out, "big.keras"))
"""


def measure(op: str, path: Path) -> dict[str, float]:
    code = _MEASURE.replace("KERAS_IMPORT", _KERAS_IMPORT.replace("\n", "\n    "))
    out = subprocess.run([sys.executable, "-c", code, op, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{op} of {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=400.0,
                        help="approximate file size (weights + Adam m and v), default 400")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args(argv)
    # two width x width Dense kernels, stored three times (weights, m, v), 4 bytes each
    width = int((args.size_mb * 1e6 / (2 * 3 * 4)) ** 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", _WRITE, str(width), tmp], check=True)
        print(f"model: 2 x Dense({width}) + Adam; "
              + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in sorted(Path(tmp).iterdir())))
        print("times exclude imports; 'extra MB' is peak RSS growth during the operation")
        print(f"{'file':12} {'operation':10} {'seconds':>9} {'extra MB':>9} {'time vs native':>15} {'memory vs native':>17}")
        for name in ("big.h5", "big.keras"):
            path = Path(tmp) / name
            results = {op: min((measure(op, path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
                       for op in ("native", "inspect", "read")}
            native = results["native"]
            for op, r in results.items():
                print(f"{name:12} {op:10} {r['seconds']:9.3f} {r['extra_mb']:9.0f} "
                      f"{r['seconds'] / native['seconds']:14.2f}x {r['extra_mb'] / max(native['extra_mb'], 1):16.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
