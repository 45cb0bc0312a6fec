#!/usr/bin/env python3
"""Store benchmark: durable save bandwidth vs fsync'ed raw writes; resume latency vs native load.

1. Durable save of a ~100 MB and a ~400 MB model (random float32 weights, weights-only
   ``keras_h5`` + ``state.json`` through :class:`ckptcompat.store.CheckpointStore`: temp dir,
   the writer hashing the file while writing it, fsync, rename, manifest) against writing
   the same number of bytes to the same disk with ``os.write`` + ``fsync`` (dd-like).
2. Resume latency: choosing the checkpoint in a store (manifest, sha256 check) and reading
   it, with 1 and with 1,000 checkpoints in the store, against native ``load_model`` of
   the same file (``n/a`` without a framework).

Ratios are measured in the same run. Not a test.

    python benchmarks/bench_store.py [--sizes 100 400] [--dir /some/disk] [--many 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ckptcompat.state import Producer, Progress, TrainingState  # noqa: E402
from ckptcompat.store import CheckpointStore  # noqa: E402


def random_state(mb: float, seed: int = 0) -> TrainingState:
    """Dense layers of float32 random weights totalling about ``mb`` MB (no model config)."""
    rng = np.random.default_rng(seed)
    total = int(mb * 1e6 / 4)
    width = 1024
    weights: dict[str, np.ndarray] = {}
    layer = 0
    while total > 0:
        rows = max(1, min(total // width, 4096))
        weights[f"dense_{layer}/kernel"] = rng.standard_normal((rows, width), dtype=np.float32)
        weights[f"dense_{layer}/bias"] = rng.standard_normal((width,), dtype=np.float32)
        total -= rows * width + width
        layer += 1
    return TrainingState(weights=weights, progress=Progress(epoch=1, step=0, global_step=10),
                         producer=Producer(framework="ckptcompat", versions={}, format="keras_h5"))


def nbytes(state: TrainingState) -> int:
    return sum(a.nbytes for a in state.tensors().values())


def durable_save(store: CheckpointStore, state: TrainingState, epoch: int,
                 name: str = "model.weights.h5", fmt: str = "keras_h5") -> int:
    """What Checkpoint does per save, minus capture: returns bytes on disk."""

    with store.begin(epoch=epoch, step=0, global_step=epoch, format=fmt,
                     producer={"ckptcompat": "bench"}) as pending:
        pending.write_state(name, state, format=fmt)
    entry = store.latest()
    assert entry is not None
    return sum(rec.size for rec in entry.files.values())


def raw_fsync_write(folder: Path, size: int, chunk: int = 8 << 20) -> float:
    """Seconds to write ``size`` bytes with os.write + fsync (+ dir fsync), like dd conv=fsync.

    Each call writes a new file and keeps it (as the store keeps its checkpoints), so both
    sides pay the same for fresh page-cache pages and block allocation.
    """
    path = folder / f"raw-{os.getpid()}-{time.monotonic_ns()}.bin"
    block = np.random.default_rng(1).bytes(chunk)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left > 0:
            left -= os.write(fd, block[:min(left, chunk)])
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(folder, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return time.perf_counter() - t0


def bench_save(base: Path, sizes: list[float], repeat: int) -> None:
    print("== durable save (CheckpointStore + keras_h5 writer + state.json) vs os.write+fsync")
    print(f"{'model':>8} {'bytes':>12} {'save s':>8} {'MB/s':>8} {'raw s':>8} {'raw MB/s':>9} {'ratio':>6}")
    for mb in sizes:
        state = random_state(mb)
        saves, raws = [], []
        written = 0
        with CheckpointStore(base / f"save-{mb:g}", write=True) as store:
            for i in range(repeat):
                raws.append(raw_fsync_write(base, nbytes(state)))
                t0 = time.perf_counter()
                written = durable_save(store, state, i + 1)
                saves.append(time.perf_counter() - t0)
        save_s, raw_s = statistics.median(saves), statistics.median(raws)
        print(f"{mb:>6g}MB {written:>12d} {save_s:>8.2f} {written / save_s / 1e6:>8.1f} {raw_s:>8.2f} "
              f"{nbytes(state) / raw_s / 1e6:>9.1f} {save_s / raw_s:>6.2f}x")


def _framework_model(mb: float) -> tuple[Any, Any] | None:
    try:
        from ckptcompat import runtime

        flavour = runtime.detect()
    except Exception:  # noqa: BLE001 -- no framework installed
        return None
    if flavour not in ("keras2", "keras3"):
        return None
    keras = runtime.keras_module()
    keras.utils.set_random_seed(0)
    width = 1024
    depth = max(1, int(mb * 1e6 / 4 / 3 / (width * width)))   # weights + Adam m, v
    model = keras.Sequential([keras.Input((width,))] +
                             [keras.layers.Dense(width, name=f"dense_{i}") for i in range(depth)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(np.zeros((2, width), np.float32), np.zeros((2, width), np.float32), verbose=0, epochs=1)
    return keras, model


def _fill(store_dir: Path, count: int, last: TrainingState, name: str, fmt: str) -> None:
    tiny = TrainingState(weights={"d/kernel": np.zeros((1,), np.float32)},
                         producer=Producer(framework="ckptcompat", versions={}, format="keras_h5"))
    with CheckpointStore(store_dir, write=True) as store:
        for i in range(count - 1):
            with store.begin(epoch=i, step=0, format="keras_h5", producer={"ckptcompat": "bench"}) as p:
                (p.path / "model.weights.h5").write_bytes(b"x")   # old checkpoints: selection cost only
        durable_save(store, last, count, name=name, fmt=fmt)


def _timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_resume(base: Path, mb: float, many: int, repeat: int) -> None:
    from ckptcompat import runtime
    from ckptcompat.resuming.read import pick_and_read

    fw = _framework_model(mb)
    if fw is None:
        state, name, fmt = random_state(mb), "model.weights.h5", "keras_h5"
        keras = None
    else:
        keras, model = fw
        state = runtime.capture(model)
        keras3 = runtime.detect() == "keras3"
        name, fmt = ("model.keras", "keras_zip") if keras3 else ("model.h5", "keras_h5")
    print(f"== resume latency: store selection (manifest + sha256) + read, "
          f"{nbytes(state) / 1e6:.0f} MB {fmt} file ({'random state' if keras is None else 'real model'})")
    native_s: float | None = None
    for count in (1, many):
        store_dir = base / f"resume-{count}"
        t0 = time.perf_counter()
        _fill(store_dir, count, state, name, fmt)
        fill_s = time.perf_counter() - t0
        entry = CheckpointStore(store_dir).latest()
        assert entry is not None
        select_s = _timed(lambda: CheckpointStore(store_dir).latest_good(), repeat)  # noqa: B023
        read_s = _timed(lambda: pick_and_read(store_dir, "latest", monitor=None, mode=None,  # noqa: B023
                                              pattern=None), repeat)
        if keras is not None and native_s is None:
            native_s = _timed(lambda: keras.models.load_model(entry.path / name), repeat)  # noqa: B023
        native = "n/a" if native_s is None else f"{native_s:.3f}s"
        ratio = "n/a" if native_s is None else f"{read_s / native_s:.2f}x"
        print(f"{count:>5} checkpoint(s) (filled in {fill_s:.1f}s): select {select_s:.3f}s, "
              f"select+read {read_s:.3f}s, native load_model {native}, ratio {ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[100, 400], help="model sizes in MB")
    parser.add_argument("--resume-mb", type=float, default=100, help="model size for resume latency")
    parser.add_argument("--many", type=int, default=1000, help="checkpoints in the large store")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: TMPDIR)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ckptcompat-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        print(f"disk: {base}")
        bench_save(base, args.sizes, args.repeat)
        bench_resume(base, args.resume_mb, args.many, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
