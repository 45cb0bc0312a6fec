"""TF2 object-based bundles (``_CHECKPOINTABLE_OBJECT_GRAPH``) -> TrainingState.

Weights are named from each variable's ``full_name`` (``dense/kernel``; RNN cell scopes
dropped). Optimizer slots come from the graph's slot references (OptimizerV2), or from the
slot variables' own names (``Adam/m/dense/kernel`` in TF 2.11-2.15 optimizers,
``adam/dense_kernel_momentum`` in Keras 3), always matched to their variable by name and
checked by shape.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckptcompat.errors import CorruptCheckpointError, IncompatibleStateError
from ckptcompat.formats import _protowire as pw
from ckptcompat.names.optimizer_layouts import slot_shape
from ckptcompat.names.variables import (CANONICAL_SLOTS, canonical_optimizer_class, canonical_slot,
                                        distinct_paths, split_keras3_slot, strip_tensor_suffix)
from ckptcompat.state import OptimizerState, Producer, Progress, TrainingState

__all__ = ["GRAPH_KEY", "state_from_object_graph"]

log = logging.getLogger(__name__)

GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE = "VARIABLE_VALUE"
_CELL = re.compile(r"(^|_)cell(_\d+)?$")
_POSITIONAL = re.compile(r"layer_with_weights-\d+$")
_ITER = ("iter", "_iterations", "iterations", "iteration")
_LR = ("learning_rate", "_learning_rate", "lr")
_INNER = ("inner_optimizer", "_optimizer", "base_optimizer")
_OPT_SLOT_SETS = (({"accum_grad", "accum_var"}, "Adadelta"), ({"linear"}, "Ftrl"),
                  ({"rms"}, "RMSprop"), ({"accumulator"}, "Adagrad"), ({"m", "v"}, "Adam"),
                  ({"momentum"}, "SGD"))
_RAW_CLASS_SLOTS = {"m": "Adam", "v": "Adam", "vhat": "Adam", "momentum": "SGD", "rms": "RMSprop",
                    "mg": "RMSprop", "accumulator": "Adagrad", "linear": "Ftrl",
                    "accum_grad": "Adadelta", "accum_var": "Adadelta"}


def canonical_from_full_name(full_name: str) -> str:
    """``lstm/lstm_cell/kernel:0`` -> ``lstm/kernel``; other names keep their scope path."""
    parts = strip_tensor_suffix(full_name).split("/")
    kept = [p for i, p in enumerate(parts) if not (0 < i < len(parts) - 1 and _CELL.search(p))]
    return "/".join(kept)


def _paths(nodes: list[pw.TrackableObject]) -> dict[int, tuple[str, ...]]:
    """Shortest path of child names from the root to every node (breadth first, file order)."""
    paths: dict[int, tuple[str, ...]] = {0: ()}
    queue = deque([0])
    while queue:
        nid = queue.popleft()
        for ref in nodes[nid].children:
            if ref.node_id not in paths and 0 <= ref.node_id < len(nodes):
                paths[ref.node_id] = paths[nid] + (ref.local_name,)
                queue.append(ref.node_id)
    return paths


def _find_optimizer(nodes: list[pw.TrackableObject], paths: dict[int, tuple[str, ...]]) -> int | None:
    with_slots = [i for i, n in enumerate(nodes) if n.slot_variables]
    if with_slots:
        return with_slots[0]
    named = sorted((len(p), i) for i, p in paths.items() if p and p[-1] == "optimizer")
    return named[0][1] if named else None


@dataclass(frozen=True)
class _Graph:
    """A decoded object graph with the bundle's tensors: nodes, their paths from the root,
    and the variable attribute of each node that holds a tensor."""

    nodes: list[pw.TrackableObject]
    paths: dict[int, tuple[str, ...]]
    var_of: dict[int, pw.SerializedTensor]
    tensors: dict[str, np.ndarray]
    prefix: Path

    def value(self, nid: int) -> np.ndarray:
        """The tensor of variable node ``nid``."""
        return self.tensors[self.var_of[nid].checkpoint_key]


@dataclass(frozen=True)
class _OptimizerNodes:
    """The (unwrapped) optimizer node and the variable nodes it owns."""

    opt_id: int
    direct: dict[str, int]        # direct variable children by local name (iterations, hypers)
    slot_nodes: set[int]          # slot variables: referenced, or in ``_variables``-style lists
    extra_outer: dict[str, np.ndarray]  # variables of a loss-scale wrapper around it


def state_from_object_graph(tensors: dict[str, np.ndarray], graph_bytes: bytes, prefix: Path,
                            format_name: str) -> TrainingState:
    """Map an object-based bundle's tensors (by checkpoint key) to a :class:`TrainingState`."""
    graph = _read_graph(tensors, graph_bytes, prefix)
    opt = _optimizer_nodes(graph)
    owned = set(opt.direct.values()) | opt.slot_nodes if opt is not None else set()
    skip = {nid for nid, p in graph.paths.items() if p == ("save_counter",)}
    weight_ids = _model_order(graph, [nid for nid in sorted(graph.var_of) if nid not in owned and nid not in skip])
    for nid in skip & set(graph.var_of):
        log.debug("%s: save_counter=%s not part of the training state", prefix, graph.value(nid))
    names, keras3_graph = _weight_names(graph, weight_ids)
    weights = {names[nid]: graph.value(nid) for nid in weight_ids}
    optimizer = None
    iterations = None
    if opt is not None:
        optimizer, iterations = _optimizer_state(graph, opt, names, weight_ids)
    framework = "keras" if keras3_graph else ("tf.keras" if any("layer_with_weights-" in a.checkpoint_key
                                                          for a in graph.var_of.values()) else "tensorflow")
    return TrainingState(weights=weights, optimizer=optimizer, progress=Progress(global_step=iterations),
                         producer=Producer(framework=framework, versions={}, format=format_name,
                                           path=str(prefix)))


