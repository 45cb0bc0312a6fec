"""Optimizer state of legacy Keras HDF5 files: slot matching (read) and slot layout (write).

Every naming era is handled here (see VERSION-FACTS.md, "H5 optimizer weight names"):

* named, OptimizerV2 (tf.keras 2.0-2.10, legacy.*): ``Adam/iter:0``, ``Adam/dense/kernel/m:0``;
  TF 1.x-era tf.keras: ``training/Adam/dense/kernel/m:0``;
* named, TF 2.11-2.15 / tf-keras: ``iteration:0``, ``Adam/m/dense/kernel:0``;
* named, Keras 3: ``adam/iteration``, ``adam/learning_rate``, ``adam/dense_kernel_momentum``;
* indexed, Keras 2.3: ``training/Adam/m_0:0`` (index into the trainable weights);
* positional, Keras 1.x - 2.2.5: ``training/Adam/Variable_3:0`` / ``Variable_5:0``.

Positional slots are placed by rebuilding the order the producing version created them
(all first slots for every trainable weight, then all second slots, ...); every shape is
checked and mismatches raise :class:`IncompatibleStateError` listing all of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckptcompat.errors import IncompatibleStateError, UnsupportedFormatError
from ckptcompat.names.optimizer_layouts import has_momentum, slot_shape
from ckptcompat.names.variables import CANONICAL_SLOTS, canonical_optimizer_class, canonical_slot, split_keras3_slot

__all__ = ["WeightInfo", "match_slots", "canonical_hyperparameters", "new_optimizer_layout"]

log = logging.getLogger(__name__)

_ITER_NAMES = {"iter", "iteration", "iterations"}
_HYPER_ALIASES = {"lr": "learning_rate"}
# Keras 2.3 names may carry a graph uniquifier: ``accumulator_0_1`` is slot 0
_INDEXED_RE = re.compile(r"(?:^|/)(m|v|u|vhat|moment|accumulator|delta_accumulator)_(\d+)(?:_\d+)?$")
# Keras 2.2.x inside TF sessions: ``Variable_426``; standalone Keras 2.2.4 on TF: ``variable_3``
_POSITIONAL_RE = re.compile(r"(?:^|/)(?:[Vv]ariable(?:_\d+)?|param_\d+)$")
_UNIQUIFIER = re.compile(r"_\d+$")
_K3_CELL = re.compile(r"_(?:lstm|gru|simple_rnn|conv_lstm(?:\dd)?|peephole_lstm)_cell(?:_\d+)?_")
_NEW_RAW = {"m", "v", "vhat", "momentum", "velocity", "average_gradient", "accumulator",
            "accumulated_grad", "accumulated_delta_var", "linear", "u", "r", "c"}
#: non-slot optimizer variables by their stored last name -> canonical ``extra`` key
#: the name scope TF 1.x tf.keras creates optimizer variables in (``training_1`` for a second model);
#: ``cond_1``: the tf.cond an OptimizerV2 LossScaleOptimizer (mixed precision, TF 2.4-2.15) applies in
_TRAINING_SCOPE = re.compile(r"^(?:training|cond)(?:_\d+)?$")
#: (OptimizerV2 Nadam's ``momentum_cache`` is the product Keras 3 calls ``u_product``)
_NON_SLOT = {"momentum_cache": "u_product", "u_product": "u_product", "m_schedule": "u_product"}


@dataclass(frozen=True)
class WeightInfo:
    """One model weight: canonical name, raw name in the file (no ``:0``), shape, trainable."""

    canonical: str
    raw: str
    shape: tuple[int, ...]
    trainable: bool


def canonical_hyperparameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """Optimizer config -> hyper-parameters with canonical keys (``lr`` -> ``learning_rate``)."""
    from ckptcompat.names.lr_decay import rate_and_schedule

    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "name":
            continue
        out[_HYPER_ALIASES.get(key, key)] = value
    return rate_and_schedule(out)


def _strip(name: str) -> str:
    return re.sub(r":\d+$", "", name)


def match_slots(cls: str, names: Sequence[str], values: Sequence[np.ndarray],
                weights: Sequence[WeightInfo], path: str, *, sorted_params: bool = False
                ) -> tuple[int | None, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Return (iterations, slots[canonical var][slot], extra) for the optimizer weights of a file.

    ``sorted_params``: the producer (Keras 1.x, 2.0.0-2.0.5) sorted the trainable weights by
    variable name before creating positional slots; that order is tried first then.
    """
    match = _SlotMatch(canonical_optimizer_class(cls), weights)
    for raw_name, value in zip(names, values):
        match.add(raw_name, value)
    match.place_positional(path, sorted_params=sorted_params)
    if match.problems:
        raise IncompatibleStateError("optimizer weights do not match the model weights", match.problems,
                                     path=path, hint="the file may be damaged, or written by a "
                                     "Keras version with an unknown optimizer layout; "
                                     "read it without the optimizer or report it")
    return match.iterations, match.slots, match.extra


