"""TF1 name-based bundles <-> TrainingState: slot suffixes, beta powers, global step, ``.meta`` ops.

TF1 optimizers name slots ``<var>/<OptimizerName>`` and ``<var>/<OptimizerName>_<k>``; the
k-th suffix is the k-th slot the optimizer creates (Adam: m, v; RMSProp: rms, [mg,] momentum).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ckptcompat._compat import removeprefix
from ckptcompat.errors import IncompatibleStateError
from ckptcompat.formats import _protowire as pw
from ckptcompat.names.variables import CANONICAL_SLOTS, canonical_optimizer_class
from ckptcompat.state import OptimizerState, Progress, TrainingState

__all__ = ["TF1_SLOT_BASE", "state_from_name_based", "name_based_tensors", "meta_info"]

log = logging.getLogger(__name__)

#: TF1 slot base name -> canonical optimizer class.
TF1_SLOT_BASE: dict[str, str] = {
    "Adam": "Adam", "Momentum": "SGD", "RMSProp": "RMSprop", "Adagrad": "Adagrad",
    "ProximalAdagrad": "Adagrad", "Ftrl": "Ftrl", "Adadelta": "Adadelta",
    "Nadam": "Nadam", "Adamax": "Adamax", "AdamW": "AdamW",
}
_BASE_FOR_CLASS = {"Adam": "Adam", "SGD": "Momentum", "RMSprop": "RMSProp", "Adagrad": "Adagrad",
                   "Ftrl": "Ftrl", "Adadelta": "Adadelta"}
_OPS = {"ApplyAdam": "Adam", "ApplyMomentum": "SGD", "ApplyGradientDescent": "SGD",
        "ApplyRMSProp": "RMSprop", "ApplyCenteredRMSProp": "RMSprop", "ApplyAdagrad": "Adagrad",
        "ApplyAdagradV2": "Adagrad", "ApplyFtrl": "Ftrl", "ApplyFtrlV2": "Ftrl", "ApplyAdadelta": "Adadelta",
        "ApplyProximalAdagrad": "Adagrad"}
_SUFFIX = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z][A-Za-z0-9]*)*?)(?:_(?P<n>\d+))?$")
_POWER = re.compile(r"(?:^|/)beta([12])_power(?:_\d+)?$")


def meta_info(prefix: Path) -> tuple[str | None, set[str]]:
    """(tensorflow_version, optimizer classes from the training ops) from ``prefix.meta``, cheaply."""
    meta = Path(f"{prefix}.meta")
    try:
        with open(meta, "rb") as fh:
            head = fh.read(1 << 16)
            num_key, pos = pw.read_varint(head, 0)
            if num_key != (1 << 3 | 2):
                return None, set()
            size, pos = pw.read_varint(head, pos)
            if pos + size > os.fstat(fh.fileno()).st_size:
                return None, set()  # claims more than the file holds: damaged, ignore it
            body = head[pos:pos + size] if pos + size <= len(head) else head[pos:] + fh.read(pos + size - len(head))
        version, classes = None, set()
        for num, _, val in pw.iter_fields(body):
            if num == 5 and isinstance(val, bytes):
                version = val.decode("utf-8", "replace")
            elif num == 2 and isinstance(val, bytes):
                for onum, _, op in pw.iter_fields(val):
                    if onum == 1 and isinstance(op, bytes):
                        name = next((v for n, _, v in pw.iter_fields(op) if n == 1), b"")
                        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else ""
                        cls = _OPS.get(removeprefix(removeprefix(name, "Resource"), "Sparse"))
                        if cls:
                            classes.add(cls)
        return version, classes
    except (OSError, ValueError):
        return None, set()


def _slot_name(cls: str, index: int, indices: set[int]) -> str:
    if cls == "RMSprop":  # TF1 order: rms, [mg if centered,] momentum
        return ["rms", "mg", "momentum"][index] if 2 in indices else ["rms", "momentum", "mg"][index]
    names = CANONICAL_SLOTS.get(cls, ())
    return names[index] if index < len(names) else f"slot_{index}"


def state_from_name_based(tensors: dict[str, np.ndarray], prefix: Path) -> TrainingState:
    """Map a TF1 Saver bundle's tensors (by variable name) to a :class:`TrainingState`."""
    tf_version, op_classes = meta_info(prefix)
    keys = set(tensors)
    candidates: dict[str, list[tuple[str, str, int]]] = {}  # base -> [(key, var, index)]
    for key in tensors:
        if "/" not in key:
            continue
        var, suffix = key.rsplit("/", 1)
        m = _SUFFIX.match(suffix)
        if var in keys and m and np.shape(tensors[var]) == np.shape(tensors[key]):
            candidates.setdefault(m.group("base"), []).append((key, var, int(m.group("n") or 0)))
    has_powers = any(_POWER.search(k) for k in keys)
    base_class: dict[str, str] = {}
    for base, items in candidates.items():
        if base in TF1_SLOT_BASE:
            base_class[base] = TF1_SLOT_BASE[base]
        elif len({var for _, var, _ in items}) > 1 or len(items) > 1:  # custom optimizer name
            if len(op_classes) == 1:
                base_class[base] = next(iter(op_classes))
            elif has_powers and {0, 1} <= {i for _, _, i in items}:
                base_class[base] = "Adam"
    slots: dict[str, dict[str, np.ndarray]] = {}
    slot_keys: set[str] = set()
    votes: Counter[str] = Counter()
    for base, cls in base_class.items():
        per_var: dict[str, set[int]] = {}
        for _, var, idx in candidates[base]:
            per_var.setdefault(var, set()).add(idx)
        for key, var, idx in candidates[base]:
            slots.setdefault(var, {})[_slot_name(cls, idx, per_var[var])] = tensors[key]
            slot_keys.add(key)
            votes[cls] += 1
    extra = {k: v for k, v in tensors.items() if _POWER.search(k)}
    weights = {k: v for k, v in tensors.items() if k not in slot_keys and k not in extra and k != "global_step"}
    if len(votes) > 1:
        log.info("%s: slots of several optimizers %s; class set to the most common", prefix, dict(votes))
    cls_name = votes.most_common(1)[0][0] if votes else (next(iter(op_classes)) if len(op_classes) == 1 else None)
    global_step = int(np.asarray(tensors["global_step"]).reshape(-1)[0]) if "global_step" in tensors else None
    iterations = global_step
    for name, beta, limit in (("beta1_power", 0.9, None), ("beta2_power", 0.999, 5000)):
        if iterations is None and name in tensors and np.asarray(tensors[name]).size == 1:
            iterations = _steps_from_power(float(np.asarray(tensors[name]).reshape(-1)[0]), beta, prefix, limit)
    optimizer = None
    if cls_name is not None or extra:
        optimizer = OptimizerState(class_name=canonical_optimizer_class(cls_name or "Adam"),
                                   hyperparameters={"learning_rate": None}, iterations=iterations,
                                   slots=slots, extra=extra)
    from ckptcompat.formats.tf_bundle import NAME  # local: avoid an import cycle
    return TrainingState(
        weights=weights, optimizer=optimizer,
        progress=Progress(global_step=global_step if global_step is not None else iterations),
        producer=_producer(tf_version, NAME, prefix))


