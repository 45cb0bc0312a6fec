"""What each Keras's ``fit`` does with the length of a ``Sequence`` (ckptcompat's data objects).

A data object restored inside an epoch serves only the rest of that epoch; how the shortened
epoch is run depends on when ``fit`` asks for ``len()``:

- ``"every_epoch"``: before every epoch (tf.keras >= 2.10, tf-keras, standalone Keras >= 2.3):
  the data object answers the shortened length for the resumed epoch, the full one after.
- ``"widen"``: once, when ``fit`` starts, into a ``DataHandler`` that re-reads its steps per
  epoch before every epoch (tf.keras 2.2 - 2.9): the short length at the start, then the
  handler is set to the full length once the resumed epoch ended (:func:`widen_data_handler`).
- ``"fixed"``: once, into a local of the training loop (tf.keras 2.2.4-tf of TF 1.15 - 2.1,
  standalone Keras < 2.3): one ``fit`` can run the resumed epoch or full epochs, not both.
- ``"exhaustion"``: once, and the epoch ends when the data runs out (Keras 3).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

__all__ = ["POLICIES", "tf_keras_policy", "standalone_policy", "widen_data_handler"]

logger = logging.getLogger(__name__)

POLICIES = ("every_epoch", "widen", "fixed", "exhaustion")


def _major_minor(version: str) -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(found.group(1)), int(found.group(2))) if found else (99, 0)


def tf_keras_policy(version: str) -> str:
    """The policy of tf.keras / tf-keras ``version`` (``keras.__version__``: ``2.2.4-tf``,
    ``2.4.0``, ``2.11.0`` ...): re-inferred per epoch from 2.10, a ``DataHandler`` from 2.3
    (TF 2.2), the v1 loops before."""
    found = _major_minor(version)
    if found >= (2, 10):
        return "every_epoch"
    return "widen" if found >= (2, 3) else "fixed"


def standalone_policy(version: str) -> str:
    """Standalone Keras recomputes ``steps_per_epoch`` after each epoch from 2.3 on."""
    return "every_epoch" if _major_minor(version) >= (2, 3) else "fixed"


def widen_data_handler(data: Any, steps: int) -> bool:
    """Set the running ``fit``'s ``DataHandler`` for ``data`` to ``steps`` per epoch (tf.keras
    2.3 - 2.9 keep it in a local of ``Model.fit``; its ``steps()`` re-reads it every epoch).
    Call from a callback inside that ``fit``; False when no such handler is up the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            adapter = getattr(value, "_adapter", None)
            if getattr(adapter, "_keras_sequence", None) is data and hasattr(value, "_inferred_steps"):
                value._inferred_steps = int(steps)  # noqa: SLF001 -- Keras 2's own counter
                logger.debug("fit's steps per epoch set to %d after the resumed epoch", steps)
                return True
        frame = frame.f_back
    return False
