"""TF2 SavedModel directories (``model.save("dir")``, ``ModelCheckpoint("model-{epoch:02d}")``).

A SavedModel is a DIRECTORY: ``saved_model.pb`` (meta graphs + object graph),
``keras_metadata.pb`` (TF 2.5+: model and training config), ``variables/variables.index`` +
``variables.data-*`` (an object-based tensor bundle: weights, optimizer slots, iterations,
learning rate) and ``assets/``. Everything is read with the pure-Python protobuf and bundle
readers, without TensorFlow. TF1 ``SavedModelBuilder`` folders (name-based bundle) are read
too, as name-based variables. Writing SavedModels is not supported (migrate to ``.keras``
or ``.h5`` instead).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ckptcompat.errors import (CheckpointNotFoundError, CkptCompatError, CorruptCheckpointError,
                               UnsupportedFormatError)
from ckptcompat.formats import Peek, VariableMeta
from ckptcompat.state import TrainingState

__all__ = ["NAME", "SAVED_MODEL_PB", "KERAS_METADATA_PB", "sniff", "read", "files", "folder_of", "write"]

log = logging.getLogger(__name__)

NAME = "saved_model"
name = NAME  # the Format protocol's attribute
SAVED_MODEL_PB = "saved_model.pb"
KERAS_METADATA_PB = "keras_metadata.pb"
_HINT = "the SavedModel folder is incomplete or damaged; use an earlier checkpoint"


def folder_of(path: str | os.PathLike[str]) -> Path | None:
    """The SavedModel folder for ``path`` (the folder itself or its ``saved_model.pb``), else None."""
    p = Path(path)
    if p.is_dir() and (p / SAVED_MODEL_PB).is_file():
        return p
    if p.name == SAVED_MODEL_PB and p.is_file():
        return p.parent
    return None


def sniff(path: str | os.PathLike[str]) -> bool:
    """True for a folder holding ``saved_model.pb`` (or that file itself); never raises."""
    try:
        return folder_of(path) is not None
    except OSError:
        return False


def files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file of the SavedModel at ``path``, sorted (pb files, variables, assets, fingerprint);
    ``[]`` when there is none."""
    folder = folder_of(path)
    if folder is None:
        return []
    return sorted(f for f in folder.rglob("*") if f.is_file())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read {path.name}: {exc}", path=path, hint=_HINT) from exc


def read(path: str | os.PathLike[str], **options: Any) -> TrainingState:
    """Read a SavedModel folder into a :class:`TrainingState` (pure Python; no TensorFlow)."""
    from ckptcompat.formats.saved_model._keras import keras_info
    from ckptcompat.formats.saved_model._proto import decode_keras_metadata, decode_saved_model
    from ckptcompat.formats.saved_model._state import VARIABLES_PREFIX, build_state

    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError("no such SavedModel folder", path=p, hint="check the path")
    folder = folder_of(p)
    if folder is None:
        hint = ("a text saved_model.pbtxt is not supported; re-save it as binary"
                if (p / "saved_model.pbtxt").is_file() else "give the folder that holds saved_model.pb")
        raise UnsupportedFormatError("not a SavedModel folder (no saved_model.pb)", path=p, hint=hint)
    if not Path(f"{folder.joinpath(*VARIABLES_PREFIX)}.index").is_file():
        raise CorruptCheckpointError("the SavedModel has no variables/variables.index", path=folder,
                                     hint=_HINT + " (a SavedModel of a model without variables holds "
                                                  "no training state)")
    try:
        sm = decode_saved_model(_read_bytes(folder / SAVED_MODEL_PB))
        if not sm.meta_graphs:
            raise CorruptCheckpointError("saved_model.pb holds no meta graph", path=folder, hint=_HINT)
        mg = sm.meta_graphs[0]
        meta_file = folder / KERAS_METADATA_PB
        nodes = decode_keras_metadata(_read_bytes(meta_file)) if meta_file.is_file() else mg.keras_nodes
        info = keras_info(nodes, folder)
        if info is None:
            log.info("%s: no Keras metadata (tf.saved_model.save of a module or TF1 SavedModel); "
                     "weights by object path, resume needs model=", folder)
        return build_state(folder, mg.tensorflow_version, info, NAME)
    except CkptCompatError:
        raise
    except (ValueError, KeyError, IndexError, OSError, UnicodeError) as exc:
        raise CorruptCheckpointError(f"cannot read the SavedModel: {type(exc).__name__}: {exc}",
                                     path=folder, hint=_HINT) from exc


def write(path: str | os.PathLike[str], state: TrainingState, **options: Any) -> None:
    """Not supported: SavedModels need TensorFlow's graph tracing to write."""
    raise UnsupportedFormatError("writing a SavedModel is not supported", path=path,
                                 hint="migrate to Keras 3 (.keras) or legacy .h5: "
                                      "ckptcompat migrate SRC OUT.keras --to keras3")


def peek(path: str | os.PathLike[str]) -> Peek:
    """Producer, progress and optimizer class/iterations and every variable's shape.

    SavedModels of Keras models are small next to their weights' bundle index; this reads
    the whole state (a metadata-only peek is left to the performance work)."""
    state = read(path)
    opt = state.optimizer
    variables = tuple(VariableMeta(name=k, shape=tuple(v.shape), dtype=str(v.dtype))
                      for k, v in state.weights.items())
    return Peek(format=NAME, path=Path(path), kind="model" if state.model_config else "objects",
                producer=state.producer, epoch=state.progress.epoch, step=state.progress.step,
                global_step=state.progress.global_step,
                optimizer=None if opt is None else opt.class_name,
                iterations=None if opt is None else opt.iterations, variables=variables)