def _model_order(graph: _Graph, weight_ids: list[int]) -> list[int]:
    """``weight_ids`` in model order where tf.keras tracked the layers by position
    (``layer_with_weights-0/layer_with_weights-1/kernel``, also under a common ``model/``): a
    nested model's weights where it stands, depth first, not after the outer model's own layers
    (the graph's breadth-first node order); inside a layer (a cell, a wrapper's halves) the node
    order; variables outside the layers (a loss scale, metrics) after them. Other graphs keep the
    node order."""
    parents = {nid: graph.var_of[nid].checkpoint_key.split("/")[:-3] for nid in weight_ids}
    common = 0
    while all(len(p) > common + 1 and not _POSITIONAL.match(p[common]) for p in parents.values()) \
            and len({p[common] for p in parents.values()}) == 1:
        common += 1  # tf.train.Checkpoint(model=...): every key starts with model/

    def positions(nid: int) -> list[int]:
        out = []
        for part in parents[nid][common:]:
            if not _POSITIONAL.match(part):
                break
            out.append(int(part.rsplit("-", 1)[1]))
        return out

    keys = {nid: positions(nid) for nid in weight_ids}
    if not any(keys.values()):
        return weight_ids
    return sorted(weight_ids, key=lambda nid: (not keys[nid], keys[nid], nid))


def _read_graph(tensors: dict[str, np.ndarray], graph_bytes: bytes, prefix: Path) -> _Graph:
    """Decode the object graph and find each node's variable tensor among ``tensors``."""
    try:
        nodes = pw.decode_object_graph(graph_bytes)
    except ValueError as exc:
        raise CorruptCheckpointError(f"undecodable object graph: {exc}", path=prefix) from exc
    if not nodes:
        raise CorruptCheckpointError("empty object graph", path=prefix)
    var_of: dict[int, pw.SerializedTensor] = {}
    for nid, node in enumerate(nodes):
        for attr in node.attributes:
            if attr.name == _VALUE and attr.checkpoint_key in tensors:
                var_of[nid] = attr
            elif attr.checkpoint_key in tensors:
                log.debug("%s: skipping non-variable attribute %s", prefix, attr.checkpoint_key)
    return _Graph(nodes=nodes, paths=_paths(nodes), var_of=var_of, tensors=tensors, prefix=prefix)


