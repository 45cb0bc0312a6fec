"""Keras 3's recorded ``Embedding(mask_zero=True)`` mask, for a Keras 2 config.

Keras 3.15 computes an ``Embedding`` mask with ``ops.not_equal(ids, 0)`` on the symbolic inputs,
so a functional config holds a ``NotEqual`` operation node, and every layer the mask reaches is
recorded with it as its ``mask`` argument. Keras 2 has no operation nodes: it propagates that
same mask by itself. The node and those arguments are dropped only where that is exactly what
Keras 2 computes: ``NotEqual(ids, 0)`` with ``ids`` the input of an unshared ``mask_zero``
embedding, every use of the node a single-tensor ``mask`` of a layer call whose first input
comes from that embedding through unshared layers that pass a mask on unchanged in both
generations (:data:`PASS_MASK`); nothing refers to it otherwise. Anything else is left for the
downgrade to refuse, naming the node.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from ckptcompat.names.configs.nodes import tensor_history, walk_refs

__all__ = ["PASS_MASK", "without_embedding_masks"]

log = logging.getLogger(__name__)

#: layers that hand their input's mask on unchanged in Keras 2 and 3 (recurrent ones only with
#: ``return_sequences``)
PASS_MASK = frozenset({"Dropout", "Activation", "Dense", "LayerNormalization", "SpatialDropout1D",
                       "GaussianNoise", "GaussianDropout", "LSTM", "GRU", "SimpleRNN"})
_RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN"})


def _name(entry: Mapping[str, Any]) -> str:
    cfg = entry.get("config")
    return str(entry.get("name") or (cfg.get("name") if isinstance(cfg, Mapping) else None))


def _nodes(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nodes = entry.get("inbound_nodes")
    return [n for n in nodes if isinstance(n, Mapping)] if isinstance(nodes, list) else []


def _refs(obj: Any) -> list[list[Any]]:
    """Every tensor reference in ``obj``: Keras 3 tensor dicts and ``[name, node, tensor]`` lists."""
    found: list[list[Any]] = []
    walk_refs(obj, found.append)
    return found


def _first_input(node: Mapping[str, Any]) -> list[Any] | None:
    args = node.get("args")
    return tensor_history(args[0]) if isinstance(args, list) and args else None


def _embedding_masks(layers: dict[str, Mapping[str, Any]]) -> dict[str, str]:
    """``NotEqual`` node name -> the unshared ``mask_zero`` embedding whose mask it computes."""
    found = {}
    for name, entry in layers.items():
        module = entry.get("module")
        nodes = _nodes(entry)
        if entry.get("class_name") != "NotEqual" or not (module is None or str(module).startswith("keras.src.ops")) \
                or len(nodes) != 1 or nodes[0].get("kwargs"):
            continue
        args = nodes[0].get("args")
        if not isinstance(args, list) or len(args) != 2 or isinstance(args[1], bool) or args[1] != 0:
            continue
        ids = tensor_history(args[0])
        owners = [n for n, e in layers.items() if e.get("class_name") == "Embedding" and ids is not None
                  and (e.get("config") or {}).get("mask_zero") is True
                  and [_first_input(x) for x in _nodes(e)] == [ids]]
        if len(owners) == 1:
            found[name] = owners[0]
    return found


def _fed_by(layers: dict[str, Mapping[str, Any]], node: Mapping[str, Any], embedding: str) -> bool:
    """Whether ``node``'s first input comes from ``embedding`` through :data:`PASS_MASK` layers."""
    source = _first_input(node)
    while source is not None and source[0] != embedding:
        entry = layers.get(str(source[0]))
        nodes = _nodes(entry) if entry is not None else []
        cfg = (entry or {}).get("config") or {}
        if entry is None or entry.get("class_name") not in PASS_MASK or len(nodes) != 1 or \
                (entry.get("class_name") in _RECURRENT and cfg.get("return_sequences") is not True):
            return False
        source = _first_input(nodes[0])
    return source is not None and source[1:] == [0, 0]


def _droppable(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The mask nodes of ``cfg`` (a functional model's config) that restate an embedding's mask."""
    layers = {_name(e): e for e in cfg["layers"] if isinstance(e, Mapping)}
    masks = _embedding_masks(layers)
    if not masks or any(r[0] in masks for r in _refs([cfg.get("input_layers"), cfg.get("output_layers")])):
        return {}
    for entry in layers.values():
        for node in _nodes(entry):
            kwargs = dict(node.get("kwargs") or {})
            mask = kwargs.pop("mask", None)
            if any(r[0] in masks for r in _refs([node.get("args"), kwargs])):
                return {}  # used as something other than a mask: Keras 2 has no node for it
            used = [r[0] for r in _refs(mask) if r[0] in masks]
            if used and (tensor_history(mask) is None or not _fed_by(layers, node, masks[used[0]])):
                return {}  # in a list of masks, or given to a layer the embedding's mask does not reach
    return masks


def without_embedding_masks(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Keras 3 functional ``model_cfg`` without the ``NotEqual`` nodes that only
    restate an embedding's mask (module docstring); unchanged where any use is another one, or
    where the config is not shaped as Keras writes it."""
    out = copy.deepcopy(dict(model_cfg))
    try:
        masks = _droppable(out) if isinstance(out.get("layers"), list) else {}
    except (TypeError, AttributeError, KeyError, IndexError, ValueError):  # odd input: left to the downgrade
        return out
    if not masks:
        return out
    for entry in out["layers"]:
        for node in _nodes(entry) if isinstance(entry, Mapping) else []:
            mask = tensor_history((node.get("kwargs") or {}).get("mask"))
            if mask is not None and mask[0] in masks:
                del node["kwargs"]["mask"]
    out["layers"] = [e for e in out["layers"] if not (isinstance(e, Mapping) and _name(e) in masks)]
    log.info("Keras 2 propagates the embedding mask itself: dropped the recorded mask node(s) %s",
             ", ".join(sorted(masks)))
    return out
