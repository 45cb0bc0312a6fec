#!/usr/bin/env python3
"""Training-thread stall per checkpoint: ckptcompat (sync / async) vs native ModelCheckpoint.

Trains one model (Dense layers of about ``--mb`` MB of weights, Adam) and checkpoints every
``--every`` batches with, in turn:

- ``native``: ``keras.callbacks.ModelCheckpoint(save_freq=every)`` (a full-model file; one file
  per save, like ``Checkpoint``'s default, or one overwritten file with ``--keep-last 1``);
- ``ckptcompat sync``: ``ckptcompat.callbacks.Checkpoint(save_freq=every, async_save=False)``;
- ``ckptcompat default``: ``Checkpoint(save_freq=every)`` (asynchronous from 32 MiB of weights);
- ``ckptcompat async``: ``Checkpoint(..., async_save=True)`` when the callback supports it;
  otherwise the same pipeline done by hand: capture + :func:`snapshot` on the training
  thread, commit through :class:`AsyncWriter` (the output says which one ran).

The stall is the time the training thread spends inside the checkpoint callback's hooks
(batch-end and epoch-end: the median over the ``--saves`` checkpoints); for async it includes
any wait for the previous background write (at most one is in flight), and the whole ``fit``
time (the final flush included) is reported beside it. Ratios are
measured in the same run: ``--rounds N`` runs every variant N times, interleaved round after
round, and keeps the median of the rounds' medians. Not a test.

    python benchmarks/bench_async.py [--mb 100] [--saves 10] [--every 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _timed_callback(keras: Any, inner: Any, stalls: list[float], waits: list[float]) -> Any:
    """A callback forwarding to ``inner`` and recording each hook call's duration."""

    class Timed(keras.callbacks.Callback):
        def set_model(self, model: Any) -> None:
            super().set_model(model)
            inner.set_model(model)

        def set_params(self, params: Any) -> None:
            super().set_params(params)
            inner.set_params(params)

        def _call(self, name: str, *args: Any) -> None:
            writer = getattr(inner, "_writer", None)
            before = None if writer is None else writer.submitted
            t0 = time.perf_counter()
            getattr(inner, name)(*args)
            stalls.append(time.perf_counter() - t0)
            writer = getattr(inner, "_writer", None)
            if writer is not None and writer.submitted != before:
                waits.append(writer.last_stall_s)  # part of the stall spent waiting for a write

        def on_train_begin(self, logs: Any = None) -> None:
            inner.on_train_begin(logs)

        def on_train_end(self, logs: Any = None) -> None:
            t0 = time.perf_counter()
            inner.on_train_end(logs)
            self.end_s = time.perf_counter() - t0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            inner.on_epoch_begin(epoch, logs)

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            inner.on_train_batch_begin(batch, logs)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._call("on_train_batch_end", batch, logs)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self._call("on_epoch_end", epoch, logs)

    return Timed()


