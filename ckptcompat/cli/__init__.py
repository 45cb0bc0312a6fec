"""The ``ckptcompat`` command: ``commands`` (argument parsing and sub-commands), ``tables``
(ls / verify tables), ``plot`` (history plots), ``demo`` (the power-cut demo) and
``demo_child`` (its training process)."""

from __future__ import annotations

from ckptcompat.cli.commands import main

__all__ = ["main"]