class _SlotMatch:
    """What :func:`match_slots` has found so far in one file's optimizer weights: iterations,
    slots by canonical variable, extra values, positional weights left to place, problems."""

    def __init__(self, cls: str, weights: Sequence[WeightInfo]) -> None:
        self.cls = cls
        self.trainable = [w for w in weights if w.trainable]
        self.by_raw: dict[str, list[WeightInfo]] = {}
        self.by_k3: dict[str, list[WeightInfo]] = {}
        for w in weights:
            self.by_raw.setdefault(w.raw, []).append(w)
            for key in {w.raw.replace("/", "_"), w.canonical.replace("/", "_")}:
                self.by_k3.setdefault(key, []).append(w)
        self.iterations: int | None = None
        self.slots: dict[str, dict[str, np.ndarray]] = {}
        self.extra: dict[str, np.ndarray] = {}
        self.positional: list[tuple[str, np.ndarray]] = []
        self.problems: list[str] = []

    def take(self, table: dict[str, list[WeightInfo]], key: str, slot: str) -> WeightInfo | None:
        """The model weight ``key`` names: where several have that name (nested models, Keras
        3.0's bare ``kernel``), the first (trainable ones first) not holding ``slot`` yet."""
        cands = table.get(key)
        if not cands:
            return None
        slot = canonical_slot(self.cls, slot)
        ordered = [w for w in cands if w.trainable] + [w for w in cands if not w.trainable]
        free = [w for w in ordered if slot not in self.slots.get(w.canonical, {})]
        return (free or ordered)[0]  # none free: put() names the second slot

    def put(self, w: WeightInfo, slot: str, raw_name: str, value: np.ndarray) -> None:
        """Record ``value`` as ``w``'s ``slot`` when its shape fits; else a problem."""
        if tuple(value.shape) != slot_shape(self.cls, slot, w.shape):
            if slot == "vhat" and value.size == 1:  # Keras <= 2.3 placeholder when amsgrad=False
                self.extra[raw_name] = value
                return
            self.problems.append(f"{raw_name}: shape {tuple(value.shape)} != {w.canonical} {w.shape}")
            return
        if slot in self.slots.get(w.canonical, {}):
            self.problems.append(f"{raw_name}: second {slot!r} slot for {w.canonical}")
            return
        self.slots.setdefault(w.canonical, {})[slot] = value

    def add(self, raw_name: str, value: np.ndarray) -> None:
        """Place one optimizer weight of the file, by the first naming era that fits it."""
        name = _strip(raw_name)
        parts = name.split("/")
        if self._scalar(name, parts, value) or self._named(name, parts, value):
            return
        self._indexed_or_positional(name, value)

    def _scalar(self, name: str, parts: list[str], value: np.ndarray) -> bool:
        """Iterations, non-slot variables and stored hyper-parameters; True when ``name`` is one."""
        if self.iterations is None and _UNIQUIFIER.sub("", parts[-1]) in _ITER_NAMES:  # iterations_27
            self.iterations = int(np.asarray(value).reshape(-1)[0]) if value.size else None
            return True
        scoped = parts[1:] if _TRAINING_SCOPE.match(parts[0]) else parts  # TF 1.x: training/Nadam/momentum_cache
        if value.size == 1 and len(scoped) <= 2 and (
                parts[-1] in _NON_SLOT or (self.cls == "Nadam" and parts[-1] == "variable")):
            # Keras 3 creates Nadam's product as an unnamed Variable: "nadam/variable"
            self.extra["u_product"] = np.asarray(value).reshape(())
            return True
        if parts[-1] == "learning_rate" or (len(parts) == 2 and parts[-1] in ("decay", "beta_1", "beta_2",
                                                                                "momentum", "rho")):
            self.extra[name] = value
            return True
        return False

    def _named(self, name: str, parts: list[str], value: np.ndarray) -> bool:
        """Slots named after their variable (every era but Keras 2.3 and <= 2.2.5); True when placed."""
        cls = self.cls
        # OptimizerV2 whose slots were created outside its name scope (a model resumed by ckptcompat
        # 0.1.0 before it kept the scope, then saved natively): <var path>/<slot>. First: read as
        # <Opt>/<var path>/<slot> below, block/dense/kernel/m would go to a top-level dense/kernel
        if len(parts) >= 2 and canonical_slot(cls, parts[-1]) in CANONICAL_SLOTS.get(cls, ()):
            w = self.take(self.by_raw, "/".join(parts[:-1]), parts[-1])
            if w is not None:
                self.put(w, canonical_slot(cls, parts[-1]), name, value)
                return True
        # TF 1.x-era tf.keras (OptimizerV2 inside a "training" scope): training/<Opt>/<var path>/<slot>
        if len(parts) >= 4 and _TRAINING_SCOPE.match(parts[0]):
            w = self.take(self.by_raw, "/".join(parts[2:-1]), parts[-1])
            if w is not None:
                self.put(w, canonical_slot(cls, parts[-1]), name, value)
                return True
        # TF 2.11-2.15: <Opt>/<slot>/<var path>
        if len(parts) >= 3 and parts[1] in _NEW_RAW:
            w = self.take(self.by_raw, "/".join(parts[2:]), parts[1])
            if w is not None:
                self.put(w, canonical_slot(cls, parts[1]), name, value)
                return True
        # OptimizerV2: <Opt>/<var path>/<slot>
        if len(parts) >= 3:
            w = self.take(self.by_raw, "/".join(parts[1:-1]), parts[-1])
            if w is not None:
                self.put(w, canonical_slot(cls, parts[-1]), name, value)
                return True
        # TF 2.11-2.15 inside a LossScaleOptimizerV3 (mixed precision): <slot>/<var path>
        if len(parts) >= 2 and parts[0] in _NEW_RAW:
            w = self.take(self.by_raw, "/".join(parts[1:]), parts[0])
            if w is not None:
                self.put(w, canonical_slot(cls, parts[0]), name, value)
                return True
        # Keras 3: <opt>/<var path with _>_<slot> (3.0.x: no <opt>/ prefix)
        if len(parts) <= 2:
            split = split_keras3_slot(cls, parts[-1])
            w = self.take(self.by_k3, _k3_key(self.by_k3, split[0]), split[1]) if split else None
            if split and w is not None:
                self.put(w, split[1], name, value)
                return True
        return False

    def _indexed_or_positional(self, name: str, value: np.ndarray) -> None:
        """Keras 2.3 indexed slots (``training/Adam/m_0``) placed now; Keras <= 2.2.5
        positional ones (``Variable_3``) kept for :meth:`place_positional`; else a problem."""
        indexed = _INDEXED_RE.search(name)
        if indexed:
            slot: str | None = canonical_slot(self.cls, indexed.group(1))  # Keras 2.3: training/SGD/moment_0
            slot = slot if slot in CANONICAL_SLOTS.get(self.cls, ()) else None
            idx = int(indexed.group(2))
            if slot and idx < len(self.trainable):
                self.put(self.trainable[idx], slot, name, value)
            elif not slot:
                self.problems.append(f"{name}: {self.cls} has no slot {indexed.group(1)!r}")
            else:
                self.problems.append(f"{name}: index {idx} but {len(self.trainable)} trainable weights")
            return
        if _POSITIONAL_RE.search(name):
            self.positional.append((name, value))
            return
        self.problems.append(f"{name}: no model weight and no known optimizer naming matches it")

    def place_positional(self, path: str, *, sorted_params: bool) -> None:
        """Place the positional weights in the producer's order of the trainable weights
        first, the other order only if every shape fits it; else the first order's problems."""
        if not self.positional:
            return
        by_name = sorted(self.trainable, key=lambda w: w.raw)
        orders = [by_name, self.trainable] if sorted_params else [self.trainable, by_name]
        first_problems: list[str] = []
        for order in orders:
            found, staged, staged_extra, trial = _stage_positional(self.cls, self.positional, order,
                                                                   self.iterations)
            if not trial:
                if order is not orders[0]:
                    log.info("%s: positional optimizer slots fit only the %s order", path,
                             "model" if order is self.trainable else "name-sorted")
                self.iterations = found
                self.extra.update(staged_extra)
                for var, per in staged.items():
                    self.slots.setdefault(var, {}).update(per)
                return
            if order is orders[0]:
                first_problems = trial
        self.problems.extend(first_problems)


