"""An OptimizerV2 optimizer in a legacy ``.h5``, as tf.keras <= 2.10 and ``optimizers.legacy``
(tf.keras 2.11 - tf-keras 2.21) write it themselves.

Such a state (:func:`~ckptcompat.names.optimizer_layouts.is_optimizer_v2_config`) keeps its own
config (``decay`` and all; no ``is_legacy_optimizer``, as those releases' files have none) and
its weights are named ``<optimizer>/iter:0``, ``<optimizer>/<variable>/<slot>:0`` in the
order OptimizerV2 creates them (the generated tables of
:mod:`ckptcompat.names.optimizer_layouts`): the releases that wrote it load it with their own
``load_model`` (they restore optimizer weights by position), and tf.keras 2.11+ reads such a
config as a legacy optimizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.formats.keras_h5._optimizer import WeightInfo
from ckptcompat.names.config_downgrade import strip_registration
from ckptcompat.names.lr_decay import schedule_as_rate
from ckptcompat.names.optimizer_layouts import non_slot_attributes, slot_groups, slot_shape
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import OptimizerState

__all__ = ["optimizer_v2_payload"]

#: config keys of tf.keras 2.11+ / Keras 3 optimizers that no OptimizerV2 constructor takes
_NEW_ONLY = frozenset({"is_legacy_optimizer", "jit_compile", "use_ema", "ema_momentum",
                       "ema_overwrite_frequency", "weight_decay", "loss_scale_factor",
                       "gradient_accumulation_steps"})


def optimizer_v2_payload(opt: OptimizerState, infos: Sequence[WeightInfo], path: Path
                         ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]], list[str]]:
    """(``optimizer_config``, ``optimizer_weights`` in creation order, problems)."""
    cls = canonical_optimizer_class(opt.class_name)
    inner = schedule_as_rate({**(opt.keras_config().get("config") or {}), **opt.hyperparameters})
    inner = {k: v for k, v in strip_registration(inner).items() if k not in _NEW_ONLY and v is not None
             or k == "name"}
    if "lr" in inner and "learning_rate" not in inner:
        inner["learning_rate"] = inner.pop("lr")
    inner.pop("lr", None)
    name = str(inner.get("name") or cls)
    inner["name"] = name
    config = {"class_name": cls, "config": inner}
    groups, scalars = slot_groups(cls, inner, "legacy"), non_slot_attributes(cls, inner, "legacy")
    if groups is None or scalars is None:
        raise UnsupportedFormatError(f"no OptimizerV2 variable layout known for {cls}", path=path,
                                     hint="write without the optimizer (include_optimizer=False)")
    iterations = int(opt.iterations or 0)
    if not opt.slots and iterations == 0:
        return config, [], []  # never built: nothing to restore
    values: list[tuple[str, np.ndarray]] = []
    problems: list[str] = []
    for attr in scalars:
        if attr == "_iterations":
            values.append((f"{name}/iter:0", np.asarray(iterations, dtype=np.int64)))
        elif attr == "_m_cache" and "u_product" in opt.extra:  # Nadam's product, its own schedule
            values.append((f"{name}/momentum_cache:0", np.asarray(opt.extra["u_product"], dtype=np.float32)))
        else:
            problems.append(f"{cls}: no value for its {attr.lstrip('_')} variable in the state")
    placed = set()
    for group in groups:
        for w in (w for w in infos if w.trainable):
            for slot in group:
                value = opt.slots.get(w.canonical, {}).get(slot)
                placed.add((w.canonical, slot))
                if value is None:
                    problems.append(f"{w.canonical}: no {slot!r} slot in the state")
                elif tuple(np.shape(value)) != slot_shape(cls, slot, w.shape):
                    problems.append(f"{w.canonical}/{slot}: shape {np.shape(value)} != {w.shape}")
                else:
                    values.append((f"{name}/{w.raw}/{slot}:0", np.asarray(value)))
    problems += [f"{var}/{slot}: slot the {cls} OptimizerV2 does not have"
                 for var, per in opt.slots.items() for slot in per if (var, slot) not in placed]
    return config, values, problems
