"""An adapted lookup layer's vocabulary, carried in the layer's config.

``StringLookup``, ``IntegerLookup`` and ``TextVectorization`` keep what ``adapt`` found in a
lookup table, not in variables, and their config records it only when it was given to the
constructor: a model rebuilt from the config alone has an empty table (Keras 3 then fails
with "Table not initialized"). ckptcompat carries the vocabulary (and a ``tf_idf`` layer's
``idf_weights``) in the layer's config, which both generations' constructors take:

- read from a ``.keras`` archive's assets (:mod:`ckptcompat.formats.keras_zip._assets`);
- captured from a live model for the store (:func:`config_with_live_vocabularies`);
- set on the layers of a caller's ``model=`` once everything else is assigned
  (:func:`plan_vocabularies`, then :func:`set_vocabularies`), where its own differs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.configs.table import LOOKUP_CLASSES, OLD_OUTPUT_MODES
from ckptcompat.resuming.layer_paths import config_entries, live_layers
from ckptcompat.state import TrainingState

__all__ = ["LOOKUP_CLASSES", "live_vocabulary", "config_with_live_vocabularies", "lost_vocabularies",
           "plan_vocabularies", "set_vocabularies", "without_lookup_weights"]

log = logging.getLogger(__name__)


#: (layer, vocabulary, idf_weights or None)
Plan = List[Tuple[Any, List[Any], Any]]


def _plain(token: Any) -> Any:
    if isinstance(token, bytes):
        return token.decode("utf-8")
    return token.item() if isinstance(token, np.generic) else token


def _read_vocabulary(layer: Any) -> list[Any]:
    try:
        return [_plain(t) for t in layer.get_vocabulary(include_special_tokens=True)]
    except TypeError:  # tf.keras 2.4-2.5: get_vocabulary() takes no argument and lists them all
        return [_plain(t) for t in layer.get_vocabulary()]


def _idf_weights(layer: Any) -> np.ndarray | None:
    """A tf_idf layer's idf weights as Keras saves them (``save_own_variables``; tf.keras 2.12's
    ``_save_own_variables``; else the variable itself, a TextVectorization's on its lookup layer)."""
    from ckptcompat.resuming.lookup_idf import saved_idf

    saved = saved_idf(layer)
    if saved is not None:
        return np.asarray(saved, dtype=np.float64).ravel()
    for owner in (layer, getattr(layer, "_lookup_layer", None), getattr(layer, "_index_lookup_layer", None)):
        variable = getattr(owner, "idf_weights", None)
        if variable is not None:
            return np.asarray(variable, dtype=np.float64).ravel()
    return None


def _special_tokens(config: Mapping[str, Any]) -> set[Any]:
    """A TextVectorization's (its inner StringLookup's) mask token is "", its OOV token "[UNK]"."""
    special = {config.get("mask_token"), config.get("oov_token", "[UNK]")}
    if "mask_token" not in config:
        special.add("")
    return special


def live_vocabulary(layer: Any) -> tuple[list[Any], list[float] | None] | None:
    """``(vocabulary with its special tokens, idf_weights or None)`` of an adapted lookup layer;
    None for another layer or one that holds no token beyond its special ones."""
    if type(layer).__name__ not in LOOKUP_CLASSES or not callable(getattr(layer, "get_vocabulary", None)):
        return None
    config = layer.get_config()
    try:
        vocabulary = _read_vocabulary(layer)
    except Exception as exc:  # noqa: BLE001 -- Keras raises anything for a table it cannot read
        log.debug("%s: no vocabulary to read: %s", layer.name, exc)
        return None
    # adapt and set_vocabulary freeze the vocabulary size (a TextVectorization reports 2 before)
    if config.get("vocabulary_size", 0) is None or all(token in _special_tokens(config) for token in vocabulary):
        return None
    idf = None
    if config.get("output_mode") in ("tf_idf", "tf-idf"):
        try:
            values = _idf_weights(layer)
        except Exception as exc:  # noqa: BLE001 -- Keras's own saving raised: reported typed
            raise IncompatibleStateError(f"{layer.name}: cannot read its tf_idf weights: {exc}",
                                         hint="report it; the layer's vocabulary alone would compute other outputs") \
                from exc
        # padded to max_tokens where pad_to_max_tokens is set: the constructor takes one per token
        idf = None if values is None else [float(v) for v in values[:len(vocabulary)]]
    return vocabulary, idf


def config_with_live_vocabularies(model_config: Any, model: Any) -> Any:
    """``model_config`` (a copy where changed) whose adapted lookup layers carry the vocabulary
    the live layer holds, where the config records none (or a file path: it names a file of the
    machine that wrote it). Only those layers are read (a vocabulary can be large)."""
    if not isinstance(model_config, dict):
        return model_config
    wanted = {path for path, entry in config_entries(model_config) if entry.get("class_name") in LOOKUP_CLASSES
              and (entry["config"].get("vocabulary") is None or isinstance(entry["config"].get("vocabulary"), str))}
    read = {path: live_vocabulary(layer) for path, layer in live_layers(model) if path in wanted} if wanted else {}
    found = {path: vocab for path, vocab in read.items() if vocab is not None}
    if not found:
        return model_config
    out = copy.deepcopy(model_config)
    for path, entry in config_entries(out):
        cfg = entry["config"]
        if path in found:
            cfg["vocabulary"], idf = found[path]
            if idf is not None:
                cfg["idf_weights"] = idf
    return out


