"""Private helper: best weights kept on disk in a :class:`~ckptcompat.store.CheckpointStore`.

Each improvement writes the model's weights (``runtime.capture(include_optimizer=False)``)
as a weights-only legacy ``.h5`` (format ``keras_h5``) in a new committed
checkpoint of the store, tagged with the monitored value. The callback state records the
checkpoint id, so after a restart the weights of *that* improvement are restored even when
the killed run had written newer ones. Retention keeps the 3 newest and the best one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ckptcompat.errors import CkptCompatError
from ckptcompat.store import CheckpointStore, Retention
from ckptcompat.store.urls import is_remote, location

__all__ = ["BestWeights", "WEIGHTS_FILE", "default_directory"]

log = logging.getLogger(__name__)

WEIGHTS_FILE = "best_weights.h5"


def default_directory(model: Any, state_key: str) -> str | Path:
    """Where best weights go when no ``store=`` was given.

    Inside the store of a ckptcompat ``Checkpoint`` callback registered on the model, in its
    hidden folder ``.aux-<state_key>`` (:data:`~ckptcompat.store.io.AUX_PREFIX`), so they live
    and move with the run and nothing is added beside it in the user's folder; else a new
    temporary directory (recorded in the callback state, so a restart on the same machine
    still finds it).
    """
    from ckptcompat.callbacks import _state
    from ckptcompat.store.io import AUX_PREFIX

    for callback in _state.registered(model).values():
        directory = getattr(callback, "directory", None)
        if isinstance(directory, (str, os.PathLike)):
            if is_remote(directory):  # beside the URL store: its writer removes unlisted files
                return f"{str(directory).rstrip('/')}-{state_key}"
            return Path(directory) / f"{AUX_PREFIX}{state_key}"
    path = Path(tempfile.mkdtemp(prefix=f"ckptcompat-{state_key}-"))
    log.info("best weights of %s are kept in %s (pass store= to choose the folder)", state_key, path)
    return path


class BestWeights:
    """Save / load the best weights of one callback in the store at ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], monitor: str, mode: str) -> None:
        self.directory = location(directory)
        self.monitor = monitor
        self.mode = mode

    def save(self, model: Any, *, epoch: int, step: int, global_step: int | None,
             value: float | None) -> int:
        """Write ``model``'s weights as a new checkpoint; returns its id."""
        from ckptcompat import runtime
        from ckptcompat import formats

        state = runtime.capture(model, include_optimizer=False)
        metrics = {self.monitor: value} if value is not None else {}
        with CheckpointStore(self.directory, write=True, monitor=self.monitor, mode=self.mode,
                             retention=Retention(keep_last=3, keep_best=1)) as store:
            with store.begin(epoch=epoch, step=step, global_step=global_step, metrics=metrics,
                             format="keras_h5", producer=state.producer) as pending:
                formats.write(pending.path / WEIGHTS_FILE, state, format="keras_h5")
            return max(entry.id for entry in store.checkpoints())

    def load(self, model: Any, checkpoint_id: int) -> bool:
        """Assign the weights of checkpoint ``checkpoint_id`` to ``model`` (weights only)."""
        from ckptcompat import runtime
        from ckptcompat import formats

        try:
            store = CheckpointStore(self.directory)
            entry = store.get(checkpoint_id)
        except CkptCompatError as exc:  # pruned or removed: say so, keep the trained weights
            log.warning("best weights checkpoint %s not found in %s (%s); weights not restored",
                        checkpoint_id, self.directory, exc)
            return False
        state = formats.read(store.fetch(entry) / WEIGHTS_FILE, format="keras_h5")
        state = state.replace(optimizer=None)
        runtime.apply(state, model)
        return True
