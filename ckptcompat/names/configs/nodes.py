"""Functional-model call records (``inbound_nodes``) in both generations' spellings.

Keras 1/2 write one node as a list of references ``[layer, node, tensor, kwargs]`` (one per
tensor of the first call argument; every reference carries the same ``kwargs``, in which a
tensor is again a ``[layer, node, tensor]`` list). Keras 3 writes ``{"args": [...], "kwargs":
{...}}`` where every tensor, at any depth, is a ``{"class_name": "__keras_tensor__"}`` dict.
Keras 2 also counts a nested model's own construction as its node 0; Keras 3 does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckptcompat.errors import UnsupportedFormatError

__all__ = ["RNN_CLASSES", "is_ref", "nodes_to_keras2", "nodes_to_keras3", "shift_nested_model_refs", "walk_refs",
           "has_keras2_nodes", "has_keras3_nodes", "tensor_history"]

#: layers whose Keras 2 call split extra input tensors into ``initial_state`` (``RNN.__call__``)
RNN_CLASSES = frozenset({"RNN", "SimpleRNN", "GRU", "LSTM", "CuDNNGRU", "CuDNNLSTM", "ConvLSTM1D",
                         "ConvLSTM2D", "ConvLSTM3D", "Bidirectional"})
_MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
#: names of the call arguments after the first, for layers called with several positional
#: tensors (Keras 3 records them positionally; Keras 2 records them as kwargs by name)
CALL_ARG_NAMES: dict[str, tuple[str, ...]] = {
    "MultiHeadAttention": ("value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"),
    "GroupedQueryAttention": ("value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"),
    "GroupQueryAttention": ("value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"),
}


def is_ref(obj: Any) -> bool:
    """A Keras 1/2 tensor reference ``[layer_name, node_index, tensor_index(, kwargs)]``."""
    return (isinstance(obj, list) and len(obj) in (3, 4) and isinstance(obj[0], str)
            and isinstance(obj[1], int) and isinstance(obj[2], int) and not isinstance(obj[1], bool))


def _keras_tensor(history: list[Any]) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None], "dtype": "float32", "keras_history": list(history[:3])}}


def _history(obj: Any) -> list[Any] | None:
    if isinstance(obj, Mapping) and obj.get("class_name") == "__keras_tensor__":
        hist = (obj.get("config") or {}).get("keras_history")
        return list(hist) if isinstance(hist, list) and len(hist) == 3 else None
    return None


def tensor_history(obj: Any) -> list[Any] | None:
    """``[layer, node, tensor]`` of a Keras 3 ``__keras_tensor__`` dict, else None."""
    return _history(obj)


def _refs_to_tensors(obj: Any) -> Any:
    """Keras 2 kwargs value -> Keras 3: every ``[name, node, tensor]`` becomes a keras tensor."""
    if is_ref(obj) and len(obj) == 3:
        return _keras_tensor(obj)
    if isinstance(obj, list):
        return [_refs_to_tensors(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _refs_to_tensors(v) for k, v in obj.items()}
    return obj


def _tensors_to_refs(obj: Any) -> Any:
    """Keras 3 kwargs value -> Keras 2: every keras tensor becomes ``[name, node, tensor]``."""
    hist = _history(obj)
    if hist is not None:
        return hist
    if isinstance(obj, list):
        return [_tensors_to_refs(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _tensors_to_refs(v) for k, v in obj.items()}
    return obj


def has_keras2_nodes(entry: Any) -> bool:
    nodes = entry.get("inbound_nodes") if isinstance(entry, Mapping) else None
    return isinstance(nodes, list) and any(isinstance(n, list) for n in nodes)


def has_keras3_nodes(entry: Any) -> bool:
    nodes = entry.get("inbound_nodes") if isinstance(entry, Mapping) else None
    return isinstance(nodes, list) and any(isinstance(n, Mapping) for n in nodes)


def _node_to_keras3(node: list[Any], class_name: str) -> dict[str, Any]:
    tensors: list[Any] = []
    kwargs: dict[str, Any] = {}
    for item in node:
        if not isinstance(item, list) or len(item) < 3:
            continue
        if item[0] == "_CONSTANT_VALUE":  # tf.keras: a constant in the first argument
            tensors.append(item[2])
        else:
            tensors.append(_keras_tensor(item))
        if len(item) > 3 and isinstance(item[3], Mapping):
            kwargs.update(item[3])
    kwargs = _refs_to_tensors(kwargs)
    if class_name in RNN_CLASSES and len(tensors) > 1 and "initial_state" not in kwargs:
        tensors, kwargs["initial_state"] = tensors[:1], tensors[1:]  # Keras 2 RNN.__call__ split
    return {"args": [tensors[0]] if len(tensors) == 1 else [tensors], "kwargs": kwargs}


def nodes_to_keras3(nodes: Any, class_name: str = "") -> Any:
    """Keras 1/2 node lists -> Keras 3 ``{"args", "kwargs"}`` dicts (Keras 3 nodes: the same object)."""
    if not isinstance(nodes, list) or not any(isinstance(n, list) for n in nodes):
        return nodes
    return [_node_to_keras3(n, class_name) if isinstance(n, list) else n for n in nodes]


def _flatten_histories(obj: Any) -> list[list[Any]]:
    hist = _history(obj)
    if hist is not None:
        return [hist]
    if isinstance(obj, (list, tuple)):
        return [h for item in obj for h in _flatten_histories(item)]
    return []


def _node_to_keras2(node: Mapping[str, Any], class_name: str, layer_name: str) -> list[Any]:
    args = list(node.get("args") or [])
    kwargs = dict(node.get("kwargs") or {})
    extra = args[1:]  # further positional arguments: Keras 2 records them as kwargs by name
    if extra:
        names = CALL_ARG_NAMES.get(class_name)
        if names is None or len(extra) > len(names):
            raise UnsupportedFormatError(
                f"layer {layer_name!r} ({class_name}) is called with {len(args)} positional arguments; "
                f"Keras 2 records them by name (missing rule: CALL_ARG_NAMES[{class_name!r}])",
                hint="build the model yourself and pass resume(path, model=model)")
        kwargs.update(dict(zip(names, extra)))
    if "mask" in kwargs and _no_mask(kwargs["mask"]):
        # Keras 3 records the mask it found on the inputs, None when they carry none; Keras 2 looks
        # it up itself, and some of its layers' call() take no mask (BatchNormalization < 2.12)
        del kwargs["mask"]
    kwargs = _tensors_to_refs(kwargs)
    return [[*hist, kwargs] for hist in _flatten_histories(args[:1])]


def _no_mask(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and all(v is None for v in value))


def nodes_to_keras2(nodes: Any, class_name: str = "", layer_name: str = "") -> Any:
    """Keras 3 ``{"args", "kwargs"}`` nodes -> Keras 2 reference lists (Keras 2 nodes: the same object)."""
    if not isinstance(nodes, list) or not any(isinstance(n, Mapping) for n in nodes):
        return nodes
    return [_node_to_keras2(n, class_name, layer_name) if isinstance(n, Mapping) and "args" in n else n
            for n in nodes]


def walk_refs(obj: Any, fn: Any) -> None:
    """Apply ``fn`` to every reference list / keras-tensor history inside ``obj``."""
    hist_holder = obj.get("config") if isinstance(obj, Mapping) and obj.get("class_name") == "__keras_tensor__" else None
    if isinstance(hist_holder, Mapping) and isinstance(hist_holder.get("keras_history"), list):
        fn(hist_holder["keras_history"])
        return
    if is_ref(obj):
        fn(obj)
        if len(obj) == 4:
            walk_refs(obj[3], fn)
        return
    if isinstance(obj, list):
        for v in obj:
            walk_refs(v, fn)
    elif isinstance(obj, Mapping):
        for v in obj.values():
            walk_refs(v, fn)


def shift_nested_model_refs(model_cfg: Mapping[str, Any], delta: int) -> None:
    """Add ``delta`` to every node index that points at a nested model (in place).

    Keras 2 -> 3: ``delta=-1``; Keras 3 -> 2: ``delta=+1``. Applies to ``inbound_nodes`` (also
    to references inside call kwargs) and ``output_layers``.
    """
    layers = model_cfg.get("layers")
    if not isinstance(layers, list):
        return
    models = {str((e.get("config") or {}).get("name") or e.get("name")) for e in layers
              if isinstance(e, Mapping) and e.get("class_name") in _MODEL_CLASSES}
    if not models:
        return

    def shift(ref: list[Any]) -> None:
        if ref and ref[0] in models and isinstance(ref[1], int) and ref[1] + delta >= 0:
            ref[1] += delta

    for entry in layers:
        if isinstance(entry, Mapping):
            walk_refs(entry.get("inbound_nodes") or [], shift)
    outputs = model_cfg.get("output_layers")
    if is_ref(outputs):
        shift(outputs)
    elif isinstance(outputs, list):
        for ref in outputs:
            if is_ref(ref):
                shift(ref)