def _optimizer_nodes(graph: _Graph) -> _OptimizerNodes | None:
    """The optimizer (inside a loss-scale wrapper, whose variables become extra) and its
    variables: direct children, slot references and ``_variables``-style lists."""
    nodes = graph.nodes
    opt_id = _find_optimizer(nodes, graph.paths)
    if opt_id is None:
        return None
    extra_outer: dict[str, np.ndarray] = {}
    for ref in nodes[opt_id].children:
        inner = nodes[ref.node_id] if 0 <= ref.node_id < len(nodes) else None
        # tf.keras 2.4-2.10's LossScaleOptimizer keeps its inner optimizer's variables and slot
        # references itself (an empty ``base_optimizer`` child): descend only into a real one
        if ref.local_name in _INNER and inner is not None and (inner.children or inner.slot_variables):
            for r2 in nodes[opt_id].children:
                if r2.node_id in graph.var_of:
                    extra_outer[r2.local_name.lstrip("_")] = graph.value(r2.node_id)
            opt_id = ref.node_id
            break
    direct: dict[str, int] = {}
    slot_nodes: set[int] = set()
    for ref in nodes[opt_id].children:
        if ref.node_id in graph.var_of:
            direct[ref.local_name] = ref.node_id
        elif ref.local_name in ("_variables", "_momentums", "_velocities", "_velocity_hats",
                                "_accumulators", "_average_gradients") or ref.local_name.startswith("_"):
            if ref.local_name == "_trainable_variables":
                continue
            slot_nodes.update(c.node_id for c in nodes[ref.node_id].children if c.node_id in graph.var_of)
    for sv in nodes[opt_id].slot_variables:
        slot_nodes.add(sv.slot_variable_node_id)
    slot_nodes -= set(direct.values())
    return _OptimizerNodes(opt_id=opt_id, direct=direct, slot_nodes=slot_nodes, extra_outer=extra_outer)


def _weight_names(graph: _Graph, weight_ids: list[int]) -> tuple[dict[int, str], bool]:
    """(canonical weight name by node, written by Keras 3): names from ``full_name``,
    collisions falling back to the graph path; Keras 3's outer model name dropped."""
    names: dict[int, str] = {}
    seen: dict[str, list[int]] = {}
    for nid in weight_ids:
        full = graph.var_of[nid].full_name or "/".join(graph.paths.get(nid, (str(nid),)))
        seen.setdefault(canonical_from_full_name(full), []).append(nid)
    for name, ids in seen.items():
        apart = _apart([graph.var_of[n].full_name for n in ids], name) if len(ids) > 1 else None
        for i, nid in enumerate(ids):
            names[nid] = name if len(ids) == 1 else apart[i] if apart else "/".join(graph.paths[nid])
    keras3_graph = any(ref.local_name in ("_operations", "_functional", "_tracked")
                       for node in graph.nodes for ref in node.children)
    if keras3_graph and weight_ids:  # Keras 3 paths start with the outer model's own name
        parts = [names[n].split("/") for n in weight_ids]
        if all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
            names = {n: "/".join(names[n].split("/")[1:]) if n in weight_ids else v for n, v in names.items()}
    return names, keras3_graph


def _apart(full_names: list[str], canonical: str) -> list[str] | None:
    """Names for variables whose cell scopes were dropped into one canonical name
    (``StackedRNNCells``: every cell has a ``kernel``): the path inside their layer kept where it
    tells them apart, as the live walk names them; None when the full names do not allow it."""
    head, _, _ = canonical.rpartition("/")
    layer = head.rsplit("/", 1)[-1]
    tails = []
    for full in full_names:
        parts = strip_tensor_suffix(full).split("/")
        if not head or layer not in parts[:-1]:
            return None
        tails.append(parts[len(parts) - 1 - parts[:-1][::-1].index(layer):])
    names = distinct_paths(tails)
    return [f"{head}/{n}" for n in names] if len(set(names)) == len(names) else None


