"""``Checkpoint``'s own restore: a rerun of the unchanged script continues by itself.

When a :class:`~ckptcompat.callbacks.Checkpoint` is attached to the model of a ``fit`` (Keras
calls ``set_model`` on every callback before any ``on_train_begin``), :func:`restore_live`
reads the newest good checkpoint of its store and restores it into the live model through
:func:`ckptcompat.resume` (``model=``): weights, optimizer (slots, iterations, learning rate),
RNG, the data object's position, and the callback states, offered to every ckptcompat
callback of the model before their ``on_train_begin``. The epoch to start at is set in
``on_train_begin`` through the running flavour's ``start_fit_at`` (Keras' own hook of
``BackupAndRestore``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["restore_live", "has_checkpoints"]

log = logging.getLogger(__name__)


def has_checkpoints(directory: str | os.PathLike[str]) -> bool:
    """True when the store at ``directory`` lists at least one committed checkpoint."""
    from ckptcompat.errors import CheckpointNotFoundError
    from ckptcompat.store import CheckpointStore

    try:
        store = CheckpointStore(directory)
    except CheckpointNotFoundError:
        return False
    return bool(store.checkpoints())


def restore_live(directory: str | os.PathLike[str], model: Any, *, data: Any = None,
                 learning_rate: float | None = None) -> Any:
    """Restore the newest good checkpoint of ``directory`` into ``model``.

    Returns the :class:`~ckptcompat.resuming.ResumeResult`, or None when the store holds no
    checkpoint yet (a first run: training starts from the model as it is). A store whose
    checkpoints are all unreadable, or that does not fit the model, raises the typed error
    of :func:`ckptcompat.resume`: a run is never silently started over.
    """
    if not has_checkpoints(directory):
        log.info("%s: no checkpoint yet; training starts from the beginning", directory)
        return None
    from ckptcompat.resuming.orchestrate import resume

    run = resume(directory, model=model, data=data, learning_rate=learning_rate)
    log.info("continuing %s from epoch %d, batch %d (optimizer step %s)", directory,
             run.initial_epoch, run.initial_step, run.global_step)
    return run
