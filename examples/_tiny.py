"""Shared bits of the examples: generated image data (no downloads) and the simulated crash.

Not part of ckptcompat: only what every example script needs to run on its own data-free.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["images", "parser", "stop_after", "report_start", "weights_digest", "write_summary"]


def images(n: int, seed: int, size: int = 12, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy ``size`` x ``size`` RGB images: horizontal stripes, vertical stripes, squares."""
    rng = np.random.default_rng([seed, n, size])
    y = rng.integers(0, classes, size=n)
    x = np.zeros((n, size, size, 3), dtype=np.float32)
    grid = np.arange(size)
    for i, label in enumerate(y):
        phase, width = int(rng.integers(0, 3)), int(rng.integers(3, size // 2 + 1))
        if label == 0:
            x[i, (grid + phase) % 3 == 0] = 1.0
        elif label == 1:
            x[i, :, (grid + phase) % 3 == 0] = 1.0
        else:
            r, c = rng.integers(0, size - width, size=2)
            x[i, r:r + width, c:c + width] = 1.0
    x += rng.normal(0.0, 0.4, size=x.shape).astype(np.float32)
    return x, y.astype(np.int64)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """``--workdir``, ``--tiny`` and ``--stop-after`` (SIGKILL itself after that many epochs)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("."), help="where checkpoints and outputs go")
    p.add_argument("--tiny", action="store_true", help="tiny generated data, a few steps (tests)")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="simulate a crash: SIGKILL this process after N epochs of this run")
    return p


def stop_after(keras: Any, epochs: int | None) -> list[Any]:
    """A callback (put it last) that kills the process at the end of its ``epochs``-th epoch."""
    if not epochs:
        return []

    class _Crash(keras.callbacks.Callback):
        seen = 0

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seen += 1
            if self.seen >= epochs:
                print(f"simulated crash after epoch {epoch + 1}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    return [_Crash()]


def report_start(keras: Any, workdir: Path, key: str = "started_at", epochs: int | None = None) -> Any:
    """A callback that, at the first epoch this run trains, prints ``epochs A..B`` and writes
    ``key`` (that epoch) and the learning rate into ``summary.json``; a finished run trains
    no epoch and writes nothing."""

    class _Start(keras.callbacks.Callback):
        done = False

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self.done:
                return
            self.done = True
            lr = float(np.asarray(self.model.optimizer.learning_rate))
            last = epochs or (self.params or {}).get("epochs")
            print(f"epochs {epoch + 1}..{last} at learning rate {lr:g}", flush=True)
            write_summary(workdir, **{key: int(epoch), "learning_rate": lr})

    return _Start()


def weights_digest(model: Any) -> str:
    """sha256 of every weight of ``model`` (tests compare a resumed run with an uninterrupted one)."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def write_summary(workdir: Path, **values: Any) -> None:
    """``summary.json`` in ``workdir`` (read by tests/matrix/test_examples.py), merged with earlier runs."""
    path = workdir / "summary.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(values)
    path.write_text(json.dumps(old, indent=1, default=float))
    print(json.dumps(values, default=float))
