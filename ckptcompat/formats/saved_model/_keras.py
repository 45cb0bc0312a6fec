"""Keras metadata of a SavedModel -> model config, training config, layer names, producer.

TF 2.5+ writes the metadata to ``keras_metadata.pb``; TF 2.0-2.4 kept the same JSON in the
``user_object.metadata`` of ``saved_model.pb``'s object graph. The root node (``root``)
carries ``model_config``/``training_config``/``keras_version``; every layer node carries its
``name`` under its object path (``root.layer_with_weights-0``), which names the weights of
files whose variable scopes differ from the layer names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptcompat.errors import CorruptCheckpointError
from ckptcompat.formats.saved_model._proto import KerasNode

__all__ = ["KerasInfo", "keras_info", "framework_for", "plain_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KerasInfo:
    """What the Keras metadata tells: configs, versions, root identifier, layer names by path."""

    identifier: str = ""
    model_config: Mapping[str, Any] | None = None
    training_config: Mapping[str, Any] | None = None
    keras_version: str = ""
    backend: str = ""
    layer_names: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    #: the object paths of the nested models among them (Sequential, Functional, subclassed)
    models: frozenset = frozenset()


def _json(node: KerasNode, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(node.metadata)
    except ValueError as exc:
        raise CorruptCheckpointError(f"Keras metadata of {node.node_path or node.node_id} is not JSON",
                                     path=path, hint="the SavedModel is damaged; use an earlier one") from exc
    return value if isinstance(value, dict) else {}


_ENCODED_SEQUENCES = ("__tuple__", "TensorShape")


def plain_config(value: Any) -> Any:
    """The SavedModel JSON encoding -> the legacy ``.h5`` layout of the same config.

    Keras 2's SavedModel encoder writes tuples and shapes as ``{"class_name": "__tuple__",
    "items": [...]}`` and tags shared objects with ``shared_object_id``; ``.h5`` files store
    plain lists and no ids, which is what the config translation expects.
    """
    if isinstance(value, dict):
        if value.get("class_name") in _ENCODED_SEQUENCES and set(value) <= {"class_name", "items"}:
            return [plain_config(v) for v in value.get("items") or []]
        return {k: plain_config(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [plain_config(v) for v in value]
    return value


_MODEL_IDENTIFIERS = ("_tf_keras_network", "_tf_keras_sequential", "_tf_keras_model")


def keras_info(nodes: list[KerasNode], path: Path) -> KerasInfo | None:
    """Collect the Keras metadata of ``nodes`` (``node_path`` like ``root.layer-0``); None if no root."""
    root = next((n for n in nodes if n.node_path in ("root", "")), None)
    if root is None or not root.identifier.startswith("_tf_keras"):
        return None
    meta = _json(root, path)
    model_config = meta.get("model_config")
    if not isinstance(model_config, dict) and isinstance(meta.get("config"), dict) \
            and meta.get("class_name") and meta.get("is_graph_network", True):
        model_config = {"class_name": meta["class_name"], "config": meta["config"]}
    training = meta.get("training_config")
    names: dict[tuple[str, ...], str] = {}
    models: set[tuple[str, ...]] = set()
    for node in nodes:
        if node is root or not node.node_path.startswith("root."):
            continue
        if not node.identifier.startswith("_tf_keras_") or node.identifier == "_tf_keras_metric":
            continue
        try:
            value = json.loads(node.metadata)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            names[tuple(node.node_path.split(".")[1:])] = value["name"]
            if node.identifier in _MODEL_IDENTIFIERS:
                models.add(tuple(node.node_path.split(".")[1:]))
    return KerasInfo(identifier=root.identifier,
                     model_config=plain_config(model_config) if isinstance(model_config, dict) else None,
                     training_config=plain_config(training) if isinstance(training, dict) else None,
                     keras_version=str(meta.get("keras_version", "")), backend=str(meta.get("backend", "")),
                     layer_names=names, models=frozenset(models))


def framework_for(keras_version: str, tf_version: str) -> str:
    """``tf.keras`` for TF 2.0-2.15 / Keras 2.x, ``tf-keras`` for 2.16+, ``tensorflow`` without Keras."""
    version = keras_version or tf_version
    if not keras_version:
        return "tensorflow"
    nums = [int(n) for n in re.findall(r"\d+", version)[:2]] + [0, 0]
    return "tf-keras" if nums[0] == 2 and nums[1] >= 16 else "tf.keras"
