"""TensorFlow tensor bundles: TF1 Saver (name-based) and TF2 object-based checkpoints.

Reading is pure Python + numpy (no TensorFlow): the ``.index`` table, the bundle entries,
the data shards (CRC-32C verified) and, for object-based checkpoints, the
``_CHECKPOINTABLE_OBJECT_GRAPH``. Writing produces a TF1-style name-based V2 bundle
(``prefix.index``, ``prefix.data-00000-of-00001`` and a ``checkpoint`` state file with a
relative path) that ``tf.compat.v1.train.Saver.restore`` and ``tf.train.load_checkpoint`` accept.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._arrays import same_values
from ckptcompat._atomic import atomic_replace, fsync_dir, fsync_file, scratch_dir
from ckptcompat.errors import CkptCompatError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats import Peek, WrittenFiles
from ckptcompat.formats import _protowire as pw
from ckptcompat.formats.tf_bundle._io import STATE_FILE, Bundle, open_bundle, resolve_prefix, write_bundle
from ckptcompat.formats.tf_bundle._sstable import FOOTER_SIZE, MAGIC
from ckptcompat.formats.tf_bundle._tf1_names import name_based_tensors, state_from_name_based
from ckptcompat.formats.tf_bundle._tf2_objects import GRAPH_KEY, state_from_object_graph
from ckptcompat.state import TrainingState

__all__ = ["NAME", "name", "sniff", "peek", "read", "read_tensors", "write", "files"]

log = logging.getLogger(__name__)

NAME = "tf_bundle"
name = NAME  # the Format protocol's attribute


def _has_table_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < FOOTER_SIZE:
                return False
            fh.seek(-8, os.SEEK_END)
            return int.from_bytes(fh.read(8), "little") == MAGIC
    except OSError:
        return False


def sniff(path: str | os.PathLike[str]) -> bool:
    """True for a bundle prefix, a ``*.index`` file, or a folder with ``checkpoint`` / one ``*.index``."""
    try:
        p = Path(path)
        if Path(f"{p}.index").is_file():
            return True
        if p.is_file():
            if p.name.endswith(".index"):
                return True
            if p.name == STATE_FILE:
                return True
            return p.suffix == ".ckpt" and _has_table_magic(p)  # V1 single-file checkpoint
        if p.is_dir():
            return (p / STATE_FILE).is_file() or len(list(p.glob("*.index"))) == 1
    except OSError:
        return False
    return False


def _read_v1(path: Path) -> dict[str, np.ndarray]:
    """V1 single-file checkpoints (TF <= 0.11) need TensorFlow's reader."""
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:
        raise UnsupportedFormatError(
            "this is a V1 single-file TensorFlow checkpoint (TF <= 0.11)", path=path,
            hint="install tensorflow to read it (pip install 'ckptcompat[tf]'), then re-save it") from exc
    try:
        reader = tf.train.load_checkpoint(str(path))
        return {k: np.asarray(reader.get_tensor(k)) for k in sorted(reader.get_variable_to_shape_map())}
    except Exception as exc:  # TF raises its own error types
        raise CorruptCheckpointError(f"TensorFlow could not read this V1 checkpoint: {exc}", path=path) from exc


def read_tensors(path: str | os.PathLike[str]) -> tuple[Bundle | None, dict[str, np.ndarray]]:
    """Every readable tensor of the bundle at ``path`` by key (variant/resource tensors skipped)."""
    p = Path(path)
    if p.is_dir() and (p / STATE_FILE).is_file():
        state = p / STATE_FILE
        if state.stat().st_size == 0:
            raise CorruptCheckpointError("the checkpoint state file is empty", path=state,
                                         hint="pass the bundle prefix explicitly")
    prefix = resolve_prefix(p)
    if not Path(f"{prefix}.index").is_file():
        if _has_table_magic(prefix):
            return None, _read_v1(prefix)
        raise UnsupportedFormatError("not a TensorFlow bundle (no .index next to it)", path=prefix)
    bundle = open_bundle(prefix)
    tensors: dict[str, np.ndarray] = {}
    for key in bundle.keys():
        if key.startswith("\x00"):
            continue  # slice keys of partitioned variables; the full entry raises when read
        if not bundle.is_numeric_or_string(key):
            log.info("%s: skipping %s tensor %r", prefix, bundle.dtype_name(key), key)
            continue
        tensors[key] = bundle.read(key)
    return bundle, tensors