def _producer(tf_version: str | None, name: str, prefix: Path):  # type: ignore[no-untyped-def]
    from ckptcompat.state import Producer
    return Producer(framework="tensorflow", versions={"tensorflow": tf_version} if tf_version else {},
                    format=name, path=str(prefix))


def _steps_from_power(power: float, beta: float, prefix: Path, limit: int | None = None) -> int | None:
    """Adam's ``beta1_power`` is beta1**(t+1) after t steps (it starts at beta1).

    Assumes the default beta; a result that is not a near-integer (or a float32 denormal /
    zero power, or beyond ``limit`` where float32 rounding drift exceeds a step) gives None.
    """
    if not 1.2e-38 < power <= beta:
        log.info("%s: beta1_power=%r gives no step count", prefix, power)
        return None
    t = math.log(power) / math.log(beta) - 1.0
    if abs(t - round(t)) > 0.05 or (limit is not None and t > limit):
        log.info("%s: beta1_power=%r is not a power of %s; iterations unknown", prefix, power, beta)
        return None
    return int(round(t))


def name_based_tensors(state: TrainingState) -> dict[str, np.ndarray]:
    """TF1 Saver tensors for ``state``: weights by name, ``x/Adam``..., beta powers, global_step."""
    out: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in state.weights.items()}
    opt = state.optimizer
    orphans = sorted(set(opt.slots) - set(state.weights)) if opt is not None else []
    if orphans:  # a TF1 bundle names a slot after its variable: without the variable it reads back as one
        raise IncompatibleStateError(
            "optimizer slots of variables the state holds no weight for", orphans,
            hint="Keras 3 LoRA factors (trained, never saved by Keras) have no place in a TF1 bundle; "
                 "write the state without its optimizer (state.replace(optimizer=None)) or to .keras")
    iterations = opt.iterations if opt is not None and opt.iterations is not None else state.progress.global_step
    if opt is not None:
        cls = canonical_optimizer_class(opt.class_name)
        base = _BASE_FOR_CLASS.get(cls, cls)
        for var, per_var in opt.slots.items():
            names = list(CANONICAL_SLOTS.get(cls, ()))
            if cls == "RMSprop" and "mg" in per_var:
                names = ["rms", "mg", "momentum"]
            for slot, value in per_var.items():
                idx = names.index(slot) if slot in names else len(names) + sorted(per_var).index(slot)
                out[f"{var}/{base}" + (f"_{idx}" if idx else "")] = np.asarray(value)
        if cls in ("Adam", "AdamW", "Nadam", "Adamax"):
            hp = opt.hyperparameters
            for i, default in ((1, 0.9), (2, 0.999)):
                if f"beta{i}_power" in opt.extra:
                    out[f"beta{i}_power"] = np.asarray(opt.extra[f"beta{i}_power"])
                elif iterations is not None:
                    beta = hp.get(f"beta_{i}", default)
                    beta = float(beta) if isinstance(beta, (int, float, np.number)) else default
                    out[f"beta{i}_power"] = np.asarray(beta ** (iterations + 1), dtype=np.float32)
        dropped = [k for k in opt.extra if not _POWER.search(k)]
        if dropped:
            log.warning("optimizer variables not stored in a TF1 bundle: %s", ", ".join(sorted(dropped)))
    if iterations is not None:
        out["global_step"] = np.asarray(iterations, dtype=np.int64)
    return out
