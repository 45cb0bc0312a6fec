"""Layers frozen after the optimizer was built: the optimizer variables then follow every
variable that was trainable when it was built, the frozen layers' too.

Keras 2 keeps a slot for each of them; Keras 3 writes its optimizer variables in that order.
A config records only the layers' present ``trainable`` flags, so the readers and writers of
positional layouts try the layout of the config with every layer thawed where the present one
does not fit (:func:`thawed`), and the writers keep those slots where the state holds them
(:func:`frozen_slot_variables`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, List, Tuple

__all__ = ["thawed", "frozen_slot_variables", "built_with"]


def thawed(config: Any) -> Any:
    """A copy of a model config with every layer ``trainable`` (nested models too)."""
    if isinstance(config, Mapping):
        return {k: (True if k == "trainable" and v is False else thawed(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [thawed(v) for v in config]
    return config


def frozen_slot_variables(slots: Mapping[str, Mapping[str, Any]], weights: Iterable[str],
                          trainable: Iterable[str]) -> list[str]:
    """The variables the state holds slots for that are weights but not trainable in the config
    (layers frozen after the optimizer was built), where a slot holds anything but zeros (an
    all-zero slot is the same as none: a placeholder, a LoRA kernel's)."""
    import numpy as np

    trained, held = set(trainable), set(weights)
    return [str(v) for v, per in slots.items() if str(v) in held and str(v) not in trained
            and any(np.any(np.asarray(value)) for value in per.values())]


def built_with(thawed_order: Iterable[Tuple[str, Any]], trainable: Iterable[str],
               frozen: Iterable[str]) -> List[Tuple[str, Any]]:
    """The variables the optimizer was built with, in model order (``thawed_order``: every
    variable trainable with all layers thawed): the trainable ones and the ``frozen`` ones that
    hold slots; a layer frozen before the optimizer was built keeps none and stays out."""
    keep = set(trainable) | set(frozen)
    return [(name, shape) for name, shape in thawed_order if name in keep]
