"""Keras 3's recorded ``Embedding(mask_zero=True)`` mask, for a Keras 2 config.

Keras 3.15 computes an ``Embedding`` mask with ``ops.not_equal(ids, 0)`` on the symbolic inputs,
so a functional config holds a ``NotEqual`` operation node, and every layer the mask reaches is
recorded with it as its ``mask`` argument. Keras 2 has no operation nodes: it propagates that
same mask by itself. So where a ``NotEqual(ids, 0)`` node is the mask of an ``Embedding`` with
``mask_zero=True`` called on ``ids``, and is used only as the ``mask`` of layers downstream of
that embedding, the node and those arguments are dropped; anything else is left for the
downgrade to refuse, naming the node.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from ckptcompat.names.configs.nodes import tensor_history

__all__ = ["without_embedding_masks"]

log = logging.getLogger(__name__)


def _name(entry: Mapping[str, Any]) -> str:
    return str(entry.get("name") or (entry.get("config") or {}).get("name"))


def _nodes(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nodes = entry.get("inbound_nodes")
    return [n for n in nodes if isinstance(n, Mapping)] if isinstance(nodes, list) else []


def _histories(obj: Any) -> list[list[Any]]:
    hist = tensor_history(obj)
    if hist is not None:
        return [hist]
    values = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (list, tuple)) else ()
    return [h for v in values for h in _histories(v)]


def _embedding_masks(layers: list[Any]) -> dict[str, str]:
    """``NotEqual`` node name -> the ``mask_zero`` embedding whose mask it computes."""
    found = {}
    embeddings = [e for e in layers if isinstance(e, Mapping) and e.get("class_name") == "Embedding"
                  and (e.get("config") or {}).get("mask_zero") is True]
    for entry in layers:
        module = entry.get("module") if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping) or entry.get("class_name") != "NotEqual" or \
                not (module is None or str(module).startswith("keras.src.ops")):
            continue
        nodes = _nodes(entry)
        args = list(nodes[0].get("args") or []) if len(nodes) == 1 else []
        if len(args) != 2 or args[1] != 0 or isinstance(args[1], bool) or nodes[0].get("kwargs"):
            continue
        ids = tensor_history(args[0])
        owners = [_name(e) for e in embeddings if any(_histories(n.get("args"))[:1] == [ids] for n in _nodes(e))]
        if ids is not None and len(owners) == 1:
            found[_name(entry)] = owners[0]
    return found


def _downstream(layers: list[Any], start: str, ancestor: str) -> bool:
    """Whether ``ancestor``'s output reaches layer ``start``'s first call argument."""
    sources = {_name(e): [h[0] for n in _nodes(e) for h in _histories(list(n.get("args") or [])[:1])]
               for e in layers if isinstance(e, Mapping)}
    seen, todo = set(), list(sources.get(start, []))
    while todo:
        name = todo.pop()
        if name == ancestor:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(sources.get(name, []))
    return False


def without_embedding_masks(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Keras 3 functional ``model_cfg`` without the ``NotEqual`` nodes that only
    restate an embedding's mask (module docstring); unchanged where any use is another one."""
    out = copy.deepcopy(dict(model_cfg))
    layers = out.get("layers")
    masks = _embedding_masks(layers) if isinstance(layers, list) else {}
    if not masks or any(h[0] in masks for h in _histories(out.get("output_layers"))):
        return out
    for entry in layers:
        for node in _nodes(entry) if isinstance(entry, Mapping) else []:
            kwargs = dict(node.get("kwargs") or {})
            mask = tensor_history(kwargs.pop("mask", None))
            if any(h[0] in masks for h in _histories([node.get("args"), kwargs])):
                return dict(model_cfg)  # used as something other than a mask: not Keras 2's mask
            if mask is not None and mask[0] in masks and not _downstream(layers, _name(entry), masks[mask[0]]):
                return dict(model_cfg)  # a mask given to a layer the embedding does not feed
    for entry in layers:
        for node in _nodes(entry) if isinstance(entry, Mapping) else []:
            mask = tensor_history((node.get("kwargs") or {}).get("mask"))
            if mask is not None and mask[0] in masks:
                del node["kwargs"]["mask"]
    out["layers"] = [e for e in layers if not (isinstance(e, Mapping) and _name(e) in masks)]
    log.info("Keras 2 propagates the embedding mask itself: dropped the recorded mask node(s) %s",
             ", ".join(sorted(masks)))
    return out
