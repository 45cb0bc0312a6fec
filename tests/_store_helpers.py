"""Helpers shared by the tests of ckptcompat.store."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptcompat.store import CheckpointEntry, CheckpointStore


def payload(epoch: int, step: int = 0) -> dict[str, bytes]:
    """Distinct file contents for a checkpoint (two files, one in a sub-directory)."""
    return {
        "model.weights.h5": bytes([epoch % 256, step % 256]) * (1000 + epoch),
        "state/state.json": f'{{"epoch": {epoch}, "step": {step}}}'.encode(),
    }


def commit(store: CheckpointStore, epoch: int, step: int = 0, *,
           metrics: Mapping[str, float] | None = None,
           files: Mapping[str, bytes] | None = None, **kwargs: Any) -> CheckpointEntry:
    """Commit one checkpoint with ``files`` (default :func:`payload`) and return its entry."""
    with store.begin(epoch=epoch, step=step, metrics=metrics, **kwargs) as pending:
        for rel, data in (files or payload(epoch, step)).items():
            target = pending.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    assert pending.entry is not None
    return pending.entry


def store_names(directory: Path) -> list[str]:
    """Directory entries of a store, sorted."""
    return sorted(p.name for p in directory.iterdir())
