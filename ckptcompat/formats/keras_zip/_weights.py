"""Name the positional variables of a Keras v3 weights file: layers and optimizer."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ckptcompat.errors import CorruptCheckpointError, IncompatibleStateError
from ckptcompat.formats.keras_zip._io import group_label, group_vars
from ckptcompat.formats.keras_zip._lora import exact_group, exact_values
from ckptcompat.formats.keras_zip._layout import (ALIAS, TOLD_BY_COUNT, LayerSlot, VarSpec, infer_specs_from_shapes,
                                                  lora_factors, var_specs, walk_model_config)
from ckptcompat.formats.keras_zip._optimizer import optimizer_layout
from ckptcompat.formats.keras_zip._optimizer_fit import check, guess_layouts
from ckptcompat.names.optimizer_layouts import u_product_first
from ckptcompat.names.variables import canonical_optimizer_class

__all__ = ["read_weights", "read_optimizer", "all_var_groups", "group_name_parts", "var_group_prefixes"]

log = logging.getLogger(__name__)


def all_var_groups(h5: Any) -> list[str]:
    """Every ``.../vars`` group under ``layers`` (or 2.12's ``_layer_checkpoint_dependencies``)."""
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if (isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(obj)
                and name.replace("\\", "/").split("/")[0] not in ("optimizer", "metrics")):
            found.append(name)
    h5.visititems(visit)
    return found


#: path components that only hold sub-objects: ``layers/dense``, an RNN's ``lstm/cell``, Keras
#: 2.13-2.15's ``_layer_checkpoint_dependencies``
_CONTAINERS = frozenset({"layers", "cell", "_layer_checkpoint_dependencies"})


def group_name_parts(group: str, holds_vars: Callable[[str], bool] = lambda prefix: False) -> list[str]:
    """The components the reader names a ``.../vars`` group's variables by (``layers/lstm/cell/vars``
    -> ``["lstm"]``). A ``cell`` is an RNN's cell, left out, unless it cannot be: at the top
    (``cell/vars`` -> ``["cell"]``: a subclassed model's attribute) or under an object holding
    variables of its own (``holds_vars("encoder")``: ``encoder/vars`` and ``encoder/cell/vars``
    would be named alike). ``[]`` for the model's own ``vars``."""
    comps = group.replace("\\", "/").split("/")[:-1]
    return [x for i, x in enumerate(comps) if x not in _CONTAINERS
            or (x == "cell" and (i == 0 or holds_vars("/".join(comps[:i]))))]


def var_group_prefixes(groups: Iterable[str]) -> Callable[[str], bool]:
    """``holds_vars`` for :func:`group_name_parts`: whether ``<prefix>/vars`` is one of ``groups``."""
    prefixes = {g.replace("\\", "/")[:-len("/vars")] for g in groups if g.replace("\\", "/").endswith("/vars")}
    return prefixes.__contains__


def _shapes_ok(specs: list[VarSpec], arrays: list[np.ndarray]) -> bool:
    if len(specs) != len(arrays):
        return False
    return all(s.ndim is None or a.ndim in s.ndim for s, a in zip(specs, arrays))


def _resolve(h5: Any, h5_path: str) -> str:
    """The ``vars`` group of a layer path; files written on Windows spell the path with ``\\``,
    tf-keras a sub-layer attribute with a leading ``_`` (``MultiHeadAttention._query_dense``
    where Keras 3 writes ``query_dense``)."""
    group = h5_path + "/vars"
    if group in h5:
        return group
    head, _, last = h5_path.rpartition("/")
    private = f"{head}/_{last}/vars" if head and not last.startswith("_") else None
    for other in (h5_path.replace("/", "\\") + "/vars", private):
        if other is not None and other in h5:
            return other
    return group


#: ``add(name, array, trainable, source)``: records one weight, ``source`` the dataset the
#: variable was read from; ``array`` None: a trainable variable the file does not store (a LoRA
#: factor), ``source`` its shape
_Add = Callable[[str, Optional[np.ndarray], bool, Any], None]
#: one optimizer variable's meaning: ``(kind, variable, slot)``
_Layout = Tuple[Tuple[str, Optional[str], str], ...]


def read_weights(h5: Any, model_cfg: Mapping[str, Any] | None, path: Path,
                 generation: str | None = None, sources: dict[str, str] | None = None
                 ) -> tuple[dict[str, np.ndarray], list[tuple[str, tuple[int, ...]]]]:
    """Weights by canonical name (model order) and the trainable variables, ``(name, shape)``
    in ``model.trainable_variables`` order: the optimizer's (a LoRA-enabled layer's factors
    among them, which the file does not store) (``generation``: the producer's, for the variable
    names that differ between them); ``sources``, when given, receives each name's dataset
    (``layers/dense/vars/0``)."""
    weights: dict[str, np.ndarray] = {}
    trainable: list[tuple[str, tuple[int, ...]]] = []
    factors: set[str] = set()

    def add(name: str, array: np.ndarray | None, is_trainable: bool, source: Any) -> None:
        if name in weights or name in factors:
            raise CorruptCheckpointError(f"two variables map to {name!r}", path=path,
                                         hint="the config does not match the weights")
        if array is None:  # a LoRA factor: trained, not stored
            factors.add(name)
            trainable.append((name, tuple(source)))
            return
        weights[name] = array
        if sources is not None:
            sources[name] = source.replace("\\", "/")
        if is_trainable:
            trainable.append((name, tuple(array.shape)))

    used = _read_config_layers(h5, model_cfg, path, add, generation) if model_cfg is not None else set()
    groups = all_var_groups(h5)
    holds_vars = var_group_prefixes(groups)
    for group in groups:
        if group not in used:
            _read_unlisted_group(h5, group, model_cfg, path, add, holds_vars)
    return weights, trainable


def _config_slots(h5: Any, model_cfg: Mapping[str, Any], path: Path) -> list[LayerSlot]:
    """The variable groups the model config describes, in the layout this file uses (for the
    2.12-2.15 legacy layout: two group names per weighted layer, else one)."""
    try:
        # Keras 2.13-2.15 layout; written on Windows its top-level names hold a backslash
        legacy = any(k.split("\\")[0] == "_layer_checkpoint_dependencies" for k in h5.keys())
        slots = walk_model_config(model_cfg, legacy=legacy)
        if legacy and any(_resolve(h5, s.h5_path) not in h5 for s in slots):
            single = walk_model_config(model_cfg, legacy="single")  # one group name per layer
            if all(_resolve(h5, s.h5_path) in h5 for s in single):
                slots = single
    except ValueError as exc:
        raise CorruptCheckpointError(f"unusable model config: {exc}", path=path) from exc
    return slots


def _read_config_layers(h5: Any, model_cfg: Mapping[str, Any], path: Path, add: _Add,
                        generation: str | None = None) -> set[str]:
    """Add the variables of every layer the config describes, named by its layer class;
    returns the groups read."""
    used: set[str] = set()
    for slot in _config_slots(h5, model_cfg, path):
        group, named = _resolve(h5, slot.h5_path), {}
        arrays = group_vars(h5, group, path, named)
        if arrays is None:
            continue
        used.add(group)
        for key, array in named.items():  # stored by name: not a model variable (tf_idf weights)
            add(f"{slot.prefix}/{key}", array, False, f"{group}/{key}")
        inner, again = _resolve(h5, slot.h5_path + "/_lookup_layer"), {}  # a TextVectorization's StringLookup
        if slot.class_name == "TextVectorization" and group_vars(h5, inner, path, again) == [] and again:
            used.add(inner)
            for key, array in again.items():  # its tf_idf weights a second time
                add(f"{slot.prefix}/_lookup_layer/{key}", array, False, f"{inner}/{key}")
        specs = _layer_specs(slot, arrays, path, generation)
        shapes = {spec.name: tuple(a.shape) for spec, a in zip(specs, arrays)}
        exact = exact_values(h5, slot, shapes, path)  # a LoRA layer's values, in files ckptcompat writes
        for i, (spec, array) in enumerate(zip(specs, arrays)):
            if not spec.name.startswith(ALIAS):
                add(f"{slot.prefix}/{spec.name}", exact.get(spec.name, array), slot.trainable and spec.trainable,
                    f"{group}/{i}")
        for name, shape in lora_factors(slot.class_name, slot.config, shapes):  # trained, stored merged
            if name in exact:
                add(f"{slot.prefix}/{name}", exact[name], slot.trainable, f"{exact_group(slot.h5_path)}/{name}")
            elif slot.trainable:
                add(f"{slot.prefix}/{name}", None, True, shape)
    return used


def _layer_specs(slot: LayerSlot, arrays: list[np.ndarray], path: Path,
                 generation: str | None = None) -> list[VarSpec]:
    """The names of a layer's variables from its class; ``var_<i>`` (warned) when the class
    is unknown or the ranks do not fit it."""
    specs = var_specs(slot.class_name, slot.config, generation)
    if specs is not None and _shapes_ok(specs, arrays):
        return specs
    flag = TOLD_BY_COUNT.get(slot.class_name)
    if specs is not None and flag and flag not in (slot.config or {}):  # the config does not say it
        told = var_specs(slot.class_name, {**(slot.config or {}), flag: True}, generation)
        if told is not None and _shapes_ok(told, arrays):
            return told
    if specs is not None:
        log.warning("%s: layer %s (%s) has %d variables of ranks %s, expected %s; "
                    "naming them var_<i>", path, slot.prefix, slot.class_name, len(arrays),
                    [a.ndim for a in arrays], [s.name for s in specs])
    else:
        log.warning("%s: unknown layer class %s (%s); naming its variables var_<i>",
                    path, slot.class_name, slot.prefix)
    return [VarSpec(f"var_{i}") for i in range(len(arrays))]


#: the sub-layer attributes of a wrapper whose groups carry the same cell name on each side
_WRAPPER_SIDES = ("forward_layer", "backward_layer")


def _read_unlisted_group(h5: Any, group: str, model_cfg: Mapping[str, Any] | None, path: Path,
                         add: _Add, holds_vars: Callable[[str], bool] = lambda prefix: False) -> None:
    """Add the variables of a group no config layer claimed, named after its path (and,
    without a config, its layer class guessed from the group name and shapes)."""
    named: dict[str, np.ndarray] = {}
    arrays = group_vars(h5, group, path, named) or []
    norm = group.replace("\\", "/")  # Windows-written files use backslashes inside names
    parts = group_name_parts(norm, holds_vars)
    label = group_label(h5, group)
    side = bool(parts) and parts[-1] in _WRAPPER_SIDES  # Bidirectional: both sides hold "lstm_cell"
    inner = norm.endswith("/_lookup_layer/vars")  # a TextVectorization's lookup: under its owner's name
    if inner and len(parts) > 1 and model_cfg is None:
        parts[-2] = group_label(h5, group[:-len("/_lookup_layer/vars")] + group[-5:]) or parts[-2]
    elif isinstance(label, str) and parts and model_cfg is None and not side:
        parts[-1] = label
    prefix = "/".join(parts) or "model"
    comps = norm.split("/")[:-1] or ["model"]
    cls_name = comps[-2] + "_cell" if comps[-1] == "cell" and len(comps) > 1 else comps[-1]
    if side and isinstance(label, str):
        cls_name = label
    specs = infer_specs_from_shapes(cls_name, [a.shape for a in arrays])
    if model_cfg is not None or specs is None:
        if model_cfg is not None:
            log.warning("%s: variables at %s not described by the config; naming them var_<i>",
                        path, group)
        specs = [VarSpec(f"var_{i}") for i in range(len(arrays))]
    for i, (spec, array) in enumerate(zip(specs, arrays)):
        add(f"{prefix}/{spec.name}", array, spec.trainable, f"{group}/{i}")
    for key, array in named.items():
        add(f"{prefix}/{key}", array, False, f"{group}/{key}")


def read_optimizer(h5: Any, opt_cfg: Mapping[str, Any] | None, generation: str,
                   trainable: list[tuple[str, tuple[int, ...]]], path: Path,
                   hyper_fn: Callable[[Mapping[str, Any]], dict[str, Any]], ordered: bool = False,
                   group: str = "optimizer/vars", version: str | None = None) -> Any:
    """The optimizer state from ``group`` (``optimizer/vars``) plus the compile config, or ``None``;
    where two layouts fit, the one of the writing Keras ``version`` (Nadam's ``u_product`` place)."""
    from ckptcompat.state import OptimizerState

    arrays = group_vars(h5, group, path)
    class_name, cfg = _optimizer_class(h5, opt_cfg, arrays, group)
    if not class_name and arrays is None:
        return None
    canon = canonical_optimizer_class(class_name) if class_name else "Unknown"
    hyper = hyper_fn(cfg)
    if not arrays:
        return OptimizerState(canon, hyper, None, {}, dict(opt_cfg) if opt_cfg else None, {})
    stored_cfg = dict(opt_cfg) if opt_cfg else None  # what the file recorded (None when guessed)
    fits: tuple[str, ...] = ()
    if opt_cfg is None and ordered and class_name:
        layouts, guessed, fits = guess_layouts(canon, generation, trainable, arrays, path, version)
        if layouts:
            opt_cfg = {"class_name": class_name, "config": {}}
            hyper.update(guessed)  # the flags the slots show (amsgrad): rebuild the same optimizer
            log.warning("%s: no optimizer config: %s is rebuilt with the running Keras's defaults for every "
                        "argument its variables do not show (beyond the learning rate%s); if the run set others, "
                        "compile the model with its optimizer and pass it as model=", path, canon,
                        "".join(f", {k}={v}" for k, v in guessed.items()))
    else:
        first = u_product_first(version)
        layouts = [optimizer_layout(canon, cfg, generation, trainable, u_first) for u_first in (first, not first)]
    # the config describes no layer (a subclassed model): the trainable order is not known
    unnamed = any(re.fullmatch(r"var_\d+", name.rpartition("/")[2]) for name, _ in trainable)
    if not layouts or layouts[0] is None or opt_cfg is None or unnamed:
        # without the model config the trainable-variable order (and so the slot order) is unknown
        # a weights file keeps no optimizer config by design (every Keras 3 .weights.h5): a fact
        # about the file, not a loss -- resume places the variables as Keras loads them (in the live
        # optimizer's order, count and every shape verified)
        log.log(logging.INFO if opt_cfg is None else logging.WARNING,
                "%s: %s; the %d optimizer variables are kept by position as extra['vars/<i>'] (resume "
                "places them onto the live optimizer in its own order when count and every shape agree)", path,
                "no optimizer config to name the slots" if opt_cfg is None else
                "the model config describes no layer, so not the slots' order" if unnamed
                else f"optimizer class {class_name} has no known variable layout", len(arrays))
        iterations = int(arrays[0]) if arrays[0].shape == () and arrays[0].dtype.kind in "iu" else None
        if generation == "keras3" and len(arrays) > 1 and arrays[1].shape == () and arrays[1].dtype.kind == "f":
            hyper["learning_rate"] = float(arrays[1])
        return OptimizerState(canon, hyper, iterations, {}, dict(opt_cfg) if opt_cfg else None,
                              {f"vars/{i}": a for i, a in enumerate(arrays)}, fits)
    layout = _fitting_layout(layouts, arrays, trainable, canon, generation, path)
    iterations, slots, extra = _by_layout(layout, arrays, hyper)
    return OptimizerState(canon, hyper, iterations, slots, stored_cfg, extra)


def _optimizer_class(h5: Any, opt_cfg: Mapping[str, Any] | None, arrays: list[np.ndarray] | None,
                     group: str = "optimizer/vars") -> tuple[str | None, Mapping[str, Any]]:
    """(optimizer class name, its config): from the compile config, else the class name the
    ``optimizer/vars`` group records (no config)."""
    if opt_cfg is not None:
        config = opt_cfg.get("config")
        return str(opt_cfg.get("class_name") or ""), config if isinstance(config, Mapping) else {}
    if arrays is not None:
        label = h5[group].attrs.get("name")
        return (label.decode() if isinstance(label, bytes) else label), {}
    return None, {}


def _fitting_layout(layouts: list[Any], arrays: list[np.ndarray],
                    trainable: list[tuple[str, tuple[int, ...]]], canon: str, generation: str,
                    path: Path) -> _Layout:
    """The first candidate layout every variable fits (or, for an optimizer that never built
    its slots, its scalars only); :class:`IncompatibleStateError` listing the misfits if none."""
    shapes = dict(trainable)
    problems: list[str] = []
    for layout in dict.fromkeys(tuple(x) for x in layouts if x is not None):
        problems = check(layout, arrays, shapes, canon)
        if not problems:
            return layout
    if _never_built(layouts[0], arrays):
        log.info("%s: the %s optimizer was never built (no slots yet)", path, canon)
        return tuple(x for x in layouts[0] if x[0] in ("iterations", "learning_rate"))
    raise IncompatibleStateError(
        f"optimizer/vars does not match the {generation} {canon} layout for "
        f"{len(trainable)} trainable variables", problems, path=path,
        hint="the config does not describe the model that wrote these optimizer variables")


def _by_layout(layout: _Layout, arrays: list[np.ndarray], hyper: dict[str, Any]
               ) -> tuple[int | None, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(iterations, slots, extra) of the optimizer variables read by ``layout``; a stored
    learning rate also goes into ``hyper``."""
    slots: dict[str, dict[str, np.ndarray]] = {}
    extra: dict[str, np.ndarray] = {}
    iterations = None
    for (kind, var, slot), array in zip(layout, arrays):
        if kind == "iterations":
            iterations = int(array)
        elif kind == "learning_rate":
            hyper["learning_rate"] = float(array)
            extra["learning_rate"] = array
        elif kind == "slot":
            slots.setdefault(str(var), {})[slot] = array
        else:
            extra[f"{kind}/{var}" if var else kind] = array
    return iterations, slots, extra


def _never_built(layout: Any, arrays: list[np.ndarray]) -> bool:
    """Only ``iterations`` (and ``learning_rate``) stored: an optimizer that never built its slots."""
    head = [x for x in layout if x[0] in ("iterations", "learning_rate")]
    return (len(arrays) == len(head) and len(head) < len(layout)
            and all(a.shape == () for a in arrays))
