"""Paths the tests share: the repository root, the committed fixtures, the real-checkpoint corpus."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ROOT", "FIXTURES", "REAL_CHECKPOINTS"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_CHECKPOINTS = ROOT.parent / "shared" / "real-checkpoints"
