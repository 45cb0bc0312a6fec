"""Positional layout of ``optimizer/vars/<i>`` in Keras v3 weight files, per generation.

tf.keras 2.11-2.15 / tf-keras ("new" optimizers): ``iteration``, [EMA ``average`` per var],
then the slots. Keras 3.0-3.15: ``iteration``, ``learning_rate`` (unless a schedule), [EMA
``average`` per var], [``gradient_accumulator`` per var], then the slots. Slot groups are
created per ``build`` call: names created in one loop are interleaved per variable
(Adam ``m, v, m, v, ...``); separate loops follow each other (``vhat`` after all of them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.config_upgrade import upgrade_optimizer_config
from ckptcompat.names.lr_decay import (BUILT_IN_SCHEDULES, decay_on_schedule, decay_schedule_config,
                                       decays_by_product, saved_decay, schedule_as_rate)
from ckptcompat.names.optimizer_layouts import has_momentum
from ckptcompat.names.slot_meaning import KERAS3_NADAM_SCHEDULE, nadam_schedule
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import TrainingState

log = logging.getLogger(__name__)

__all__ = ["slot_groups", "optimizer_layout", "other_nadam_schedule", "keras3_optimizer_config"]


def other_nadam_schedule(opt: Any) -> bool:
    """A saved Nadam whose momentum schedule is not Keras 3's (:func:`nadam_schedule`): its
    product cannot be written as Keras 3's ``u_product``."""
    return bool(opt.class_name == "Nadam" and nadam_schedule(opt.config, opt.hyperparameters) != KERAS3_NADAM_SCHEDULE)


def _flag(cfg: Mapping[str, Any], key: str, default: Any = False) -> Any:
    value = cfg.get(key, default)
    return default if value is None else value


def slot_groups(class_name: str, cfg: Mapping[str, Any], generation: str) -> list[tuple[str, ...]] | None:
    """Canonical slot names per build loop, e.g. Adam amsgrad -> ``[("m", "v"), ("vhat",)]``.

    ``generation`` is ``"keras2"`` (tf.keras new optimizers) or ``"keras3"``; ``None`` when
    the class is unknown. The tables generated from the real releases
    (:mod:`ckptcompat.names.optimizer_layouts`) decide; the rules below only cover classes
    no generated table knows.
    """
    from ckptcompat.names.optimizer_layouts import slot_groups as generated

    found = generated(class_name, cfg, generation)
    if found is not None:
        return found
    return _fallback_groups(class_name, cfg, generation)


def _fallback_groups(class_name: str, cfg: Mapping[str, Any], generation: str) -> list[tuple[str, ...]] | None:
    cls = canonical_optimizer_class(class_name)
    if cls in ("Adam", "AdamW"):
        return [("m", "v")] + ([("vhat",)] if _flag(cfg, "amsgrad") else [])
    if cls in ("Adamax", "Nadam"):
        return [("m", "v")]
    if cls == "SGD":
        if generation == "keras2":
            return [("momentum",)]  # tf.keras 2.11+ SGD always creates it
        return [("momentum",)] if has_momentum(_flag(cfg, "momentum", 0.0)) else []
    if cls == "RMSprop":
        groups: list[tuple[str, ...]] = [("rms",)]
        if has_momentum(_flag(cfg, "momentum", 0.0)):
            groups.append(("momentum",))
        if _flag(cfg, "centered"):
            groups.append(("mg",))
        return groups
    if cls == "Adagrad":
        return [("accumulator",)]
    if cls == "Adadelta":
        return [("accum_grad", "accum_var")]
    if cls == "Ftrl":
        return [("accumulator", "linear")]
    if cls == "Lion":
        return [("momentum",)]
    return None


def optimizer_layout(class_name: str, cfg: Mapping[str, Any], generation: str,
                     trainable: list[tuple[str, tuple[int, ...]]],
                     nadam_u_first: bool = False) -> list[tuple[str, str | None, str]] | None:
    """The expected ``optimizer/vars`` list as ``(kind, variable, slot)`` tuples.

    ``kind`` is ``iterations``, ``learning_rate``, ``average``, ``gradient_accumulator``,
    ``u_product`` or ``slot``; ``trainable`` lists the model's trainable variables
    (canonical name, shape) in ``model.trainable_variables`` order.
    """
    groups = slot_groups(class_name, cfg, generation)
    if groups is None:
        return None
    out: list[tuple[str, str | None, str]] = [("iterations", None, "")]
    if generation == "keras3" and not isinstance(cfg.get("learning_rate"), Mapping):
        out.append(("learning_rate", None, ""))
    if _flag(cfg, "use_ema"):
        out += [("average", name, "") for name, _ in trainable]
    if generation == "keras3" and _flag(cfg, "gradient_accumulation_steps", None):
        out += [("gradient_accumulator", name, "") for name, _ in trainable]
    nadam = generation == "keras3" and canonical_optimizer_class(class_name) == "Nadam"
    if nadam and nadam_u_first:  # Keras 3.0-3.9 create u_product before the slots, later releases after
        out.append(("u_product", None, ""))
    if canonical_optimizer_class(class_name) == "Muon":
        return out + _muon_slots(cfg, trainable)
    for group in groups:
        for name, shape in trainable:
            for slot in group:
                if slot in ("r", "c") and len(shape) < 2 and generation != "keras3":
                    continue  # tf-keras Adafactor factors nothing for 1-D variables (Keras 3: scalars)
                out.append(("slot", name, slot))
    if nadam and not nadam_u_first:
        out.append(("u_product", None, ""))
    return out


