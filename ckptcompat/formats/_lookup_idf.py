"""The idf array a ``tf_idf`` lookup layer keeps, built from its config, and its place in files.

ckptcompat carries an adapted StringLookup/IntegerLookup/TextVectorization's vocabulary and a
``tf_idf`` layer's ``idf_weights`` in the layer's config (:mod:`ckptcompat.formats.keras_zip._assets`).
Keras does not load a tf_idf layer from its config alone: Keras 3 reads the array from the
layer's ``vars/idf_weights`` (``load_own_variables``), and tf-keras's legacy ``.h5`` loader
sets it as the layer's one weight. The writers therefore emit the array Keras's own
``set_vocabulary`` builds from the config (:func:`idf_array`); the legacy ``.h5`` reader leaves
such weights out again (:func:`derived_lookup_weights`): the config says the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ckptcompat.names.configs.table import LOOKUP_CLASSES

__all__ = ["idf_array", "derived_lookup_weights", "TF_KERAS_IDF_NAME"]

log = logging.getLogger(__name__)

#: the name tf-keras's ``.h5`` gives a lookup layer's idf weight (an unnamed ``tf.Variable``)
TF_KERAS_IDF_NAME = "Variable"

_OOV_TOKEN = {"StringLookup": "[UNK]", "TextVectorization": "[UNK]", "IntegerLookup": -1}


def _front(class_name: str, config: Mapping[str, Any], vocabulary: list[Any]) -> int:
    """How many OOV slots Keras puts in front of the given vocabulary's idf: none when the
    vocabulary starts with them (as adapted ones do), else ``num_oov_indices`` (tf_idf counts no
    mask slot; a TextVectorization's inner StringLookup has one OOV index, "[UNK]"; tf.keras
    2.4-2.5's IntegerLookup spells the token ``oov_value``)."""
    if class_name == "TextVectorization":
        count, token = 1, "[UNK]"
    else:
        count = int(config.get("num_oov_indices", 1))
        token = config.get("oov_token", config.get("oov_value", _OOV_TOKEN[class_name]))
    return 0 if list(vocabulary[:count]) == [token] * count else count


def idf_array(class_name: str, config: Mapping[str, Any]) -> np.ndarray | None:
    """The float32 idf array a ``tf_idf`` lookup layer built from ``config`` holds (Keras's
    ``set_vocabulary``): a vocabulary without its OOV tokens gets them in front, weighted with
    the average idf (in the given list's own dtype, as Keras pads it); ``pad_to_max_tokens``
    pads zeros up to ``max_tokens``. None for any other layer, or when the config holds no
    vocabulary list with idf weights."""
    if class_name not in LOOKUP_CLASSES or config.get("output_mode") not in ("tf_idf", "tf-idf"):
        return None
    vocabulary, idf = config.get("vocabulary"), config.get("idf_weights")
    if not isinstance(vocabulary, list) or not isinstance(idf, (list, tuple, np.ndarray)):
        return None
    weights = np.asarray(idf).ravel()
    if weights.dtype.kind not in "iuf":
        return None
    front = _front(class_name, config, vocabulary)
    max_tokens = config.get("max_tokens", config.get("max_values"))
    back = 0
    pad = config.get("pad_to_max_tokens", config.get("pad_to_max_values"))  # tf.keras 2.4-2.5 IntegerLookup
    if pad and isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        back = max(0, max_tokens - front - weights.size)
    front_value = np.average(weights) if front and weights.size else 0
    return np.pad(weights, (front, back), "constant", constant_values=(front_value, 0)).astype(np.float32)


def derived_lookup_weights(entries: Iterable[tuple[str, dict[str, Any]]], arrays: Mapping[str, Any],
                           where: str) -> list[str]:
    """The names among ``arrays`` under a lookup layer whose config carries its vocabulary
    (``entries``: canonical layer path and config entry, the config's own dicts): an idf weight
    there is what the config builds. One that differs from it (``set_vocabulary`` called after
    the constructor) goes into the layer's ``idf_weights`` when that reproduces it, with a
    warning; otherwise the config's stays, warned too."""
    names = []
    for path, entry in entries:
        cfg = entry.get("config")
        if entry.get("class_name") not in LOOKUP_CLASSES or not isinstance(cfg, dict) \
                or not isinstance(cfg.get("vocabulary"), list):
            continue
        under = [n for n in arrays if n.startswith(path + "/")]
        names += under
        built = idf_array(str(entry["class_name"]), cfg)
        if built is None or len(under) != 1 or np.array_equal(np.asarray(arrays[under[0]]), built):
            continue
        stored = np.asarray(arrays[under[0]], dtype=np.float32).ravel()
        front = _front(str(entry["class_name"]), cfg, cfg["vocabulary"])
        given = [float(v) for v in stored[front:front + len(cfg["vocabulary"])]]
        rebuilt = idf_array(str(entry["class_name"]), {**cfg, "idf_weights": given})
        # the front (OOV) average: Keras took it of the float64 list, here of its float32 copy
        if rebuilt is not None and rebuilt.shape == stored.shape and np.array_equal(rebuilt[front:], stored[front:]) \
                and np.allclose(rebuilt[:front], stored[:front], rtol=1e-6, atol=0):
            cfg["idf_weights"] = given
            log.warning("%s: %s: the stored idf weights differ from the layer config's: the stored ones are "
                        "taken into it", where, path)
        else:
            log.warning("%s: %s: the stored idf weights (%d) fit no idf_weights of the layer config's "
                        "vocabulary; the config's are kept", where, path, stored.size)
    return names