#: one lookup layer of the checkpoint: (class, output mode, vocabulary or None, idf_weights, special-token args)
_Written = Tuple[str, Any, Optional[List[Any]], Any, Dict[str, Any]]


#: output_mode spellings of tf.keras 2.4-2.5 (and its default when the config records none)
_OLD_MODES = {None: "int", **OLD_OUTPUT_MODES}
#: the arguments that fix where the special tokens sit (tf.keras 2.4-2.5 IntegerLookup spellings mapped)
_SPECIAL_ARGS = {"mask_token": "mask_token", "oov_token": "oov_token", "num_oov_indices": "num_oov_indices",
                 "invert": "invert", "mask_value": "mask_token", "oov_value": "oov_token"}


def _mode(config: Mapping[str, Any]) -> Any:
    mode = config.get("output_mode")
    return _OLD_MODES.get(mode, mode) if mode is None or isinstance(mode, str) else mode


def _specials_count(cls: str, cfg: Mapping[str, Any]) -> int:
    """How many special tokens lead the vocabulary (Keras reserves the mask slot in "int" mode only)."""
    oov = cfg.get("num_oov_indices", 1)
    mask = cls == "TextVectorization" or cfg.get("mask_token", cfg.get("mask_value")) is not None
    return int(mask and _mode(cfg) == "int") + (oov if isinstance(oov, int) and not isinstance(oov, bool) else 1)


def lost_vocabularies(model_config: Any) -> list[str]:
    """The lookup layers the config says were adapted (a frozen ``vocabulary_size`` beyond the special
    tokens) that carry no vocabulary: a legacy ``.h5`` written by Keras 3 keeps none."""
    lost = []
    for path, entry in config_entries(model_config):
        cfg, cls = entry["config"], str(entry.get("class_name"))
        size = cfg.get("vocabulary_size")
        if cls in LOOKUP_CLASSES and cfg.get("vocabulary") is None and isinstance(size, int) \
                and size > _specials_count(cls, cfg):
            lost.append(path)
    return lost


def _written(state: TrainingState) -> dict[str, _Written]:
    """Every lookup layer of the checkpoint's config: (class, output mode, vocabulary or None, idf,
    special-token arguments)."""
    found = {}
    for path, entry in config_entries(state.model_config):
        cfg = entry["config"]
        if entry.get("class_name") in LOOKUP_CLASSES:
            vocabulary = cfg.get("vocabulary") if isinstance(cfg.get("vocabulary"), list) else None
            specials = {_SPECIAL_ARGS[k]: v for k, v in cfg.items() if k in _SPECIAL_ARGS}
            found[path] = (entry["class_name"], _mode(cfg), vocabulary, cfg.get("idf_weights"), specials)
    return found


def _by_structure(layers: list[tuple[str, Any]], written: dict[str, _Written]) -> list[tuple[Any, _Written]] | None:
    """The k-th lookup layer of each class in model order with the checkpoint's k-th, when every
    class has as many on both sides and each pair has the same output mode; else None."""
    pairs = []
    for cls in LOOKUP_CLASSES:
        ours = [layer for _, layer in layers if type(layer).__name__ == cls]
        theirs = [w for w in written.values() if w[0] == cls]
        if len(ours) != len(theirs) or any(_mode(layer.get_config()) != w[1] for layer, w in zip(ours, theirs)):
            return None
        pairs.extend(zip(ours, theirs))
    return pairs


def _pairs(model: Any, state: TrainingState, where: str) -> list[tuple[str, Any, _Written]]:
    """(live path, live lookup layer, the checkpoint's) by layer path; the layers left over by
    structure (class and order, as the weights are matched when generated names differ)."""
    written = _written(state)
    layers = [(path, layer) for path, layer in live_layers(model) if type(layer).__name__ in LOOKUP_CLASSES]
    if not written or not layers:
        return []
    pairs = [(path, layer, written[path]) for path, layer in layers if path in written]
    rest = [(path, layer) for path, layer in layers if path not in written]
    unpaired = {path: w for path, w in written.items() if path not in dict(layers)}
    if rest and unpaired:
        structural = _by_structure(rest, unpaired)
        if structural is not None:
            log.info("%s: %d lookup layer(s) paired with the checkpoint's by structure (class and order)", where,
                     len(structural))
            paths = {id(layer): path for path, layer in rest}
            pairs += [(paths[id(layer)], layer, w) for layer, w in structural]
        else:
            log.warning("%s: %d lookup layer(s) of the model and %d of the checkpoint match no name or structure; "
                        "they keep their own vocabulary", where, len(rest), len(unpaired))
    return pairs


