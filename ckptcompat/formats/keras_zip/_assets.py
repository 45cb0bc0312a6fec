"""The vocabularies of adapted lookup layers in a ``.keras`` archive's ``assets/``.

Keras (tf-keras 2.13+ and Keras 3) writes what an adapted ``StringLookup``, ``IntegerLookup`` or
``TextVectorization`` found to ``assets/<the layer's object path>/vocabulary.txt``, one token a
line, special tokens first (a ``TextVectorization`` also under its ``_lookup_layer``), and a
``tf_idf`` layer's ``idf_weights`` by name among its variables; the config records neither. They
are read into the layer's config here (``vocabulary``, ``idf_weights``), where both generations'
constructors take them, so a model rebuilt from the state has them (see
:mod:`ckptcompat.resuming.adapted_vocab`).
"""

from __future__ import annotations

import copy
import logging
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import CorruptCheckpointError
from ckptcompat.formats.keras_zip._io import read_member
from ckptcompat.formats.keras_zip._layout import LayerSlot, walk_model_config
from ckptcompat.names.configs.table import LOOKUP_CLASSES

__all__ = ["read_vocabularies", "config_with_vocabularies"]

log = logging.getLogger(__name__)

_ASSET = re.compile(r"^assets/(.+)/vocabulary\.txt$")


def read_vocabularies(zf: zipfile.ZipFile, path: Path) -> dict[str, str]:
    """Asset folder (``layers/string_lookup``) -> the text of its ``vocabulary.txt``, line ends
    normalised (Keras writes it in text mode: ``\r\n`` on Windows). A file that is not UTF-8
    (written in another locale's encoding) is left out with a warning: its layer is then named as
    holding no vocabulary."""
    found = {}
    for name in zf.namelist():
        match = _ASSET.match(name.replace("\\", "/"))
        if not match:
            continue
        try:
            text = read_member(zf, name, path).decode("utf-8")
        except UnicodeDecodeError as exc:
            log.warning("%s: %s is not UTF-8 text (%s); that vocabulary is not restored", path, name, exc)
            continue
        found[match.group(1)] = text.replace("\r\n", "\n").replace("\r", "\n")
    return found


def _tokens(text: str, cfg: Mapping[str, Any], cls: str) -> list[Any]:
    """The vocabulary file's lines as Keras reads them back: trailing empty lines dropped down to
    the recorded ``vocabulary_size`` (an adapted ``""`` token can be the last line)."""
    lines = text.split("\n")
    size = cfg.get("vocabulary_size")
    while lines and lines[-1] == "" and not (isinstance(size, int) and len(lines) <= size):
        lines.pop()
    dtype = str(cfg.get("vocabulary_dtype") or ("int64" if cls == "IntegerLookup" else "string"))
    return [int(line) for line in lines] if dtype.startswith("int") else lines


def _slots(model_cfg: Mapping[str, Any], folders: set[str], weights: Mapping[str, Any]) -> dict[str, LayerSlot]:
    """Object path -> lookup layer slot, in whichever layout (Keras 3 / tf-keras 2.12-2.15)
    names the most asset folders and idf weights."""
    best: dict[str, LayerSlot] | None = None
    score = -1
    for legacy in (False, "single", True):
        slots = {s.h5_path: s for s in walk_model_config(model_cfg, legacy=legacy) if s.class_name in LOOKUP_CLASSES}
        found = len(folders & set(slots)) + sum(_idf_key(slot, weights) is not None for slot in slots.values())
        if found > score:
            best, score = slots, found
    return best or {}


def _idf_key(slot: LayerSlot, weights: Mapping[str, Any]) -> str | None:
    """The weight name a tf_idf layer's ``idf_weights`` were read under (a TextVectorization's
    under its ``_lookup_layer``)."""
    for key in (f"{slot.prefix}/idf_weights", f"{slot.prefix}/_lookup_layer/idf_weights"):
        if key in weights:
            return key
    return None


def config_with_vocabularies(model_cfg: Mapping[str, Any] | None, vocabularies: Mapping[str, str],
                             weights: dict[str, np.ndarray], path: Path) -> Mapping[str, Any] | None:
    """A copy of ``model_cfg`` whose adapted lookup layers carry their vocabulary (and a
    ``tf_idf`` layer its ``idf_weights``, then taken out of ``weights``); unchanged without any."""
    if model_cfg is None or not (vocabularies or any(n.endswith("/idf_weights") for n in weights)):
        return model_cfg
    out = copy.deepcopy(dict(model_cfg))
    try:
        slots = _slots(out, set(vocabularies), weights)
    except ValueError as exc:
        raise CorruptCheckpointError(f"unusable model config: {exc}", path=path) from exc
    unmatched = [f for f in vocabularies if f not in slots and not any(f.startswith(s + "/") for s in slots)]
    if unmatched:
        log.warning("%s: vocabulary assets of no lookup layer in the config, not restored: %s", path,
                    ", ".join(sorted(unmatched)))
    for folder, slot in slots.items():
        cfg = slot.config
        adapted = folder in vocabularies and cfg.get("vocabulary") is None
        if adapted:
            cfg["vocabulary"] = _tokens(vocabularies[folder], cfg, slot.class_name)  # type: ignore[index]
            log.info("%s: %s: adapted vocabulary of %d tokens from the archive's assets", path, slot.prefix,
                     len(cfg["vocabulary"]))
        key = _idf_key(slot, weights)
        if key is None or cfg.get("output_mode") != "tf_idf":
            continue
        idf = weights.pop(key)
        weights.pop(f"{slot.prefix}/_lookup_layer/idf_weights", None)  # a TextVectorization's second copy
        if adapted:  # Keras's own array: one weight per token of the file's vocabulary, then max_tokens padding
            values = np.asarray(idf, dtype=np.float64).ravel()[:len(cfg["vocabulary"])]
            cfg["idf_weights"] = [float(v) for v in values]  # type: ignore[index]
        # a vocabulary given to the constructor came with its idf_weights, which the config holds
    return out