def _stage_positional(cls: str, items: list[tuple[str, np.ndarray]], order: list[WeightInfo],
                      iterations: int | None
                      ) -> tuple[int | None, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], list[str]]:
    """One trial placement of positional slots over the trainable weights in ``order``:
    (iterations, slots, extra, problems); nothing is kept unless problems is empty."""
    trial: list[str] = []
    staged: dict[str, dict[str, np.ndarray]] = {}
    staged_extra: dict[str, np.ndarray] = {}

    def stage(w: WeightInfo, slot: str, raw_name: str, value: np.ndarray) -> None:
        if tuple(value.shape) != w.shape:
            if slot == "vhat" and value.size == 1:
                staged_extra[raw_name] = value
                return
            trial.append(f"{raw_name}: shape {tuple(value.shape)} != {w.canonical} {w.shape}")
            return
        staged.setdefault(w.canonical, {})[slot] = value

    found = _place_positional(cls, items, order, iterations, stage, staged_extra, trial)
    return found, staged, staged_extra, trial


def _k3_key(table: Mapping[str, Any], base: str) -> str:
    """Keras 3 slot base ``sequential_dense_kernel`` -> the longest known weight key it ends with."""
    if base in table:
        return base
    base = _K3_CELL.sub("_", base)
    if base in table:  # the cell's scope dropped (Keras 3.0: z_convlstm1d_conv_lstm_cell_kernel)
        return base
    hits = [key for key in table if base.endswith("_" + key)]
    return max(hits, key=len) if hits else base