def _misfit(layer: Any, written: _Written) -> str | None:
    """Why ``layer`` cannot take the checkpoint's vocabulary, checked before anything is assigned:
    class, output mode and special tokens compared, then Keras's own ``set_vocabulary`` tried on a
    copy of the layer (its size limits, a frozen size, tf_idf weights)."""
    cls, mode, vocabulary, idf, specials = written
    config = layer.get_config()
    if type(layer).__name__ != cls or _mode(config) != mode:
        return f"{type(layer).__name__}(output_mode={config.get('output_mode')!r}) vs the checkpoint's " \
               f"{cls}(output_mode={mode!r})"
    differ = [f"{k}={config[k]!r} vs {v!r}" for k, v in specials.items() if k in config and config[k] != v]
    if differ:  # the same vocabulary would put every token at another index
        return "special tokens differ: " + ", ".join(differ)
    if mode == "tf_idf" and idf is None:
        return "the checkpoint holds no idf_weights for its tf_idf vocabulary"
    try:
        copy_of = type(layer).from_config(config)
    except Exception as exc:  # noqa: BLE001 -- a layer Keras cannot copy (a callable argument): not tried
        log.debug("%s: no copy to try the vocabulary on: %s", layer.name, exc)
        return None
    try:
        _set(copy_of, vocabulary, idf)
    except Exception as exc:  # noqa: BLE001 -- Keras's own refusal, reported typed by the caller
        return f"{len(vocabulary)} tokens: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def _set(layer: Any, vocabulary: list[Any], idf: Any) -> None:
    if idf is None:
        layer.set_vocabulary(vocabulary)
    else:
        layer.set_vocabulary(vocabulary, idf_weights=np.asarray(idf, dtype=np.float32))


def plan_vocabularies(model: Any, state: TrainingState, where: str) -> Plan:
    """The checkpoint's vocabularies for the live lookup layers whose own differ, to set once the
    rest is assigned (:func:`set_vocabularies`); a layer that cannot take one raises before anything
    is assigned."""
    lost = lost_vocabularies(state.model_config)
    if lost:
        log.warning("%s: the checkpoint records no vocabulary of its adapted lookup layer(s) %s; the model's "
                    "own are kept", where, ", ".join(lost))
    plan: Plan = []
    misfits = []
    for _, layer, written in _pairs(model, state, where):
        own, (_, _, vocabulary, idf, _) = live_vocabulary(layer), written
        if vocabulary is None:  # the checkpoint's layer records none (not adapted, a file path)
            continue
        if own is not None and own[0] == vocabulary and (idf is None or own[1] == idf):
            continue
        why = _misfit(layer, written)
        if why is not None:
            misfits.append(f"{layer.name}: {why}")
        plan.append((layer, vocabulary, idf))
    if misfits:
        raise IncompatibleStateError(
            f"{where}: the model cannot take the checkpoint's vocabulary; nothing was assigned", misfits,
            hint="build those layers as the checkpoint's (class, output_mode, max_tokens), or pass no model= "
                 "(the model is then rebuilt from the checkpoint)")
    return plan


def without_lookup_weights(state: TrainingState, model: Any, where: str) -> TrainingState:
    """``state`` without the weights tf-keras keeps under a lookup layer (tf_idf weights, what
    ``adapt`` accumulates: a SavedModel or TF-format file holds them); the layer's config carries
    its vocabulary and idf weights, and the live walk leaves such weights out likewise."""
    paths = {path for path, entry in config_entries(state.model_config) if entry.get("class_name") in LOOKUP_CLASSES}
    paths |= {path for path, layer in live_layers(model) if type(layer).__name__ in LOOKUP_CLASSES}
    dropped = [name for name in state.weights if any(name.startswith(path + "/") for path in paths)]
    if not dropped:
        return state
    log.info("%s: lookup layers' own weights left out (their config carries the vocabulary): %s", where,
             ", ".join(dropped))
    return state.replace(weights={n: v for n, v in state.weights.items() if n not in dropped})


def set_vocabularies(model: Any, plan: Plan, where: str) -> None:
    """Set the planned vocabularies with the layer's own ``set_vocabulary``."""
    from ckptcompat.runtime._walk import forget_traced

    for layer, vocabulary, idf in plan:
        try:
            _set(layer, vocabulary, idf)
        except Exception as exc:  # noqa: BLE001 -- Keras's own refusal, reported typed
            raise IncompatibleStateError(
                f"{where}: {layer.name}: cannot take the checkpoint's vocabulary of {len(vocabulary)} tokens: {exc}",
                hint="build the layer with the same max_tokens/output_mode as the checkpoint's, or pass no model= "
                     "(the model is then rebuilt from the checkpoint)") from exc
        log.info("%s: %s: the checkpoint's adapted vocabulary of %d tokens set", where, layer.name, len(vocabulary))
    if plan:
        forget_traced(model)
