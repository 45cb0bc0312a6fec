"""Loss configs of a compile config, spelled for Keras 3's deserializer.

A Keras 2 or legacy-``.h5`` training config records a loss object as ``{"class_name":
"MeanSquaredError", "config": {...}}``; Keras 3 resolves a class without ``module`` only
among registered custom objects, so ``load_model`` of a ``.keras`` holding it fails ("Could
not locate class"). The built-in loss classes get ``module: "keras.losses"`` here, and the
Keras 2 ``reduction="auto"`` (no Keras 3 value) becomes ``"sum_over_batch_size"``, what
"auto" meant outside a distribution strategy. Names, strings and unknown classes are left as
they are. Pure Python: no framework import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BUILT_IN_LOSSES", "loss_for_keras3"]

#: the loss classes of ``keras.losses`` (Keras 3.0-3.15 and tf.keras 2.x share these names)
BUILT_IN_LOSSES = frozenset({
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "CategoricalGeneralizedCrossEntropy", "CategoricalHinge",
    "Circle", "CosineSimilarity", "CTC", "Dice", "Hinge", "Huber", "KLDivergence", "LogCosh",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "Poisson", "SparseCategoricalCrossentropy", "SquaredHinge",
    "Tversky",
})


def loss_for_keras3(loss: Any) -> Any:
    """``loss`` (a compile config's ``loss``: name, class config, list or per-output mapping)
    with every built-in loss class config given its Keras 3 ``module``."""
    if isinstance(loss, (list, tuple)):
        return [loss_for_keras3(item) for item in loss]
    if not isinstance(loss, Mapping):
        return loss
    if "class_name" not in loss:  # per-output losses
        return {key: loss_for_keras3(value) for key, value in loss.items()}
    if loss.get("class_name") not in BUILT_IN_LOSSES:
        return dict(loss)
    config = dict(loss.get("config") or {})
    if config.get("reduction") == "auto":  # tf.keras 2.13-2.15 .keras files have a module too
        config["reduction"] = "sum_over_batch_size"
    out = {"module": "keras.losses", "class_name": loss["class_name"], "registered_name": None}
    out.update({k: v for k, v in loss.items() if k != "config"})
    out["config"] = config
    return out
