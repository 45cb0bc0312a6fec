"""Under multi-worker training the chief decides when a signal stops the run.

A worker that stopped alone would leave the others waiting in the step's collectives, and
saving reads sync-on-read variables collectively, so every worker must save at the same step.
When the chief receives SIGTERM / SIGINT it writes a stop marker into the store directory
naming a step :data:`LEAD` steps ahead (a peer may already be inside the next step, never
beyond it: each step waits for every worker); every worker reads the marker at its batch ends
and, at that step, saves (the chief commits) and stops as on its own signal. A signal that
reaches only a non-chief worker is noted in the log and otherwise left to the chief.

The marker is written through the crash-safe write path and names the step the run started
from, so a marker left by an earlier run is never obeyed. Stores at URLs have no marker:
there a signal under multi-worker training stops nothing (the periodic saves remain).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ckptcompat.callbacks._workers import WorkerRole

__all__ = ["StopAgreement", "MARKER_NAME", "LEAD"]

log = logging.getLogger(__name__)

MARKER_NAME = ".ckptcompat-stop.json"
#: steps between the chief's decision and the agreed stop
LEAD = 2


class StopAgreement:
    """The step at which a signal stops training, agreed by every worker."""

    def __init__(self, role: WorkerRole, directory: object, start_step: int) -> None:
        self.role = role
        self.start_step = int(start_step)
        local = isinstance(directory, (str, os.PathLike)) and "://" not in os.fspath(directory)
        self._marker = Path(os.fspath(directory)) / MARKER_NAME if local else None  # type: ignore[arg-type]
        self._plan: tuple[int, int] | None = None  # (step, signal)
        self._noted = False
        if role.chief and self._marker is not None:
            self._remove()

    def stop_signal(self, received: int | None, iterations: int) -> int | None:
        """The signal to stop for at this batch end (``iterations`` steps done), else None."""
        if not self.role.distributed:
            return received
        if self._marker is None:
            self._note(received, "the store is at a URL: no stop marker under multi-worker training")
            return None
        if self.role.chief and received is not None and self._plan is None:
            self._plan = (iterations + LEAD, int(received))
            self._write()
        elif not self.role.chief:
            self._note(received, "the chief decides when to stop")
            if self._plan is None:
                self._plan = self._read()
        if self._plan is not None and iterations >= self._plan[0]:
            return self._plan[1]
        return None

    def close(self) -> None:
        """At the end of ``fit``: the chief removes its marker."""
        if self.role.chief and self.role.distributed and self._marker is not None:
            self._remove()

    # ------------------------------------------------------------------ marker file
    def _note(self, received: int | None, why: str) -> None:
        if received is not None and not self._noted:
            self._noted = True
            log.warning("worker %d: signal %d received; %s", self.role.index, received, why)

    def _write(self) -> None:
        from ckptcompat._atomic import atomic_write

        assert self._marker is not None and self._plan is not None
        body = {"step": self._plan[0], "signal": self._plan[1], "started_at": self.start_step}
        atomic_write(self._marker, json.dumps(body).encode())
        log.warning("chief: signal %d received; every worker stops after step %d",
                    self._plan[1], self._plan[0])

    def _read(self) -> tuple[int, int] | None:
        assert self._marker is not None
        try:
            raw = self._marker.read_bytes()
        except OSError:
            return None
        try:
            body = json.loads(raw[:4096])
            step, signum, started = int(body["step"]), int(body["signal"]), int(body["started_at"])
        except (ValueError, KeyError, TypeError):
            return None
        if started != self.start_step or step <= self.start_step:
            return None  # left by an earlier run
        return step, signum

    def _remove(self) -> None:
        assert self._marker is not None
        try:
            self._marker.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s: could not remove the stop marker: %s", self._marker, exc)
