"""Background checkpoint writes: the training thread snapshots, one worker thread commits.

::

    writer = AsyncWriter()
    state = snapshot(runtime.capture(model))        # host copies, taken on the training thread
    writer.submit(lambda: commit(state))            # returns at once (waits only for the previous)
    ...
    writer.flush()                                  # wait; re-raise a failed write
    writer.close()

Rules (see ``docs/async.md``):

- at most one write in flight: ``submit`` first waits for the previous job to finish;
- an exception raised by a job is kept and re-raised, as
  :class:`~ckptcompat.errors.StoreWriteError` chained ``from`` the original, by the next
  ``submit``, ``flush`` or ``close`` (the job being submitted is then NOT queued);
- pending writes are finished at interpreter exit (``atexit``) and on ``SIGTERM`` (handler
  installed from the main thread only; it flushes every live writer, then chains to the
  previous handler, or restores the default action and re-sends the signal).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ckptcompat.errors import CkptCompatError, StoreWriteError

__all__ = ["AsyncWriter", "snapshot"]

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[AsyncWriter] = weakref.WeakSet()
_HOOKS_LOCK = threading.Lock()
_ATEXIT_DONE = False
_SIGTERM_INSTALLED = False
_PREVIOUS_SIGTERM: Any = None


def _copy_arrays(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out[key] = _copy_arrays(value)
        elif isinstance(value, np.ndarray):
            out[key] = np.array(value, copy=True, order="C")
        else:
            out[key] = copy.deepcopy(value)
    return out


def snapshot(state: Any, *, copy_tensors: bool = True) -> Any:
    """A copy of a :class:`~ckptcompat.state.TrainingState` sharing no mutable memory with it.

    Every array is copied (``np.array(copy=True)``: an array that is a view of a framework
    buffer may change when training goes on); histories, callback and RNG states are deep
    copies. Run it on the training thread before :meth:`AsyncWriter.submit`.
    ``copy_tensors=False`` keeps the weight and slot arrays as they are: for a state fresh
    from :func:`ckptcompat.runtime.capture`, whose arrays are already its own copies.
    """
    tensors = _copy_arrays if copy_tensors else dict
    opt = state.optimizer
    if opt is not None:
        opt = dataclasses.replace(opt, hyperparameters=copy.deepcopy(dict(opt.hyperparameters)),
                                  slots=_copy_arrays(opt.slots) if copy_tensors else
                                  {k: dict(v) for k, v in opt.slots.items()},
                                  config=copy.deepcopy(opt.config), extra=_copy_arrays(opt.extra))
    return state.replace(weights=tensors(state.weights), optimizer=opt,
                         history=copy.deepcopy(dict(state.history)),
                         callbacks=copy.deepcopy(dict(state.callbacks)),
                         rng=copy.deepcopy(dict(state.rng)),
                         model_config=copy.deepcopy(state.model_config),
                         training_config=copy.deepcopy(state.training_config))


def _wrap(exc: BaseException) -> StoreWriteError:
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    where = getattr(exc, "path", None) or getattr(exc, "filename", None)
    hint = getattr(exc, "hint", None) or (
        "the checkpoint was not committed; the ones committed before it are intact")
    return StoreWriteError(f"background checkpoint write failed: {type(exc).__name__}: {exc}",
                           path=where if isinstance(where, (str, os.PathLike)) else None,
                           hint=hint, errno=code if isinstance(code, int) else None)


class AsyncWriter:
    """One background thread running write jobs one at a time (see the module docstring).

    ``handle_sigterm``: install the process-wide SIGTERM handler (only possible from the main
    thread; elsewhere it is skipped with a debug log, and installed by the next writer made
    on the main thread).
    """

    def __init__(self, *, name: str = "ckptcompat-writer", handle_sigterm: bool = True) -> None:
        self.name = name
        self._cond = threading.Condition(threading.RLock())
        self._job: Callable[[], Any] | None = None
        self._busy = False
        self._error: BaseException | None = None
        self._closed = False
        self.submitted = 0
        self.completed = 0
        self.last_stall_s = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _register(self, handle_sigterm)

    # -- public API ----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a job is queued or running."""
        with self._cond:
            return self._busy or self._job is not None

    def submit(self, job: Callable[[], Any]) -> None:
        """Queue ``job`` (a no-argument callable) after waiting for the previous one.

        Raises :class:`StoreWriteError` (chained from the cause) if the previous job failed;
        ``job`` is then not queued. ``self.last_stall_s`` is the time spent waiting here.
        """
        if not callable(job):
            raise TypeError(f"submit() needs a callable, got {type(job).__name__}")
        start = time.perf_counter()
        with self._cond:
            if self._closed:
                raise CkptCompatError("this AsyncWriter is closed",
                                      hint="make a new AsyncWriter for further writes")
            self._wait_idle(None)
            self._raise_error()
            if self._closed:
                raise CkptCompatError("this AsyncWriter was closed while waiting",
                                      hint="make a new AsyncWriter for further writes")
            self._job = job
            self.submitted += 1
            self._cond.notify_all()
        self.last_stall_s = time.perf_counter() - start

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; re-raise a failed job's error.

        Returns False when ``timeout`` (seconds) ran out first, True otherwise.
        """
        with self._cond:
            done = self._wait_idle(timeout)
            self._raise_error()
            return done

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the worker thread (idempotent); re-raises a failed job's error."""
        with self._cond:
            if self._closed:
                self._raise_error()
                return
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout)
            _LIVE.discard(self)

    def __enter__(self) -> AsyncWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AsyncWriter(name={self.name!r}, submitted={self.submitted}, "
                f"completed={self.completed}, busy={self.busy})")

    # -- internals -----------------------------------------------------------------------
    def _wait_idle(self, timeout: float | None) -> bool:
        if threading.current_thread() is self._thread:
            return True  # a job flushing its own writer must not wait for itself
        return self._cond.wait_for(lambda: not self._busy and self._job is None, timeout)

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise _wrap(error) from error

    def _run(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # SIGTERM/SIGINT go to a thread that runs handlers:
            signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_HERE)  # a write's syscalls never take them
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed)
                if self._job is None:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 -- kept and re-raised on the caller's thread
                logger.error("%s: background checkpoint write failed: %s: %s", self.name,
                             type(exc).__name__, exc)
                with self._cond:
                    self._error = exc
            else:
                with self._cond:
                    self.completed += 1
            finally:
                del job
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _drain(self, why: str, close: bool) -> None:
        """Finish pending work without raising (exit paths): failures are logged."""
        if self.busy:
            logger.info("%s: %s: waiting for the pending checkpoint write", self.name, why)
        try:
            if close:
                self.close()
            else:
                self.flush()
        except Exception as exc:  # noqa: BLE001 -- nobody left to raise to
            logger.error("%s: pending checkpoint write failed at %s: %s", self.name, why, exc)


