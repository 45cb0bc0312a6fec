"""Where a resume starts: the epoch and step (recorded, given, inferred from iterations, or
0 with a warning) and the data object's saved position (used by :func:`ckptcompat.resume`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ckptcompat.state import TrainingState

__all__ = ["position", "restore_data", "decide_epoch"]

log = logging.getLogger(__name__)


def position(cand: Any, state: TrainingState, *, initial_epoch: int | None,
              steps_per_epoch: int | None, data: Any, where: str) -> tuple[int, int, str, int | None]:
    """(epoch, step, how the epoch was decided, global step) to resume at."""
    step = cand.step if cand.step is not None else (state.progress.step or 0)
    global_step = cand.global_step if cand.global_step is not None else state.progress.global_step
    if global_step is None and state.optimizer is not None:
        global_step = state.optimizer.iterations
    epoch, step, epoch_source = decide_epoch(
        cand.epoch if cand.epoch is not None else state.progress.epoch, step, cand.source,
        initial_epoch=initial_epoch, global_step=global_step,
        steps_per_epoch=steps_per_epoch if steps_per_epoch is not None else _length(data), where=where)
    return epoch, step, epoch_source, global_step


def restore_data(data: Any, state: TrainingState, epoch: int, step: int,
                  where: str) -> tuple[int, int, bool]:
    """Give ``data`` its saved position; returns (epoch, step, whether it was restored), the
    data object's own position winning. Warns where the data order cannot be replayed."""
    data_state, data_restored = state.rng.get("data"), False
    if data is not None:
        if isinstance(data_state, Mapping):
            data.load_state_dict(dict(data_state))
            data_restored = True
            epoch, step = int(data.state_dict()["epoch"]), int(data.state_dict()["position"])
        else:
            log.warning("%s: the checkpoint holds no data state; the data object starts at epoch %d",
                        where, epoch)
    if data is None:
        from ckptcompat.data.rng import note_unreplayable_order

        note_unreplayable_order()
    if data is None and step:
        log.warning("%s: mid-epoch checkpoint (epoch %d, step %d) without a data object: the "
                    "interrupted epoch restarts from its first batch", where, epoch, step)
    return epoch, step, data_restored


def _length(data: Any) -> int | None:
    """Batches per epoch of a data object, when it knows (``len(data)``)."""
    try:
        n = len(data) if data is not None else None
    except TypeError:
        return None
    return int(n) if n else None


def decide_epoch(recorded: int | None, step: int, source: str, *, initial_epoch: int | None,
                  global_step: int | None, steps_per_epoch: int | None,
                  where: str) -> tuple[int, int, str]:
    """(epoch, step, how it was decided): recorded, ``initial_epoch=``, inferred from
    iterations // steps per epoch, or 0 with a warning."""
    if initial_epoch is not None:
        if recorded is not None and recorded != initial_epoch:
            log.warning("%s: the checkpoint records epoch %d (%s); initial_epoch=%d given, using it",
                        where, recorded, source, initial_epoch)
        return int(initial_epoch), 0, "initial_epoch"
    if recorded is not None:
        return int(recorded), step, source
    if global_step is not None and steps_per_epoch:
        epoch, rest = divmod(int(global_step), int(steps_per_epoch))
        log.warning("%s: the epoch is not recorded; inferred epoch %d (step %d) from the optimizer's "
                    "%d iterations at %d steps per epoch; pass initial_epoch= to set it", where, epoch,
                    rest, global_step, steps_per_epoch)
        return epoch, rest, "iterations"
    how = ("the optimizer's iterations are known but not the steps per epoch (pass steps_per_epoch=)"
           if global_step is not None else "no optimizer iterations either")
    log.warning("%s: the epoch is not recorded (no store, attributes, file name or sidecar tells it; "
                "%s); resuming from epoch 0 -- pass initial_epoch= to set it", where, how)
    return 0, step, "unknown"