def _muon_slots(cfg: Mapping[str, Any], trainable: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, str | None, str]]:
    """Muon's variables, per model variable: ``momentum``, then ``velocity`` where Muon falls back
    to AdamW (not 2-D, an embedding unless ``exclude_embeddings=False``, or a path that matches
    ``exclude_layers``), as Keras 3 ``Muon.build`` creates them."""
    import re

    exclude = [str(p) for p in (cfg.get("exclude_layers") or ())]
    out: list[tuple[str, str | None, str]] = []
    for name, shape in trainable:
        out.append(("slot", name, "momentum"))
        adam = (len(shape) != 2 or (_flag(cfg, "exclude_embeddings", True) and "embedding" in name.lower())
                or any(re.search(p, name) for p in exclude))
        if adam:
            out.append(("slot", name, "velocity"))
    return out


def _registered_schedule(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A built-in schedule as Keras 3 serializes it: Keras 2 writes no ``module`` /
    ``registered_name``, without which Keras 3's ``load_model`` cannot locate the class."""
    out = dict(schedule)
    if out.get("class_name") in BUILT_IN_SCHEDULES and "module" not in out:
        out = {"module": "keras.optimizers.schedules", **out, "registered_name": out.get("registered_name")}
    return out


def keras3_optimizer_config(state: TrainingState) -> dict[str, Any]:
    """The Keras 3 ``compile_config`` optimizer entry of ``state``'s optimizer: its config upgraded,
    the captured hyper-parameters over it (a schedule in place of the rate); Keras 2's ``decay``
    as the equal ``InverseTimeDecay`` rate, another Nadam schedule dropped (both warned)."""
    opt = state.optimizer
    assert opt is not None
    out = upgrade_optimizer_config(opt.keras_config())
    cfg = out["config"]
    for key, value in schedule_as_rate(opt.hyperparameters).items():
        if key not in ("name", "is_legacy_optimizer", "jit_compile", "decay", "lr", "schedule_decay"):
            cfg[key] = value
    if isinstance(cfg.get("learning_rate"), Mapping):
        cfg["learning_rate"] = _registered_schedule(cfg["learning_rate"])
    lost = decay_on_schedule(opt.class_name, {**cfg, "decay": saved_decay(opt.class_name, opt.config, opt.hyperparameters)})
    if lost:
        log.warning("%s: Keras 3 optimizers have no decay; decay=%s on top of a learning-rate schedule cannot be "
                    "written (the file holds the schedule alone; a ckptcompat store keeps decay in state.json)",
                    opt.class_name, lost)
    if opt.iterations is None and opt.slots:  # Keras <= 2.2 RMSprop/Adagrad/Adadelta save no counter
        log.warning("the source records no step counter: the file's optimizer iterations is 0")
    decay = saved_decay(opt.class_name, opt.config, opt.hyperparameters)
    if decay and isinstance(cfg.get("learning_rate"), (int, float)) and not isinstance(cfg["learning_rate"], bool):
        product = decays_by_product(opt.config)  # the multi-backend API: lr * (1 / (1 + decay t))
        cfg["learning_rate"] = {"module": "keras.optimizers.schedules",
                                **decay_schedule_config(cfg["learning_rate"], decay, product), "registered_name": None}
        log.warning("%s: Keras 3 optimizers have no decay; decay=%s is written as learning_rate=InverseTimeDecay, "
                    "%s", opt.class_name, decay, "named for ckptcompat's resume to continue its rate lr * (1 / (1 + "
                    "decay * iterations)) (Keras alone: lr / (1 + decay * iterations), at most 1 float32 ulp apart)"
                    if product else "the same rate lr / (1 + decay * iterations)")
    if other_nadam_schedule(opt):
        cfg.pop("schedule_decay", None)
        log.warning("Nadam's momentum schedule 0.96 ** (%s * t) (standalone's schedule_decay, OptimizerV2's decay) "
                    "has no Keras 3 equivalent; the file holds Keras 3's momentum-cache product for %s steps "
                    "(Keras 3's schedule from here on)", nadam_schedule(opt.config, opt.hyperparameters)[0], opt.iterations)
    out["class_name"] = opt.class_name
    if opt.class_name == "SGD" and any("momentum" in per for per in opt.slots.values()) \
            and cfg.get("momentum") is None:  # momentum 0 is known: its slots are inert
        raise IncompatibleStateError(
            "SGD momentum slots without a momentum value", ["hyperparameter momentum is unknown"],
            hint="the source file does not record the optimizer config; set "
                 "state.optimizer.hyperparameters['momentum'] before writing")
    return out
