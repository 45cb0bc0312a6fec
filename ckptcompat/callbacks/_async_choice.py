"""Whether ``Checkpoint(async_save=None)`` saves asynchronously: where it pays.

A synchronous save stalls training for the whole write (sha256, ``fsync``, manifest); an
asynchronous one only for a host copy of the state, but keeps two host copies (the double
buffer) and competes with training for the cores while it writes. Measured with
``benchmarks/bench_async.py`` and ``benchmarks/bench_issue18.py`` (figures in
``benchmarks/README.md`` and docs/async.md): from tens of MB of weights the stall of a
synchronous save is a visible part of training time and the asynchronous one is a tenth of
it; for small models both take milliseconds, and the thread and the copy are not worth it.
Multi-worker runs save synchronously: every worker takes part in the same reads at the same
step, and the chief's commit is what the others' stop agreement waits for.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["ASYNC_FROM_BYTES", "weight_bytes", "async_pays"]

log = logging.getLogger(__name__)

#: weights of at least this many bytes make ``async_save=None`` save asynchronously (32 MiB)
ASYNC_FROM_BYTES = 32 * 2 ** 20


def weight_bytes(model: Any) -> int:
    """Bytes of the model's weights (shapes and dtypes only, nothing read)."""
    total = 0
    for var in getattr(model, "weights", None) or ():
        dtype = getattr(var, "dtype", "float32")
        dtype = getattr(dtype, "as_numpy_dtype", dtype)
        try:
            itemsize = np.dtype(dtype).itemsize
        except TypeError:  # bfloat16 and the like without ml_dtypes
            itemsize = 4
        size = 1
        for dim in tuple(getattr(var, "shape", ()) or ()):
            size *= int(dim or 0)
        total += size * itemsize
    return total


def async_pays(model: Any, distributed: bool) -> bool:
    """True when the default save of ``model`` is asynchronous (logged either way)."""
    if distributed:
        log.info("checkpoints are written synchronously (multi-worker training)")
        return False
    size = weight_bytes(model)
    choice = size >= ASYNC_FROM_BYTES
    log.info("checkpoints are written %s (%.1f MiB of weights; asynchronous from %d MiB; pass "
             "async_save= to choose)", "asynchronously" if choice else "synchronously",
             size / 2 ** 20, ASYNC_FROM_BYTES // 2 ** 20)
    return choice
