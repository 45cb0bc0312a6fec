"""Canonical metric and log-key names across generations.

``acc`` -> ``accuracy``, ``val_acc`` -> ``val_accuracy``, ``auc_1`` -> ``auc``,
``lr`` -> ``learning_rate``; prefixes (``val_``, multi-output ``<output>_``) are kept.
"""

from __future__ import annotations

import re

__all__ = ["canonical_metric"]

_ALIASES = {
    "acc": "accuracy",
    "lr": "learning_rate",
    "ce": "crossentropy",
}
# Metric names that Keras numbers when repeated: auc, auc_1, auc_2, ...
_NUMBERED = re.compile(r"^(?P<base>auc|precision|recall|mean_io_u|mean|sum|"
                       r"true_positives|false_positives|true_negatives|false_negatives|"
                       r"precision_at_recall|recall_at_precision|"
                       r"sensitivity_at_specificity|specificity_at_sensitivity)_(?P<n>\d+)$")


def canonical_metric(name: str) -> str:
    """Canonical spelling of a logged metric name; unknown names are returned unchanged."""
    prefix = ""
    bare = name
    if bare.startswith("val_"):
        prefix, bare = "val_", bare[4:]
    if bare in _ALIASES:
        return prefix + _ALIASES[bare]
    match = _NUMBERED.match(bare)
    if match:
        return prefix + match.group("base")
    # multi-output models: "<output>_acc" -> "<output>_accuracy"
    head, sep, tail = bare.rpartition("_")
    if sep and tail in _ALIASES:
        return prefix + head + "_" + _ALIASES[tail]
    return prefix + bare
