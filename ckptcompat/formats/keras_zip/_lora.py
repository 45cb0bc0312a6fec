"""LoRA-enabled layers (Keras 3 ``lora_rank``) in a Keras v3 weights file.

Keras stores such a layer's frozen variable merged with its factors' product in the layer's
place (``frozen + lora_alpha / lora_rank * a @ b``) and never the factors, so its files cannot
give the factors back (:mod:`ckptcompat.resuming.lora` restarts them). A file ckptcompat writes
from a state that holds the factors keeps Keras's layout (Keras loads it as its own) and adds
the exact values, ``[frozen, a, b]``, under ``_ckptcompat_lora/<layer group>/values``, which
Keras's loaders never visit: ckptcompat's own resume of it is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.formats.keras_zip._io import group_vars
from ckptcompat.formats.keras_zip._layout import LayerSlot, lora_factors, lora_frozen, walk_model_config

__all__ = ["EXACT_ROOT", "exact_group", "exact_values", "merged", "lora_scale", "exact_arrays", "record_rank",
           "listed_layer_configs", "refuse_undescribed", "infer_ranks"]

log = logging.getLogger(__name__)

#: the top-level group of the exact LoRA values in files ckptcompat writes
EXACT_ROOT = "_ckptcompat_lora"


def exact_group(h5_path: str) -> str:
    """Where the exact ``[frozen, a, b]`` of the layer at ``h5_path`` (``layers/dense``) are kept."""
    return f"{EXACT_ROOT}/{h5_path}/values"


def lora_scale(rank: int, alpha: Any) -> float:
    """A LoRA layer's ``lora_alpha / lora_rank``; 1 without an alpha (Keras 3.0 scales nothing)."""
    return float(alpha) / rank if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else 1.0


def merged(frozen: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """The value Keras saves for a LoRA layer's frozen variable: ``frozen + scale * a @ b``."""
    delta = np.matmul(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)) * np.float32(scale)
    return (np.asarray(frozen) + delta).astype(np.asarray(frozen).dtype)


def exact_values(h5: Any, slot: LayerSlot, shapes: Mapping[str, tuple[int, ...]],
                 path: Path) -> dict[str, np.ndarray]:
    """The exact frozen variable and factors (short name -> array) a ckptcompat-written file keeps
    for the LoRA layer ``slot``; ``{}`` for a Keras-written file (or values that do not fit, warned)."""
    factors = lora_factors(slot.class_name, slot.config, shapes)
    group = exact_group(slot.h5_path)
    if not factors or group not in h5:
        return {}
    arrays = group_vars(h5, group, path) or []
    frozen = lora_frozen(slot.class_name)
    want = [(frozen, tuple(shapes[frozen])), *factors]
    if [tuple(a.shape) for a in arrays] != [shape for _, shape in want]:
        log.warning("%s: %s holds shapes %s, expected %s; the exact LoRA values are not used", path, group,
                    [tuple(a.shape) for a in arrays], [shape for _, shape in want])
        return {}
    return {name: array for (name, _), array in zip(want, arrays)}


def listed_layer_configs(model_cfg: Mapping[str, Any]) -> set[int]:
    """The ids of the layer config dicts a model config lists (``layers`` of the model and of its
    nested models): the only ones written as they are (a wrapper's inner layer or an attention
    layer's projections are described by dicts the layout walk builds)."""
    out: set[int] = set()

    def visit(entry: Any, depth: int) -> None:
        cfg = entry.get("config") if isinstance(entry, Mapping) else None
        layers = cfg.get("layers") if isinstance(cfg, Mapping) and depth < 64 else None
        for item in layers if isinstance(layers, list) else ():
            if isinstance(item, Mapping) and isinstance(item.get("config"), dict):
                out.add(id(item["config"]))
                visit(item, depth + 1)

    visit(model_cfg, 0)
    return out


def record_rank(slot: LayerSlot, weights: Mapping[str, Any], listed: set[int]) -> None:
    """For writing: Keras 3.0's ``enable_lora(r)`` after build records no ``lora_rank`` in the
    config; where ``weights`` holds the layer's factors and the layer's config is one the model
    config lists (``listed``), the config to be written gets it (Keras then rebuilds the layer
    with LoRA; without ``lora_alpha`` the merge scales by 1, as 3.0 does). Elsewhere the factors
    stay unexpected: the writer refuses the state."""
    frozen = lora_frozen(slot.class_name)
    a_name = f"{slot.prefix}/{'lora_embeddings' if frozen == 'embeddings' else 'lora_kernel'}_a"
    if frozen and not slot.config.get("lora_rank") and a_name in weights and id(slot.config) in listed:
        slot.config["lora_rank"] = int(np.shape(weights[a_name])[-1])  # type: ignore[index]