#: signals the writer thread never takes: Python runs handlers in the main thread only, and a
#: process-directed signal taken by this thread would leave a main thread that sits in a long
#: system call (``time.sleep``, a blocking read) unaware of it until that call returns
_BLOCKED_HERE = {getattr(signal, n) for n in ("SIGTERM", "SIGINT") if hasattr(signal, n)}


# -- process-wide hooks --------------------------------------------------------------------
def _drain_all(why: str, close: bool) -> None:
    for writer in list(_LIVE):
        writer._drain(why, close)  # noqa: SLF001


def _at_exit() -> None:
    _drain_all("interpreter exit", True)


def _on_sigterm(signum: int, frame: Any) -> None:
    _drain_all("SIGTERM", False)  # flush only: a previous handler may let the process go on
    previous = _PREVIOUS_SIGTERM
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # default action (or a handler not set from Python): restore it and re-send the signal
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _register(writer: AsyncWriter, handle_sigterm: bool) -> None:
    global _ATEXIT_DONE, _SIGTERM_INSTALLED, _PREVIOUS_SIGTERM
    _LIVE.add(writer)
    with _HOOKS_LOCK:
        if not _ATEXIT_DONE:
            atexit.register(_at_exit)
            _ATEXIT_DONE = True
        if not handle_sigterm or _SIGTERM_INSTALLED or not hasattr(signal, "SIGTERM"):
            return
        if threading.current_thread() is not threading.main_thread():
            logger.debug("AsyncWriter made off the main thread: no SIGTERM handler installed")
            return
        _PREVIOUS_SIGTERM = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
        _SIGTERM_INSTALLED = True