def _place_positional(cls: str, items: list[tuple[str, np.ndarray]], trainable: list[WeightInfo],
                      iterations: int | None, put: Any, extra: dict[str, np.ndarray],
                      problems: list[str]) -> int | None:
    """Keras <= 2.2.5: ``[iterations] + slot_1 for all params + slot_2 for all params ...``."""
    rest = list(items)
    while rest and rest[0][1].ndim == 0 and (not trainable or trainable[0].shape != ()):
        name, value = rest.pop(0)
        if iterations is None:
            iterations = int(value)
        else:
            extra[name] = value
    count = len(trainable)
    order = CANONICAL_SLOTS.get(cls, ())
    if count == 0 or len(rest) % count:
        problems.append(f"{len(rest)} positional optimizer weights do not split evenly over "
                        f"{count} trainable model weights")
        return iterations
    per = len(rest) // count
    if per > len(order):
        problems.append(f"{per} slots per weight, but {cls} has only {len(order)} ({', '.join(order)})")
        return iterations
    for k in range(per):
        for i, w in enumerate(trainable):
            name, value = rest[k * count + i]
            put(w, order[k], name, value)
    return iterations


def new_optimizer_layout(cls: str, config: Mapping[str, Any], trainable: Sequence[WeightInfo]
                         ) -> list[tuple[WeightInfo, str, str]]:
    """Order in which tf.keras 2.11-2.15 / tf-keras new optimizers create their slots.

    Returns ``(weight, canonical slot, raw slot name)`` triples after ``iteration``.
    """
    cls = canonical_optimizer_class(cls)
    amsgrad = bool(config.get("amsgrad", False))
    if cls in ("Adam", "AdamW"):
        out = [(w, s, s) for w in trainable for s in ("m", "v")]
        return out + ([(w, "vhat", "vhat") for w in trainable] if amsgrad else [])
    if cls in ("Nadam", "Adamax"):
        second = "v" if cls == "Nadam" else "u"
        return [(w, s, raw) for w in trainable for s, raw in (("m", "m"), ("v", second))]
    if cls == "SGD":
        return [(w, "momentum", "m") for w in trainable]
    if cls == "RMSprop":
        out = [(w, "rms", "velocity") for w in trainable]
        if has_momentum(config.get("momentum")):
            out += [(w, "momentum", "momentum") for w in trainable]
        if config.get("centered"):
            out += [(w, "mg", "average_gradient") for w in trainable]
        return out
    if cls == "Adagrad":
        return [(w, "accumulator", "accumulator") for w in trainable]
    if cls == "Adadelta":
        return [(w, s, raw) for w in trainable
                for s, raw in (("accum_grad", "accumulated_grad"), ("accum_var", "accumulated_delta_var"))]
    if cls == "Ftrl":
        return [(w, s, s) for w in trainable for s in ("accumulator", "linear")]
    if cls == "Lion":
        return [(w, "momentum", "m") for w in trainable]
    if cls == "Adafactor":  # factored r / c for variables of 2 or more dimensions only
        return [(w, s, s) for w in trainable for s in (("r", "c", "v") if len(w.shape) >= 2 else ("v",))]
    raise UnsupportedFormatError(f"writing {cls} optimizer state to a legacy .h5 is not supported",
                                 hint="write without the optimizer (include_optimizer=False) or use "
                                      "Adam, AdamW, Nadam, Adamax, SGD, RMSprop, Adagrad, Adadelta, Ftrl, Lion or Adafactor")
