"""Read a checkpoint's tensor data on a second thread while the model is rebuilt.

``resume(path)`` without ``model=`` has two long steps that need nothing from each other: reading
every tensor (file I/O) and rebuilding the model from its config (the framework creates and
initialises every variable). The file is first read under
:func:`~ckptcompat.formats._headers.lazy_tensors` (every check of every tensor's header done,
large tensors left as :class:`~ckptcompat.formats._headers.LazyTensor`); :class:`TensorPrefetch`
then loads them on a thread while the caller builds the model, and :meth:`TensorPrefetch.result`
hands back the state with every tensor in memory, as an eager read gives it. A failed load is
not raised from here: the caller reads the checkpoint again the eager way, which reports the
damage (or falls back to an older checkpoint) exactly as before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Optional

import numpy as np

from ckptcompat.formats._headers import LazyTensor
from ckptcompat.state import TrainingState

__all__ = ["TensorPrefetch"]

log = logging.getLogger(__name__)


class TensorPrefetch:
    """Loads the :class:`LazyTensor` values of ``state`` on a daemon thread (started here)."""

    def __init__(self, state: TrainingState) -> None:
        self._state = state
        values = list(state.tensors().values())
        if state.optimizer is not None:
            values += list(state.optimizer.extra.values())
        self._pending: List[LazyTensor] = [v for v in values if isinstance(v, LazyTensor)]
        self._loaded: Dict[int, np.ndarray] = {}
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ckptcompat-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for lazy in self._pending:
                if self._stop.is_set():
                    raise RuntimeError("stopped before every tensor was read")
                self._loaded[id(lazy)] = lazy.load()
        except BaseException as exc:  # handed to the caller by result(), never lost
            self._error = exc

    def join(self) -> None:
        """Wait until every tensor is loaded or a load failed."""
        self._thread.join()

    def stop_and_join(self) -> None:
        """Wait for the thread; when the wait itself is interrupted (Ctrl-C), ask it to stop
        after the tensor it is reading, wait for that, and re-raise."""
        try:
            self._thread.join()
        except BaseException:
            self._stop.set()
            self._thread.join()
            raise

    def result(self) -> Optional[TrainingState]:
        """The state with every tensor in memory; None when a load failed (logged): the caller
        reads the checkpoint again without prefetching."""
        self.join()
        if self._error is not None:
            log.info("reading the tensors ahead failed (%s); reading the checkpoint again", self._error)
            return None
        state = self._state
        weights = {k: self._swap(v) for k, v in state.weights.items()}
        optimizer = state.optimizer
        if optimizer is not None:
            import dataclasses

            slots = {var: {slot: self._swap(v) for slot, v in per.items()}
                     for var, per in optimizer.slots.items()}
            extra = {k: self._swap(v) for k, v in optimizer.extra.items()}
            optimizer = dataclasses.replace(optimizer, slots=slots, extra=extra)
        return state.replace(weights=weights, optimizer=optimizer)

    def _swap(self, value: Any) -> Any:
        return self._loaded[id(value)] if isinstance(value, LazyTensor) else value
