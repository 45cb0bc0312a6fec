"""The architecture a weights-only ``.h5`` left beside it: a ``model.to_json()`` document.

Keras 1 and 2 scripts often kept a model as two files: ``open("model.json", "w").write(model.to_json())``
and ``model.save_weights("model.h5")``. The ``.h5`` records no config; it is taken from such a
document in the same folder (:func:`document_names`: the file's name up to its first dot + ``.json``,
or ``model.json``), when exactly one of them names every layer of the file that holds weights (the
same model wrote both); a document that does not is logged and left alone, as are two that both
fit. A Keras 1 file is read again, its weights converted through the document's classes, and so is
a file whose document nests models, which places their weights. Nothing is guessed silently: the
document used is logged.
``resume``, ``inspect`` and ``migrate`` all read a weights-only ``.h5`` through this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptcompat.errors import CkptCompatError
from ckptcompat.formats.keras_h5._layer_configs import layer_configs
from ckptcompat.state import TrainingState

__all__ = ["with_architecture", "document_names"]

log = logging.getLogger(__name__)

_MODEL_CLASSES = ("Sequential", "Model", "Functional")
_MAX_BYTES = 16 << 20


def _document(path: Path) -> dict[str, Any] | None:
    """The model document in ``path`` (also double-encoded, as scripts that ``json.dump`` the
    ``to_json()`` string wrote it), or None."""
    from ckptcompat import _bounded

    try:
        data = _bounded.load_file(path, what=f"{path.name} (a model architecture?)", max_bytes=_MAX_BYTES)
        if isinstance(data, str):
            data = _bounded.loads(data, path=path, what=f"the JSON string in {path.name}", max_bytes=_MAX_BYTES)
    except (OSError, CkptCompatError) as exc:
        log.debug("%s: not a model architecture (%s)", path, exc)
        return None
    if isinstance(data, dict) and data.get("class_name") in _MODEL_CLASSES and _layer_names(data):
        return data
    return None


def _layer_names(document: Mapping[str, Any]) -> set[str]:
    """The names of a model document's top-level layers."""
    return set(layer_configs(document))


def document_names(target: Path) -> list[str]:
    """The names a document beside ``target`` is looked for under: ``<name up to its first dot>.json``
    and ``model.json`` (the names scripts gave ``to_json()``)."""
    return list(dict.fromkeys([f"{target.name.split('.')[0]}.json", "model.json"]))


def _candidates(target: Path) -> list[Path]:
    """The documents beside ``target`` that exist, under :func:`document_names`."""
    return [target.parent / name for name in document_names(target) if _is_file(target.parent / name)]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a folder not readable: no document
        return False


def _pick(target: Path, holders: set[str]) -> tuple[Path, dict[str, Any]] | None:
    """The one document beside ``target`` that names every layer holding weights."""
    fitting, other = [], []
    for path in _candidates(target):
        document = _document(path)
        if document is None:
            continue
        (fitting if holders <= _layer_names(document) else other).append((path, document))
    for path, document in other:
        log.warning("%s: %s is a model architecture whose layers are not this file's (%s missing); not used",
                    target, path.name, ", ".join(sorted(holders - _layer_names(document))[:5]))
    if len(fitting) > 1:
        log.warning("%s: %s all describe this file's layers; none used (pass model= to say which)", target,
                    ", ".join(p.name for p, _ in fitting))
        return None
    return fitting[0] if fitting else None


def with_architecture(state: TrainingState, target: Path) -> tuple[TrainingState, Path | None]:
    """(``state`` with the model config of the ``model.to_json()`` document beside a weights-only
    legacy ``.h5``, read again through it where Keras 1 wrote the file or it nests models; that
    document), or (``state``, None) where none fits."""
    if state.model_config is not None or state.producer.format != "keras_h5" or not state.weights \
            or not _is_file(target):
        return state, None
    found = _pick(target, {name.split("/", 1)[0] for name in state.weights})
    if found is None:
        return state, None
    path, document = found
    config = {"class_name": document["class_name"], "config": document["config"]}
    from ckptcompat.formats import keras_h5

    keras1 = keras_h5.holds_keras1_names(state)
    if keras1 or any(nested for _, _, nested in layer_configs(config).values()):
        try:  # read again through it: a Keras 1 file converts by its classes, a nested model's weights get their place
            again = keras_h5.read(target, config=config, include_optimizer=state.optimizer is not None)
        except CkptCompatError as exc:
            log.warning("%s: not readable through %s (%s); not used", target, path.name, exc)
            return state, None
        if keras1 and keras_h5.holds_keras1_names(again):  # classes it cannot convert by (a Keras 2 spelling)
            log.warning("%s: %s does not convert its Keras 1 weights; not used", target, path.name)
            return state, None
        state = again
    log.info("%s: the model architecture from %s (model.to_json()): the weights file records none", target,
             path.name)
    return state.replace(model_config=config), path