def _optimizer_state(graph: _Graph, opt: _OptimizerNodes, names: dict[int, str], weight_ids: list[int]
                     ) -> tuple[OptimizerState | None, int | None]:
    """(optimizer state, iterations); (None, None) when the optimizer holds nothing to restore."""
    hyper, extra, iterations = _optimizer_scalars(graph, opt)
    problems: list[str] = []
    raw_slots, cls = _referenced_slots(graph, opt.opt_id, names)
    referenced = {nid for _, _, nid in raw_slots}
    more, cls = _slots_by_name(graph, opt.slot_nodes - referenced, names, weight_ids, cls, problems)
    raw_slots += more
    if cls is None:
        found = {s for _, s, _ in raw_slots}
        cls = next((c for need, c in _OPT_SLOT_SETS if need <= found), None)
        if cls is None and found:
            cls = _RAW_CLASS_SLOTS.get(sorted(found)[0])
    slots = _checked_slots(graph, raw_slots, cls, names, weight_ids, problems)
    if problems:
        raise IncompatibleStateError("optimizer slots cannot be matched to variables", problems,
                                     path=graph.prefix)
    if cls is None and not hyper and iterations is None:
        return None, None
    return OptimizerState(class_name=cls or "SGD", hyperparameters=hyper, iterations=iterations,
                          slots=slots, extra=extra), iterations


def _optimizer_scalars(graph: _Graph, opt: _OptimizerNodes
                       ) -> tuple[dict[str, object], dict[str, np.ndarray], int | None]:
    """(hyper-parameters, extra, iterations) from the optimizer's direct variables."""
    hyper: dict[str, object] = {}
    extra: dict[str, np.ndarray] = dict(opt.extra_outer)
    iterations = None
    for local, nid in opt.direct.items():
        key = local.lstrip("_")
        arr = np.asarray(graph.value(nid))
        if local in _ITER and arr.size == 1:
            iterations = int(arr.reshape(-1)[0])
        elif local in _LR and arr.size == 1:
            hyper["learning_rate"] = float(arr.reshape(-1)[0])
        elif arr.size == 1 and arr.dtype.kind == "f":
            hyper[key] = float(arr.reshape(-1)[0])
        else:
            extra[key] = arr
    return hyper, extra, iterations


#: the name scope tf.keras 2.2.4-tf (TF 1.x graph execution) creates optimizer variables in:
#: ``training/Adamax/dense/kernel/m`` (``training_1/`` for a second compiled model)
_TRAINING_SCOPE = re.compile(r"^training(?:_\d+)?/")


def _referenced_slots(graph: _Graph, opt_id: int, names: dict[int, str]
                      ) -> tuple[list[tuple[str, str, int]], str | None]:
    """OptimizerV2 slot references: (owner canonical, raw slot, slot node) triples and the
    optimizer class their scope names, if any."""
    raw_slots: list[tuple[str, str, int]] = []
    cls: str | None = None
    for sv in graph.nodes[opt_id].slot_variables:
        owner = names.get(sv.original_variable_node_id)
        if owner is None or sv.slot_variable_node_id not in graph.var_of:
            continue
        raw_slots.append((owner, sv.slot_name, sv.slot_variable_node_id))
        full = _TRAINING_SCOPE.sub("", graph.var_of[sv.slot_variable_node_id].full_name)
        first = full.split("/", 1)[0]
        if cls is None and canonical_optimizer_class(first) in CANONICAL_SLOTS:
            cls = canonical_optimizer_class(first)
    return raw_slots, cls


#: a ``tf.cond`` scope the slots of TF 2.12's loss-scale wrapper were created in (first apply)
_COND_SCOPE = re.compile(r"^(?:cond(?:_\d+)?/)+")


