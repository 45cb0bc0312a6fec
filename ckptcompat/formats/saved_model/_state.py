"""SavedModel parts -> :class:`TrainingState`.

The ``variables/`` bundle is read by :mod:`ckptcompat.formats.tf_bundle` (object graph:
weights by ``full_name``, optimizer slots by object-graph reference or by the
``optimizer/_variables/N`` list, iterations, learning rate, loss-scale state). This module
adds what only a SavedModel knows: the Keras metadata (model and training config, layer
names by object path), the producer versions, and it leaves out the compiled metrics'
accumulators (``keras_api/metrics/N/total``), which are no training state.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import CorruptCheckpointError
from ckptcompat.formats import _protowire as pw
from ckptcompat.formats.keras_h5._layer_configs import layer_configs, layer_order, place
from ckptcompat.formats.keras_h5._optimizer import canonical_hyperparameters
from ckptcompat.formats.saved_model._keras import KerasInfo, framework_for
from ckptcompat.formats.tf_bundle import read_tensors
from ckptcompat.formats.tf_bundle._tf1_names import state_from_name_based
from ckptcompat.formats.tf_bundle._tf2_objects import (GRAPH_KEY, _paths, canonical_from_full_name,
                                                       state_from_object_graph)
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import OptimizerState, Producer, TrainingState

__all__ = ["build_state", "VARIABLES_PREFIX"]

log = logging.getLogger(__name__)

VARIABLES_PREFIX = ("variables", "variables")
_LSO = "LossScaleOptimizer"


def _weight_paths(nodes: list[pw.TrackableObject], tensors: dict[str, np.ndarray]) -> dict[str, tuple[str, ...]]:
    """Weight name (as the bundle reader names it) -> object-graph path of its node."""
    paths = _paths(nodes)
    seen: dict[str, list[tuple[str, ...]]] = {}
    for nid, node in enumerate(nodes):
        for attr in node.attributes:
            if attr.name == "VARIABLE_VALUE" and attr.checkpoint_key in tensors and nid in paths:
                full = attr.full_name or "/".join(paths[nid])
                seen.setdefault(canonical_from_full_name(full), []).append(paths[nid])
    out: dict[str, tuple[str, ...]] = {}
    for name, found in seen.items():
        for path in found:
            out[name if len(found) == 1 else "/".join(path)] = path
    return out


def _rename(name: str, path: tuple[str, ...], info: KerasInfo | None) -> str:
    """Use the layer's own name when its variable scope differs (``dense_7/kernel`` of layer ``dense``)."""
    if info is None or not path:
        return name
    layer = info.layer_names.get(path[:1])
    head, _, rest = name.partition("/")
    if layer and rest and head != layer and len(path) == 2:
        return f"{layer}/{rest}"
    return name


def _nested_name(name: str, info: KerasInfo | None) -> str:
    """``dense/kernel`` of a layer inside a nested model -> ``sequential/dense/kernel``, as the live
    walk names it: tf.keras names a variable after its own layer only; the metadata tells where
    that layer stands (used only where exactly one layer has that name)."""
    if info is None:
        return name
    head = name.split("/", 1)[0]
    found = [path for path, layer in info.layer_names.items() if layer == head]
    if len(found) != 1 or len(found[0]) < 2 or not all(found[0][:i] in info.models for i in range(1, len(found[0]))):
        return name
    return "/".join([*(info.layer_names[found[0][:i]] for i in range(1, len(found[0]))), name])


def _model_order(weights: dict[str, np.ndarray], info: KerasInfo | None) -> dict[str, np.ndarray]:
    """Layer by layer in the model config's order (nested models depth first), file order inside a layer.

    The bundle's node ids put an RNN's cell variables after later layers; model order is
    what a writer of positional formats (legacy ``.h5``) needs.
    """
    order = layer_order(layer_configs(info.model_config)) if info is not None and info.model_config else {}
    ordered = sorted(enumerate(weights), key=lambda item: (place(item[1], order), item[0]))
    return {name: weights[name] for _, name in ordered}


