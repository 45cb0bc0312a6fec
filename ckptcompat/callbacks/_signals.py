"""SIGTERM / SIGINT during ``fit``: remember the signal, let the callback finish the batch.

:class:`SignalCatcher` replaces the handlers of SIGTERM and SIGINT while ``fit`` runs (main
thread only: Python delivers signals to the main thread and refuses handlers elsewhere) and
puts the previous ones back afterwards. The first signal only sets :attr:`received`; the
:class:`~ckptcompat.callbacks.Checkpoint` callback sees it at the end of the batch, commits a
checkpoint and stops training. A second signal stops at once: the previous handlers are put
back and ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(128 + signum)`` (SIGTERM) is raised.
"""

from __future__ import annotations

import logging
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
        if self.received is not None:
            self.uninstall()
            log.warning("%s received again: stopping at once, without a checkpoint", name)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(exit_code(signum))
        self.received = signum
        log.warning("%s received: finishing the current batch, then saving a checkpoint "
                    "(send it again to stop at once)", name)
