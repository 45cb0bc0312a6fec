"""SIGTERM / SIGINT during ``fit``: remember the signal, let the callback finish the batch.

:class:`SignalCatcher` replaces the handlers of SIGTERM and SIGINT while ``fit`` runs (main
thread only: Python delivers signals to the main thread and refuses handlers elsewhere) and
puts the previous ones back afterwards. The first signal only sets :attr:`received`; the
:class:`~ckptcompat.callbacks.Checkpoint` callback sees it at the end of the batch, commits a
checkpoint and stops training. A second signal stops at once: the previous handlers are put
back and ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(128 + signum)`` (SIGTERM) is raised.

Keras calls no callback when ``fit`` raises, so the handlers may outlive it: a signal that
arrives while no Keras ``fit`` is on the main thread's stack puts the previous handlers back
and is handled by them (Ctrl+C raises ``KeyboardInterrupt`` again, SIGTERM terminates).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

__all__ = ["SignalCatcher", "SIGNALS", "exit_code"]

log = logging.getLogger(__name__)

#: The signals that ask a training process to stop.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum: int) -> int:
    """The shell's exit status of a process stopped by ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


class SignalCatcher:
    """Catches :data:`SIGNALS` between :meth:`install` and :meth:`uninstall`."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> bool:
        """Install the handlers; False (nothing changed) outside the main thread."""
        self.received = None
        self.uninstall()  # a fit that raised left them installed: never chain onto ourselves
        if threading.current_thread() is not threading.main_thread():
            log.debug("not the main thread: SIGTERM/SIGINT are left to their handlers")
            return False
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def uninstall(self) -> None:
        """Put the previous handlers back (idempotent)."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not _inside_fit(frame):
            self._pass_on(signum, frame)
            return
        if self.received is not None:
            self.uninstall()
            log.warning("%s received again: stopping at once, without a checkpoint", name)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(exit_code(signum))
        self.received = signum
        log.warning("%s received: finishing the current batch, then saving a checkpoint "
                    "(send it again to stop at once)", name)

    def _pass_on(self, signum: int, frame: Any) -> None:
        """``fit`` is over (it raised; no ``on_train_end`` came): the previous handlers back,
        this signal handled by the one it had."""
        previous = self._previous.get(signum)
        self.uninstall()
        log.debug("%s outside fit: handled by its previous handler", signal.Signals(signum).name)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # the default action, now that SIG_DFL is back


def _inside_fit(frame: Any) -> bool:
    """Whether a Keras ``fit`` (Keras 2 or 3, any backend) is on the stack of ``frame``."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "fit" and "keras" in code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False
