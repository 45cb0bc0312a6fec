"""The vocabularies of lookup layers in a SavedModel's variables bundle.

A TF 2.x SavedModel keeps an ``IntegerLookup`` / ``StringLookup`` / ``TextVectorization``'s
table as two tensors, ``<layer>/_table/.ATTRIBUTES/table-keys`` and ``table-values`` (token ->
index); its config records no vocabulary. Ordered by index, the keys are the vocabulary (its
special tokens first where the table holds them), which is written into the layer's config,
where both generations' constructors take it (see :mod:`ckptcompat.resuming.adapted_vocab`).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.names.configs.table import LOOKUP_CLASSES
from ckptcompat.resuming.layer_paths import config_entries

__all__ = ["config_with_table_vocabularies"]

log = logging.getLogger(__name__)

_TABLE = re.compile(r"^(.+)/(?:_table|lookup_table)/\.ATTRIBUTES/table-(keys|values)$")


def _vocabulary(keys: np.ndarray, values: np.ndarray, invert: bool = False) -> list[Any] | None:
    """The keys ordered by their index; None unless the indices are one contiguous run. An
    ``invert=True`` layer's table maps index -> token."""
    keys, values = np.asarray(keys).reshape(-1), np.asarray(values).reshape(-1)
    if invert:
        keys, values = values, keys
    if keys.shape != values.shape or not keys.size or values.dtype.kind not in "iu":
        return None
    order = np.argsort(values, kind="stable")
    if not np.array_equal(values[order], np.arange(values.min(), values.min() + values.size)):
        return None
    return [k.decode("utf-8") if isinstance(k, bytes) else k.item() if hasattr(k, "item") else k
            for k in keys[order]]


def config_with_table_vocabularies(model_config: Mapping[str, Any] | None, tensors: Mapping[str, np.ndarray],
                                   layer_names: Mapping[tuple[str, ...], str], folder: Path) -> Any:
    """A copy of ``model_config`` whose lookup layers carry the vocabulary of their table tensors
    (unchanged without any)."""
    tables: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        match = _TABLE.match(key)
        if match:
            tables.setdefault(tuple(match.group(1).split("/")), {})[match.group(2)] = value
    if not tables or not isinstance(model_config, Mapping):
        return model_config
    out = copy.deepcopy(dict(model_config))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for path, entry in config_entries(out):
        by_name.setdefault(path.rpartition("/")[2], []).append(entry)
    for object_path, parts in tables.items():
        name = layer_names.get(object_path)
        entries = by_name.get(name or "", [])
        invert = len(entries) == 1 and bool(entries[0]["config"].get("invert"))
        vocabulary = _vocabulary(parts.get("keys", np.zeros(0)), parts.get("values", np.zeros(0)), invert)
        if len(entries) != 1 or entries[0].get("class_name") not in LOOKUP_CLASSES or vocabulary is None:
            log.warning("%s: the lookup table at %s is not restored (layer %s, %s)", folder, "/".join(object_path),
                        name, "no contiguous indices" if vocabulary is None else "no lookup layer of that name")
            continue
        cfg = entries[0]["config"]
        if str(cfg.get("output_mode")) in ("tf_idf", "tf-idf"):  # its idf weights are not in the table
            log.warning("%s: %s: a tf_idf lookup table's vocabulary alone is not restored", folder, name)
            continue
        if cfg.get("vocabulary") is None:
            cfg["vocabulary"] = vocabulary
            log.info("%s: %s: vocabulary of %d entries from its lookup table", folder, name, len(vocabulary))
    return out