def _slots_by_name(graph: _Graph, slot_nodes: set[int], names: dict[int, str], weight_ids: list[int],
                   cls: str | None, problems: list[str]) -> tuple[list[tuple[str, str, int]], str | None]:
    """Unreferenced slot variables matched to their variable by their own name (TF 2.11-2.15,
    Keras 3, loss-scale wrappers): triples as :func:`_referenced_slots`, and the class."""
    var_of = graph.var_of
    by_full = {var_of[n].full_name: names[n] for n in weight_ids}
    by_under = {var_of[n].full_name.replace("/", "_"): names[n] for n in weight_ids}
    raw_slots: list[tuple[str, str, int]] = []
    factored: list[tuple[str, int]] = []  # Keras 3 Adafactor r / c: named after the variable alone
    for nid in sorted(slot_nodes, key=lambda n: var_of[n].checkpoint_key):
        full = _COND_SCOPE.sub("", var_of[nid].full_name)  # TF 2.12 LossScaleOptimizer: cond_1/Adam/m/...
        head, _, rest = full.partition("/")
        head_cls = canonical_optimizer_class(head)
        cls = cls or (head_cls if head_cls in CANONICAL_SLOTS else None)
        raw, _, var = rest.partition("/")
        if _tf_keras_placeholder(head_cls, raw if var in by_full else head, graph.value(nid)):
            continue
        if var and var in by_full:  # TF 2.11-2.15: Adam/m/dense/kernel
            raw_slots.append((by_full[var], raw, nid))
            continue
        split = split_keras3_slot(head_cls, rest) if head_cls in CANONICAL_SLOTS else None
        if split and split[0] in by_under:  # Keras 3: adam/dense_kernel_momentum
            raw_slots.append((by_under[split[0]], split[1], nid))
            continue
        if rest in by_full and head in _RAW_CLASS_SLOTS:  # TF 2.11+ LossScaleOptimizer: m/dense/kernel
            raw_slots.append((by_full[rest], head, nid))
            continue
        if head_cls == "Adafactor" and rest and "/" not in rest:
            factored.append((rest, nid))
            continue
        problems.append(f"optimizer variable {full!r} ({var_of[nid].checkpoint_key}) matches no model variable")
    raw_slots += _adafactor_factors(graph, factored, [names[n] for n in weight_ids], problems)
    return raw_slots, cls


def _tf_keras_placeholder(cls: str, raw: str, value: np.ndarray) -> bool:
    """tf-keras Adafactor's int ``r``/``c`` stand-ins for variables under 2-D: not state."""
    return raw in ("r", "c") and cls in ("Adafactor", "r", "c") and np.ndim(value) == 0 \
        and np.asarray(value).dtype.kind in "iu"


def _position(key: str) -> int:
    """The index of ``optimizer/_variables/<i>/...`` (creation order), else -1."""
    found = re.search(r"_variables/(\d+)/", key)
    return int(found.group(1)) if found else -1


def _adafactor_factors(graph: _Graph, factored: list[tuple[str, int]], weights: list[str],
                       problems: list[str]) -> list[tuple[str, str, int]]:
    """Keras 3 Adafactor names its factored second moments ``r`` and ``c`` after the variable's
    own name only (``adafactor/kernel``, twice): in creation order they come in pairs, ``r``
    then ``c``, one pair per trainable variable of that name in model order."""
    out: list[tuple[str, str, int]] = []
    by_leaf: dict[str, list[int]] = {}
    for leaf, nid in sorted(factored, key=lambda f: _position(graph.var_of[f[1]].checkpoint_key)):
        by_leaf.setdefault(leaf, []).append(nid)
    for leaf, nids in by_leaf.items():
        owners = [w for w in weights if w.rsplit("/", 1)[-1] == leaf]
        if len(nids) != 2 * len(owners):
            problems.append(f"{len(nids)} Adafactor factors named {leaf!r} for {len(owners)} such variables")
            continue
        for i, owner in enumerate(owners):
            out += [(owner, "r", nids[2 * i]), (owner, "c", nids[2 * i + 1])]
    return out


def _checked_slots(graph: _Graph, raw_slots: list[tuple[str, str, int]], cls: str | None,
                   names: dict[int, str], weight_ids: list[int], problems: list[str]
                   ) -> dict[str, dict[str, np.ndarray]]:
    """Slots by owner and canonical slot name, in weight order; misshaped and doubled
    slots go to ``problems``."""
    shape_of = {names[n]: np.shape(graph.value(n)) for n in weight_ids}
    slots: dict[str, dict[str, np.ndarray]] = {}
    for owner, raw, nid in raw_slots:
        arr = graph.value(nid)
        slot = canonical_slot(cls or "", raw)
        if owner not in shape_of or np.shape(arr) != slot_shape(cls or "", slot, shape_of[owner]):
            problems.append(f"slot {slot!r} of {owner!r} has shape {np.shape(arr)}, "
                            f"variable has {shape_of.get(owner)}")
        elif slot in slots.get(owner, {}):
            problems.append(f"two {slot!r} slots for {owner!r}")
        else:
            slots.setdefault(owner, {})[slot] = arr
    order = {names[n]: i for i, n in enumerate(weight_ids)}
    return dict(sorted(slots.items(), key=lambda kv: order.get(kv[0], len(order))))

