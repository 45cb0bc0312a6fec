"""The neutral training state that crosses every module boundary.

Everything here is numpy arrays and plain Python values, never framework objects.
Canonical names:

* weights: ``<layer path>/<weight name>``, e.g. ``dense_1/kernel``, ``encoder/conv/bias``
  (nested models add their layer name as a path component; ``:0`` suffixes, RNN cell
  scopes and similar generation-specific decorations are removed, see
  :mod:`ckptcompat.names.variables`);
* TF1 graph variables keep their scope path, e.g. ``layer_conv1/kernel``;
* optimizer slots: ``slots[canonical variable][canonical slot]`` where canonical slot
  names are the ones in :data:`ckptcompat.names.variables.CANONICAL_SLOTS`
  (``m``/``v``/``vhat`` for Adam, ``momentum`` for SGD, ``rms``/``momentum``/``mg`` for RMSprop, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OptimizerState", "Progress", "Producer", "TrainingState"]


@dataclass(frozen=True)
class OptimizerState:
    """Optimizer class, hyper-parameters, step count and slots, all by canonical name.

    ``class_name`` is the canonical class (``"Adam"``, ``"SGD"``, ``"RMSprop"``, ...);
    ``hyperparameters`` uses canonical keys (``learning_rate``, ``beta_1``, ``momentum``, ...);
    ``config`` is the optimizer config exactly as the file stored it, when it stored one.
    ``extra`` holds other optimizer variables by name (loss scale, ``beta1_power``, ...).
    ``fits``: see the attribute.
    """

    class_name: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    iterations: int | None = None
    slots: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    config: Mapping[str, Any] | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: a file that keeps its variables by position only and no optimizer config, where several
    #: configurations of the class fit them equally (RMSprop momentum vs centered): those
    #: configurations, e.g. ``"RMSprop(centered=True)"``; a model compiled with the right one
    #: takes the variables in its own order
    fits: tuple[str, ...] = ()

    @property
    def learning_rate(self) -> float | None:
        """The learning rate as a float, or ``None`` when it is a schedule or unknown."""
        value = self.hyperparameters.get("learning_rate")
        return float(value) if isinstance(value, (int, float, np.floating, np.integer)) else None

    def keras_config(self) -> dict[str, Any]:
        """``config`` as ``{"class_name", "config"}``: files store that form, a live capture
        stores ``get_config()``'s flat arguments (``{}`` arguments when nothing was stored)."""
        cfg = dict(self.config) if isinstance(self.config, Mapping) else {}
        if isinstance(cfg.get("config"), Mapping) and "class_name" in cfg:
            return cfg
        return {"class_name": self.class_name, "config": cfg}

    @property
    def slot_count(self) -> int:
        """Number of slot tensors."""
        return sum(len(per_var) for per_var in self.slots.values())


@dataclass(frozen=True)
class Progress:
    """Where training stood.

    ``epoch`` is the number of *completed* epochs, i.e. the value to pass as
    ``fit(initial_epoch=...)``; ``step`` is the number of batches already seen inside the
    current (incomplete) epoch, 0 at an epoch boundary; ``global_step`` counts optimizer
    steps over the whole run (TF1 ``global_step``, Keras ``iterations``).
    """

    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None


@dataclass(frozen=True)
class Producer:
    """What wrote the checkpoint: framework, versions, on-disk format and path."""

    framework: str | None = None          # "keras", "tf.keras", "tf-keras", "tensorflow", "ckptcompat"
    versions: Mapping[str, str] = field(default_factory=dict)  # {"keras": "2.12.0", "tensorflow": "2.12.1"}
    format: str | None = None             # a name from ckptcompat.formats.FORMATS
    path: str | None = None


@dataclass(frozen=True)
class TrainingState:
    """Everything needed to continue training, independent of any framework.

    ``weights`` keeps model order (layer by layer, weights in build order).
    ``model_config`` is ``{"class_name": ..., "config": ...}`` as found in the file (its
    generation is told by ``producer``); ``training_config`` is the compile configuration
    (loss, metrics, optimizer config) when the file carries one. ``metric_names`` are the
    logged metric names exactly as the producer would log them.
    """

    weights: Mapping[str, np.ndarray] = field(default_factory=dict)
    optimizer: OptimizerState | None = None
    progress: Progress = field(default_factory=Progress)
    history: Mapping[str, list[float]] = field(default_factory=dict)
    callbacks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rng: Mapping[str, Any] = field(default_factory=dict)
    producer: Producer = field(default_factory=Producer)
    model_config: Mapping[str, Any] | None = None
    training_config: Mapping[str, Any] | None = None
    metric_names: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> TrainingState:
        """Return a copy with ``changes`` applied (the state itself is never mutated)."""
        return dataclasses.replace(self, **changes)

    def tensors(self) -> dict[str, np.ndarray]:
        """All tensors by flat key: weights by name, slots as ``optimizer/<var>/<slot>``."""
        out: dict[str, np.ndarray] = dict(self.weights)
        if self.optimizer is not None:
            for var, per_var in self.optimizer.slots.items():
                for slot, value in per_var.items():
                    out[f"optimizer/{var}/{slot}"] = value
        return out