def read(path: str | os.PathLike[str], **options: Any) -> TrainingState:
    """Read a TF1 or TF2 bundle into a :class:`TrainingState` (pure Python; no TensorFlow)."""
    p = Path(path)
    try:
        bundle, tensors = read_tensors(p)
        prefix = bundle.prefix if bundle is not None else p
        graph = tensors.pop(GRAPH_KEY, None)
        if graph is not None:
            raw = graph.reshape(-1)[0] if graph.size == 1 else None
            if not isinstance(raw, bytes):
                raise CorruptCheckpointError("object graph tensor is not a scalar string", path=prefix)
            return state_from_object_graph(tensors, raw, prefix, NAME)
        return state_from_name_based(tensors, prefix)
    except CkptCompatError:
        raise
    except (ValueError, KeyError, IndexError, OSError, UnicodeError) as exc:
        raise CorruptCheckpointError(f"cannot read the bundle: {type(exc).__name__}: {exc}", path=p) from exc


def write(path: str | os.PathLike[str], state: TrainingState, **options: Any) -> WrittenFiles:
    """Write ``state`` as a TF1 Saver bundle at prefix ``path`` (a folder gets ``model.ckpt``).

    Files are written into a temporary folder next to the target, fsync'ed and renamed into
    place (data, then index, then the ``checkpoint`` state file); the result is read back
    and compared bitwise. Returns ``[index, data shard, checkpoint state file]``.
    """
    p = Path(path)
    prefix = p / "model.ckpt" if p.is_dir() else p
    folder = prefix.parent
    tensors = name_based_tensors(state)  # a state that cannot be written: refused before any folder
    folder.mkdir(parents=True, exist_ok=True)
    with scratch_dir(prefix) as tmp:
        written = write_bundle(tmp / prefix.name, tensors)
        old = []
        if (folder / STATE_FILE).is_file():
            fields = pw.parse_checkpoint_state((folder / STATE_FILE).read_text("utf-8", "replace"))
            old = [x for x in fields.get("all_model_checkpoint_paths", [])
                   if x != prefix.name and Path(f"{folder / Path(x).name}.index").is_file()]
        state_text = pw.format_checkpoint_state(prefix.name, [Path(x).name for x in old] + [prefix.name])
        (tmp / STATE_FILE).write_text(state_text, encoding="utf-8")
        for f in [*written, tmp / STATE_FILE]:
            fsync_file(f)
        placed = WrittenFiles(folder / f.name for f in [*written, tmp / STATE_FILE])
        for f in [written[1], written[0], tmp / STATE_FILE]:  # data, then index, then state
            atomic_replace(f, folder / f.name, durable=False)
        fsync_dir(folder)
    _verify(prefix, tensors)
    return placed


def peek(path: str | os.PathLike[str]) -> Peek:
    """Kind, variables and step counter from the ``.index`` (no tensor data); shard damage as
    ``problem``."""
    from ckptcompat.formats.tf_bundle._peek import peek_bundle

    return peek_bundle(Path(path), NAME)


def files(path: str | os.PathLike[str]) -> list[Path]:
    """``.index``, data shards, ``.meta`` and (when it lists this bundle) the ``checkpoint`` state
    file of the bundle at ``path`` (a prefix, one of its files, or a folder); ``[]`` when none."""
    from ckptcompat.formats.tf_bundle._peek import bundle_files

    return bundle_files(Path(path))


def _verify(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    _, back = read_tensors(prefix)
    bad = [k for k, v in tensors.items()
           if k not in back or back[k].dtype != v.dtype or back[k].shape != v.shape
           or (v.dtype != object and not same_values(back[k], v))]
    if bad or set(back) != set(tensors):
        raise CorruptCheckpointError(f"written bundle does not read back identically: {sorted(bad)}",
                                     path=prefix)