def _optimizer(opt: OptimizerState | None, info: KerasInfo | None) -> OptimizerState | None:
    """Class and hyper-parameters from the training config; values of variables from the bundle."""
    tc = info.training_config if info is not None else None
    opt_cfg = tc.get("optimizer_config") if isinstance(tc, dict) else None
    if not isinstance(opt_cfg, dict):
        return opt
    cls = canonical_optimizer_class(str(opt_cfg.get("class_name", "")))
    cfg = opt_cfg.get("config") if isinstance(opt_cfg.get("config"), dict) else {}
    outer: dict[str, Any] = {}
    if cls == _LSO or "inner_optimizer" in cfg:
        inner = cfg.get("inner_optimizer") if isinstance(cfg.get("inner_optimizer"), dict) else {}
        outer = {k: v for k, v in cfg.items() if k != "inner_optimizer"}
        opt_cfg = inner
        cls = canonical_optimizer_class(str(inner.get("class_name", "")))
        cfg = inner.get("config") if isinstance(inner.get("config"), dict) else {}
        log.info("LossScaleOptimizer around %s (%s); its loss-scale state is kept in optimizer.extra",
                 cls, outer)
    hyper = canonical_hyperparameters(cfg)
    if opt is not None and not opt.slots and not opt.iterations:
        log.info("optimizer never stepped (iterations 0, no slots): only its class and "
                 "hyper-parameters are training state")
        opt = None
    if opt is None:
        return OptimizerState(class_name=cls, hyperparameters=hyper, config=opt_cfg)
    lr = opt.hyperparameters.get("learning_rate")
    if isinstance(lr, float) and not isinstance(hyper.get("learning_rate"), dict):
        hyper["learning_rate"] = lr  # the variable's value: what ReduceLROnPlateau etc. left
    if opt.class_name not in (cls, "SGD") and opt.slots:
        log.warning("slots look like %s but the training config says %s; using %s",
                    opt.class_name, cls, cls)
    extra = dict(opt.extra)
    if outer:
        extra.update({f"loss_scale_config/{k}": np.asarray(v) for k, v in outer.items()
                      if isinstance(v, (int, float, bool))})
    return dataclasses.replace(opt, class_name=cls, hyperparameters=hyper, config=opt_cfg, extra=extra)


def _with_tables(info: KerasInfo | None, tensors: dict[str, np.ndarray], folder: Path) -> Any:
    """The model config, lookup layers given the vocabulary of their table tensors (TF 2.4-2.5)."""
    from ckptcompat.formats.saved_model._tables import config_with_table_vocabularies

    return config_with_table_vocabularies(info.model_config, tensors, info.layer_names, folder) if info else None


def build_state(folder: Path, tf_version: str, info: KerasInfo | None, fmt: str) -> TrainingState:
    """Read ``folder/variables/variables`` and combine it with the decoded metadata."""
    prefix = folder.joinpath(*VARIABLES_PREFIX)
    bundle, tensors = read_tensors(prefix)
    graph = tensors.pop(GRAPH_KEY, None)
    versions = {"tensorflow": tf_version} if tf_version else {}
    if graph is None:  # TF1 SavedModelBuilder: a name-based bundle
        state = state_from_name_based(tensors, prefix)
        return state.replace(producer=Producer(framework="tensorflow", versions=versions, format=fmt,
                                               path=str(folder)))
    raw = graph.reshape(-1)[0] if graph.size == 1 else None
    if not isinstance(raw, bytes):
        raise CorruptCheckpointError("object graph tensor is not a scalar string", path=prefix)
    state = state_from_object_graph(tensors, raw, prefix, fmt)
    paths = _weight_paths(pw.decode_object_graph(raw), tensors)
    weights: dict[str, np.ndarray] = {}
    dropped = []
    renamed = {}
    optimizer_extra: dict[str, np.ndarray] = {}
    for name, value in state.weights.items():
        path = paths.get(name, ())
        if path[:1] == ("keras_api",):
            dropped.append(name)
            continue
        if path[:1] == ("optimizer",) and len(path) > 1:  # LossScaleOptimizer: loss_scale/current_loss_scale
            optimizer_extra["/".join(path[1:])] = value
            continue
        new = _nested_name(_rename(name, path, info), info)
        if new != name:
            renamed[name] = new
        if new in weights:
            raise CorruptCheckpointError(f"two variables map to the weight name {new!r}", path=folder)
        weights[new] = value
    weights = _model_order(weights, info)
    if dropped:
        log.info("%s: compiled-metric accumulators are not training state; left out: %s", folder, dropped)
    opt = state.optimizer
    if opt is not None and renamed:
        opt = dataclasses.replace(opt, slots={renamed.get(k, k): v for k, v in opt.slots.items()})
    if opt is not None:
        opt = dataclasses.replace(opt, slots={**{k: opt.slots[k] for k in weights if k in opt.slots},
                                              **{k: v for k, v in opt.slots.items() if k not in weights}})
    if opt is not None and optimizer_extra:
        opt = dataclasses.replace(opt, extra={**opt.extra, **optimizer_extra})
    opt = _optimizer(opt, info)
    if info is not None and info.keras_version:
        versions["keras"] = info.keras_version
    if info is not None and info.backend:
        versions["backend"] = info.backend
    framework = framework_for(info.keras_version if info else "", tf_version)
    if info is None and state.producer.framework != "tensorflow":
        framework = state.producer.framework or "tensorflow"
    return state.replace(
        weights=weights, optimizer=opt,
        model_config=_with_tables(info, tensors, folder),
        training_config=info.training_config if info is not None else None,
        producer=Producer(framework=framework, versions=versions, format=fmt, path=str(folder)))