def exact_arrays(slot: LayerSlot, prefix_names: Mapping[str, str], weights: Mapping[str, Any]
                 ) -> tuple[list[Any], list[tuple[str, tuple[int, ...]]]] | None:
    """For writing: ``([frozen, a, b], [(factor name, shape), ...])`` of the LoRA layer ``slot``
    when ``weights`` holds its factors (``prefix_names``: short name -> state name of its
    variables); None otherwise."""
    frozen = lora_frozen(slot.class_name)
    if frozen not in prefix_names:
        return None
    kernel = weights[prefix_names[frozen]]
    factors = lora_factors(slot.class_name, slot.config, {frozen: tuple(np.shape(kernel))})
    names = [f"{slot.prefix}/{name}" for name, _ in factors]
    if not factors or not all(n in weights for n in names):
        return None
    return [kernel, *(weights[n] for n in names)], list(zip(names, (s for _, s in factors)))


def refuse_undescribed(unused: list[str], path: Path) -> None:
    """For writing: LoRA factors of a layer the model config does not describe as LoRA (an
    attention layer's projection, whose config Keras builds inside the layer) cannot be written as
    Keras writes them; :class:`UnsupportedFormatError` naming them."""
    lora = [name for name in unused if name.rpartition("/")[2].startswith("lora_")]
    if lora:
        raise UnsupportedFormatError(
            f"LoRA factors of layers the model config does not describe as LoRA: {', '.join(lora)}", path=path,
            hint="save this model with Keras's own model.save; ckptcompat.resume reads such files (the factors "
                 "restart on the merged kernel)")



def infer_ranks(model_cfg: Mapping[str, Any], trainable: list[tuple[str, tuple[int, ...]]],
                slot_shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """Keras 3.0's ``enable_lora(r)`` after build records no ``lora_rank`` in the config: the LoRA
    layers (``{prefix: rank}``) the optimizer variables' shapes (``slot_shapes``, Keras 3 order:
    the scalars, then each trainable variable's slots side by side) show, walking the config's
    trainable variables layer by layer (a LoRA layer trains its other variables, then ``(..., r)``
    and ``(r, out)`` factors of its frozen variable in its place). Every shape must be accounted
    for; ``{}`` when none or more than one reading fits."""
    groups: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for name, shape in trainable:
        prefix, _, short = name.rpartition("/")
        groups.setdefault(prefix, []).append((short, tuple(shape)))
    classes = {slot.prefix: slot.class_name for slot in walk_model_config(model_cfg)}
    found = []
    for scalars in (2, 1):  # iterations and learning_rate (1: a schedule's rate is not a variable)
        rest = slot_shapes[scalars:]
        if slot_shapes[:scalars] != [()] * scalars:
            continue
        for per_var in (1, 2, 3):
            if len(rest) % per_var or any(len(set(rest[i:i + per_var])) != 1 for i in range(0, len(rest), per_var)):
                continue
            ranks = _aligned(groups, classes, rest[::per_var])
            if ranks:
                found.append(ranks)
    return found[0] if len(set(map(lambda r: tuple(sorted(r.items())), found))) == 1 else {}


def _aligned(groups: Mapping[str, list[tuple[str, tuple[int, ...]]]], classes: Mapping[str, str],
             shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """The LoRA ranks by layer with which ``shapes`` (one per trainable variable) are exactly the
    layers' trainable variables in order; ``{}`` when they are without LoRA or fit no reading."""
    ranks: dict[str, int] = {}
    at = 0
    for prefix, variables in groups.items():
        plain = [shape for _, shape in variables]
        if shapes[at:at + len(plain)] == plain:
            at += len(plain)
            continue
        frozen = lora_frozen(classes.get(prefix, ""))
        kernel = dict(variables).get(frozen)
        others = [shape for name, shape in variables if name != frozen]
        if not kernel or shapes[at:at + len(others)] != others or at + len(others) + 2 > len(shapes):
            return {}
        a, b = shapes[at + len(others)], shapes[at + len(others) + 1]
        rank = a[-1] if a else 0
        if not rank or a != (*kernel[:-1], rank) or b != (rank, kernel[-1]) or \
                rank >= max(int(np.prod(kernel[:-1])), kernel[-1]):  # no factorization at or above both dims
            return {}
        ranks[prefix] = rank
        at += len(others) + 2
    return ranks if at == len(shapes) else {}
