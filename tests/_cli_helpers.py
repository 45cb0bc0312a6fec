"""Helpers for the ``ckptcompat`` subcommand tests: real fixture files, stores made with CheckpointStore."""

from __future__ import annotations

import shutil
from pathlib import Path

from ckptcompat.formats import sidecar
from ckptcompat.state import Progress, TrainingState
from ckptcompat.store import CheckpointStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODEL_H5 = FIXTURES / "tf212" / "mlp_adam" / "model.h5"

#: (epoch, loss, val_loss) of the checkpoints make_store commits, in commit order
RUN = [(1, 0.9, 0.8), (2, 0.7, 0.5), (3, 0.6, 0.55)]


def make_store(directory: Path, run: list[tuple[int, float, float]] = RUN) -> Path:
    """A store with one checkpoint per entry of ``run``: a real model.h5 plus a state.json history."""
    history: dict[int, tuple[float, float]] = {}
    with CheckpointStore(directory, write=True, monitor="val_loss", mode="min") as store:
        for epoch, loss, val_loss in run:
            history = {e: v for e, v in history.items() if e < epoch}
            history[epoch] = (loss, val_loss)
            with store.begin(epoch=epoch, metrics={"loss": loss, "val_loss": val_loss},
                             format="keras_h5", producer={"keras": "2.12.0"}) as pending:
                shutil.copy(MODEL_H5, pending.path / "model.h5")
                epochs = sorted(history)
                sidecar.write(pending.path / "state.json", TrainingState(
                    progress=Progress(epoch=epoch, step=0),
                    history={"loss": [history[e][0] for e in epochs],
                             "val_loss": [history[e][1] for e in epochs]}))
    return directory


def one_error_line(err: str, command: str) -> str:
    """The single ``ckptcompat <command>: error: ... Hint: ...`` line on stderr."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ckptcompat {command}: error: "), err
    assert "Hint: " in lines[0], err
    return lines[0]