def _manual_async(keras: Any, directory: Path, every: int) -> Any:
    """Capture + snapshot on the training thread; commit on the AsyncWriter's thread."""
    from ckptcompat import runtime
    from ckptcompat.callbacks.async_writer import AsyncWriter, snapshot
    from ckptcompat.state import Progress
    from ckptcompat.store import CheckpointStore

    keras3 = runtime.detect() == "keras3"
    name, fmt = ("model.keras", "keras_zip") if keras3 else ("model.h5", "keras_h5")

    class ManualAsync(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.store = CheckpointStore(directory, write=True)
            self.writer = AsyncWriter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            step = int(np.asarray(self.model.optimizer.iterations))
            if step % every:
                return
            state = snapshot(runtime.capture(self.model))
            state = state.replace(progress=Progress(epoch=0, step=step, global_step=step))
            store = self.store

            def commit() -> None:
                with store.begin(epoch=0, step=step, global_step=step, format=fmt,
                                 producer=state.producer) as pending:
                    pending.write_state(name, state, format=fmt)

            self.writer.submit(commit)

        def on_train_end(self, logs: Any = None) -> None:
            self.writer.close()
            self.store.close()

    return ManualAsync()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="weights size in MB")
    parser.add_argument("--saves", type=int, default=10,
                        help="checkpoints per run (the first ones also allocate host buffers)")
    parser.add_argument("--every", type=int, default=16,
                        help="checkpoint every N batches (enough training between saves for one "
                             "background write; fewer and the stall is the wait for the last write)")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep-last", type=int, default=None,
                        help="Checkpoint(keep_last=N); native then overwrites one file "
                             "(default: every checkpoint kept, by both)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved runs of every variant")
    args = parser.parse_args(argv)

    from ckptcompat import runtime
    from ckptcompat.callbacks import Checkpoint

    flavour = runtime.detect()
    keras = runtime.keras_module()
    width = 1024
    depth = max(1, int(args.mb * 1e6 / 4 / (width * width)))
    # build() trains one step first: one batch fewer puts the last save on the epoch end
    batches = args.saves * args.every - 1
    x = np.random.default_rng(0).random((batches * 8, width), dtype=np.float32)

    def build() -> Any:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((width,))] +
                                 [keras.layers.Dense(width, name=f"dense_{i}") for i in range(depth)])
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        model.fit(x[:8], x[:8], batch_size=8, verbose=0)   # build + trace outside the timing
        return model

    async_native = "async_save" in inspect.signature(Checkpoint.__init__).parameters
    suffix = ".keras" if flavour == "keras3" else ".h5"
    native_name = "native" + suffix if args.keep_last else "native-{epoch:02d}-{batch:04d}" + suffix
    runs = {
        "native ModelCheckpoint": lambda base: keras.callbacks.ModelCheckpoint(
            str(base / native_name), save_freq=args.every),
        "ckptcompat sync": lambda base: Checkpoint(base, save_freq=args.every, async_save=False,
                                                   keep_last=args.keep_last),
        "ckptcompat default (async_save=None)": lambda base: Checkpoint(base, save_freq=args.every,
                                                                        keep_last=args.keep_last),
        ("ckptcompat async (Checkpoint async_save=True)" if async_native else
         "ckptcompat async (manual: capture+snapshot+AsyncWriter.submit; Checkpoint not wired)"):
            (lambda base: Checkpoint(base, save_freq=args.every, async_save=True, keep_last=args.keep_last))
            if async_native else (lambda base: _manual_async(keras, base, args.every)),
    }
    size_mb = depth * (width * width + width) * 4 / 1e6
    print(f"{flavour}: model {depth} x Dense({width}) = {size_mb:.0f} MB weights (+ Adam slots), "
          f"{args.saves} checkpoints, one every {args.every} batches, keep_last={args.keep_last}, "
          f"{args.rounds} round(s)")
    stall: dict[str, list[float]] = {label: [] for label in runs}
    fit: dict[str, list[float]] = {label: [] for label in runs}
    with tempfile.TemporaryDirectory(prefix="ckptcompat-bench-async-", dir=args.dir) as tmp:
        for round_no in range(args.rounds):
            for label, make in runs.items():
                base = Path(tmp) / "run"
                base.mkdir()
                per, total = _one_run(keras, build, make(base), x, args.saves)
                shutil.rmtree(base)
                stall[label].append(per)
                fit[label].append(total)
                print(f"  round {round_no + 1} {label}: stall per checkpoint median {per:.3f}s, "
                      f"fit {total:.2f}s", flush=True)
    native_stall = statistics.median(stall["native ModelCheckpoint"])
    native_fit = statistics.median(fit["native ModelCheckpoint"])
    print(f"{'':48} {'stall/ckpt':>10} {'ratio':>6} {'fit s':>7} {'ratio':>6}")
    for label in runs:
        per, total = statistics.median(stall[label]), statistics.median(fit[label])
        print(f"{label[:48]:48} {per:10.3f} {per / native_stall:5.2f}x {total:7.2f} {total / native_fit:5.2f}x")
    return 0


def _one_run(keras: Any, build: Any, callback: Any, x: np.ndarray, saves: int) -> tuple[float, float]:
    """(median stall per checkpoint, whole fit seconds) of one fit with ``callback``."""
    model = build()
    stalls: list[float] = []
    waits: list[float] = []
    timed = _timed_callback(keras, callback, stalls, waits)
    t0 = time.perf_counter()
    model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[timed])
    total = time.perf_counter() - t0
    top = sorted(range(len(stalls)), key=stalls.__getitem__, reverse=True)[:saves]  # the save stalls
    return statistics.median(stalls[i] for i in top), total


if __name__ == "__main__":
    sys.exit(main())
