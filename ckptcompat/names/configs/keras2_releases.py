"""Layer, loss and metric arguments later Keras 2 releases added, for a model rebuilt in an older one.

A config written by tf.keras 2.12+ or Keras 3 (after the downgrade to Keras 2 spelling) may
carry arguments an older tf.keras refuses (``Keyword argument not understood``). At the value
the older release behaves as, the argument is dropped (logged); any other value has no
equivalent there and raises :class:`~ckptcompat.errors.UnsupportedFormatError` naming it.
Found by the resume table in the TF 2.4 and 2.11 consumer environments.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, Dict, Tuple

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.names.configs.table import ANY

__all__ = ["ARGS_SINCE", "CLASSES_SINCE", "for_keras2_release", "release_tuple"]

log = logging.getLogger(__name__)

_GLOBAL_POOLING = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                   "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
                   "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D",
                   "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D")
_CONV = ("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
         "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution2DTranspose",
         "Convolution3DTranspose", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv2D")
#: (layer, loss or metric class, argument) -> (first tf.keras release measured to accept it, the
#: value older ones behave as: its default, or ``ANY``: metadata that changes nothing). Between the last refusing and the first accepting
#: release measured (2.4 and 2.11 for most) dropping it at that value changes nothing.
ARGS_SINCE: Dict[Tuple[str, str], Tuple[Tuple[int, int], Any]] = {
    ("BatchNormalization", "synchronized"): ((2, 12), False),  # 2.11 refuses it
    **{(cls, "groups"): ((2, 4), 1) for cls in _CONV},  # 2.0 refuses it
    **{(cls, "keepdims"): ((2, 11), False) for cls in _GLOBAL_POOLING},  # 2.4 refuses it
    ("BinaryCrossentropy", "axis"): ((2, 11), -1),
    ("CategoricalCrossentropy", "axis"): ((2, 11), -1),
    ("SparseCategoricalCrossentropy", "ignore_class"): ((2, 11), None),
    **{(cls, "dropout"): ((2, 4), 0.0) for cls in ("Attention", "AdditiveAttention")},  # 2.2.4-tf refuses it
    # written and required by from_config from tf.keras 2.5 (to build at once; 2.4 builds the
    # layer at its first call, with the same weights): metadata, dropped at any value
    **{("MultiHeadAttention", key): ((2, 5), ANY) for key in ("query_shape", "key_shape", "value_shape")},
    # tf.keras 2.0.8 (TF 1.4) writes it, 2.2.4-tf refuses it: a speed switch, the same function at any value
    ("ConvLSTM2D", "implementation"): ((2, 4), ANY),
}


#: class names later releases write -> (first release measured to know it, the older spelling)
CLASSES_SINCE: Dict[str, Tuple[Tuple[int, int], str]] = {
    "Functional": ((2, 4), "Model"),  # 2.0 knows functional models as "Model" only
}


def release_tuple(version: str) -> tuple[int, int]:
    """``"2.11.0"`` -> ``(2, 11)``; anything unreadable counts as the newest release."""
    parts = version.split(".")[:2]
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return (99, 0)


def for_keras2_release(config: Mapping[str, Any], version: str,
                       path: str | None = None) -> dict[str, Any]:
    """A copy of a Keras 2 model or training ``config`` without the arguments tf.keras
    ``version`` lacks (a no-op for Keras 3 and for releases that know them all)."""
    running = release_tuple(version)
    out = copy.deepcopy(dict(config))
    if not any(running < since for since, _ in [*ARGS_SINCE.values(), *CLASSES_SINCE.values()]):
        return out
    stack: list[Any] = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            _strip_layer(item, running, version, path)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _strip_layer(layer: dict[str, Any], running: tuple[int, int], version: str, path: str | None) -> None:
    cls, cfg = str(layer.get("class_name", "")), layer.get("config")
    if not isinstance(cfg, dict):
        return
    if cls in CLASSES_SINCE and running < CLASSES_SINCE[cls][0]:
        layer["class_name"] = CLASSES_SINCE[cls][1]
    for (owner, key), (since, neutral) in ARGS_SINCE.items():
        if owner != cls or key not in cfg or running >= since:
            continue
        value = cfg.pop(key)
        if neutral is not ANY and value is not None and value != neutral:
            raise UnsupportedFormatError(
                f"layer {cfg.get('name')!r} ({cls}): {key}={value!r} needs tf.keras "
                f"{since[0]}.{since[1]}+; this is {version} (it behaves as {key}={neutral!r})",
                path=path, hint=f"resume with tf.keras {since[0]}.{since[1]} or newer, or build "
                                "the model yourself and pass resume(path, model=model)")
        log.debug("%s: %s.%s=%r dropped for tf.keras %s", path, cls, key, value, version)
