"""What each Keras's ``fit`` does with the length of a ``Sequence`` (ckptcompat's data objects).

A data object restored inside an epoch serves only the rest of that epoch; how the shortened
epoch is run depends on when ``fit`` asks for ``len()``:

- ``"every_epoch"``: before every epoch (tf.keras >= 2.10, tf-keras, standalone Keras >= 2.3):
  the data object answers the shortened length for the resumed epoch, the full one after.
- ``"widen"``: once, when ``fit`` starts, into a ``DataHandler`` that re-reads its steps per
  epoch before every epoch (tf.keras 2.3 - 2.9, i.e. TF 2.2 - 2.9): at each epoch start the
  handler is set to ``len(data)`` (:func:`match_data_handler`), short for the resumed epoch,
  full after it.
- ``"fixed"``: once, into a local of the training loop (tf.keras 2.2.4-tf of TF 1.15 - 2.1,
  standalone Keras < 2.3): one ``fit`` can run the resumed epoch or full epochs, not both.
- ``"exhaustion"``: once, and the epoch ends when the data runs out (Keras 3).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ckptcompat.names.configs.keras2_releases import release_tuple

__all__ = ["POLICIES", "tf_keras_policy", "standalone_policy", "match_data_handler"]

logger = logging.getLogger(__name__)

POLICIES = ("every_epoch", "widen", "fixed", "exhaustion")
_UNREADABLE = release_tuple("")  # what release_tuple answers for a version it cannot read


def tf_keras_policy(version: str) -> str:
    """The policy of tf.keras / tf-keras ``version`` (``keras.__version__``: ``2.2.4-tf``,
    ``2.4.0``, ``2.11.0`` ...): re-inferred per epoch from 2.10, a ``DataHandler`` from 2.3
    (TF 2.2), the v1 loops before. An unreadable version is taken as the newest (logged)."""
    found = release_tuple(str(version))
    if found == _UNREADABLE:
        logger.warning("tf.keras version %r not understood; assuming fit() reads len(data) before "
                       "every epoch (tf.keras 2.10+)", version)
        return "every_epoch"
    if found >= (2, 10):
        return "every_epoch"
    return "widen" if found >= (2, 3) else "fixed"


def standalone_policy(version: str) -> str:
    """Standalone Keras recomputes ``steps_per_epoch`` after each epoch from 2.3 on."""
    return "every_epoch" if release_tuple(str(version)) >= (2, 3) else "fixed"


_MAX_FRAMES = 64


def _handler_of(value: Any, data: Any) -> bool:
    """Whether ``value`` is a Keras ``DataHandler`` (a class of that name, or a subclass, from a
    Keras module: never by asking arbitrary objects for attributes) that feeds ``data``."""
    if not any(c.__name__ == "DataHandler" and "keras" in c.__module__ for c in type(value).__mro__):
        return False
    adapter = getattr(value, "_adapter", None)
    return getattr(adapter, "_keras_sequence", None) is data and hasattr(value, "_inferred_steps")


def match_data_handler(data: Any, steps: int) -> str:
    """Set the running ``fit``'s ``DataHandler`` for ``data`` to ``steps`` per epoch (tf.keras
    2.3 - 2.9 keep it in a local of ``Model.fit``; its ``steps()`` re-reads it every epoch).
    Call from a callback inside that ``fit``: the frames out from the caller are searched for
    the handler. Returns ``"set"``, ``"fit_steps"`` (that frame was given
    ``fit(steps_per_epoch=k)``: left alone) or ``"not_found"``."""
    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        local = frame.f_locals
        handler = next((v for v in list(local.values()) if _handler_of(v, data)), None)
        if handler is not None:
            if local.get("steps_per_epoch") is not None:
                return "fit_steps"
            if handler._inferred_steps != int(steps):  # noqa: SLF001 -- Keras 2's own counter
                logger.debug("fit's steps per epoch: %s -> %d", handler._inferred_steps, steps)  # noqa: SLF001
                handler._inferred_steps = int(steps)  # noqa: SLF001
            return "set"
        frame = frame.f_back
    return "not_found"
