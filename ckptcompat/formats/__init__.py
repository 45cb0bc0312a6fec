"""On-disk checkpoint formats: the :class:`Format` protocol, the format table and detection.

Every format (``keras_h5``, ``keras_zip``, ``tf_bundle``, ``state_json``) is a module of this
package that satisfies :class:`Format`:

* ``name``: the registry name,
* ``sniff(path) -> bool``: cheap, marker-based; errs towards ``False`` (a ``True`` means the
  markers of that format are present, not that the file is intact),
* ``peek(path) -> Peek``: cheap metadata from headers and attributes (no tensor data where
  the format allows), plus a damage ``problem`` found on the way,
* ``read(path) -> TrainingState``: raises :mod:`ckptcompat.errors` types on bad input,
* ``write(path, state, **options) -> WrittenFiles``: writes atomically, verifies by reading
  back, returns every file it created or replaced,
* ``files(path) -> list[Path]``: every existing file of the checkpoint at ``path``.

Detection tries the formats in table order; markers are disjoint, so the order only
matters for speed. Nothing here imports a format module (or TF/Keras/h5py) until asked.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, cast

from .._compat import Protocol, runtime_checkable

from ckptcompat.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError

if TYPE_CHECKING:  # pragma: no cover
    from ckptcompat.state import Producer, TrainingState

__all__ = ["Format", "Peek", "VariableMeta", "WrittenFiles", "FormatInfo", "FORMATS", "names",
           "get", "detect", "format_module", "read", "write", "files", "peek"]


@dataclass(frozen=True)
class VariableMeta:
    """One stored tensor as its header describes it: the name *as stored*, shape and dtype."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str | None


@dataclass(frozen=True)
class Peek:
    """What :meth:`Format.peek` learns cheaply (``None``: not known without a full read).

    ``kind`` refines the format (``"model"``/``"weights"`` for Keras files,
    ``"name_based"``/``"object_based"`` for TF bundles). ``variables`` lists the stored
    tensors when headers give them (``None`` when they do not). ``problem`` is damage the
    cheap checks found (a missing or short data shard, ...); ``None`` does not promise that
    a full read succeeds. ``listed`` is the checkpoint's position in its folder's own list of
    checkpoints (TF's ``checkpoint`` state file; newest highest), when the format keeps one.
    """

    format: str
    path: Path
    kind: str | None = None
    producer: Producer | None = None
    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None
    optimizer: str | None = None
    iterations: int | None = None
    variables: tuple[VariableMeta, ...] | None = None
    problem: str | None = None
    listed: int | None = None


class WrittenFiles(List[Path]):
    """The files a :meth:`Format.write` created or replaced (a ``list[Path]``).

    ``digests`` maps some of them to ``(size, sha256)`` when the writer hashed them while
    writing (``checksum=True``), so a caller need not read them again.
    """

    def __init__(self, paths: Iterable[Path] = (),
                 digests: Mapping[Path, tuple[int, str]] | None = None) -> None:
        super().__init__(Path(p) for p in paths)
        self.digests: dict[Path, tuple[int, str]] = dict(digests or {})


@runtime_checkable
class Format(Protocol):
    """What every on-disk format offers (implemented by the format modules themselves)."""

    name: str

    def sniff(self, path: str | os.PathLike[str]) -> bool:
        """True when the markers of this format are present at ``path``; never raises."""
        ...

    def peek(self, path: str | os.PathLike[str]) -> Peek:
        """Cheap metadata of the checkpoint at ``path`` (typed errors when unreadable)."""
        ...

    def read(self, path: str | os.PathLike[str], **options: Any) -> TrainingState:
        """The full :class:`~ckptcompat.state.TrainingState` of the checkpoint at ``path``."""
        ...

    def write(self, path: str | os.PathLike[str], state: TrainingState, **options: Any) -> WrittenFiles:
        """Write ``state`` at ``path``; return every file created or replaced."""
        ...

    def files(self, path: str | os.PathLike[str]) -> list[Path]:
        """Every existing file of the checkpoint at ``path`` (``[]`` when there is none)."""
        ...


@dataclass(frozen=True)
class FormatInfo:
    """One row of the format table."""

    name: str
    module: str
    description: str
    suffixes: tuple[str, ...] = field(default=())


FORMATS: tuple[FormatInfo, ...] = (
    FormatInfo("state_json", "ckptcompat.formats.sidecar",
               "ckptcompat's own state.json (training progress, callbacks, RNG)", (".json",)),
    FormatInfo("keras_zip", "ckptcompat.formats.keras_zip",
               "Keras 3 .keras zip archive or .weights.h5 file", (".keras", ".weights.h5")),
    FormatInfo("keras_h5", "ckptcompat.formats.keras_h5",
               "legacy Keras HDF5, full model or weights only, any Keras generation", (".h5", ".hdf5")),
    FormatInfo("saved_model", "ckptcompat.formats.saved_model",
               "TF2 SavedModel directory (model.save(dir), ModelCheckpoint without .h5)", ()),
    FormatInfo("tf_bundle", "ckptcompat.formats.tf_bundle",
               "TensorFlow tensor bundle: TF1 Saver (name-based) or TF2 object-based checkpoint",
               (".index", ".ckpt")),
)


def names() -> tuple[str, ...]:
    """The registry names, in detection order."""
    return tuple(info.name for info in FORMATS)


def get(name: str) -> Format:
    """The :class:`Format` registered as ``name`` (imported on first use)."""
    for info in FORMATS:
        if info.name == name:
            return cast(Format, importlib.import_module(info.module))
    raise UnsupportedFormatError(f"unknown format {name!r}", hint=f"use one of: {', '.join(names())}")


#: the old spelling of :func:`get` (returns the format's module)
format_module = get


def detect(path: str | os.PathLike[str]) -> str:
    """Return the registry name of the format at ``path`` (a file, a directory or a bundle prefix)."""
    p = Path(path)
    if not p.exists() and not Path(str(p) + ".index").exists():
        raise CheckpointNotFoundError("no such file, directory or checkpoint prefix", path=p,
                                      hint="check the path; for a TF bundle give the prefix "
                                           "(e.g. model.ckpt) or the folder holding 'checkpoint'")
    for info in FORMATS:
        if get(info.name).sniff(p):
            return info.name
    from ckptcompat.formats._damage import damaged_container

    damage = damaged_container(p)
    if damage:
        raise CorruptCheckpointError(damage, path=p, hint="the save was cut short or the copy damaged: resume from "
                                                          "an earlier checkpoint, or copy the file again")
    raise UnsupportedFormatError(
        "not a checkpoint format ckptcompat knows",
        path=p,
        hint="supported: " + "; ".join(f"{i.description}" for i in FORMATS))


def read(path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> TrainingState:
    """Read the checkpoint at ``path`` into a :class:`TrainingState` (format detected if not given).

    ``path`` may be an fsspec URL (``pip install 'ckptcompat[remote]'``): it is read from a
    local copy (:func:`ckptcompat.store.local_view.localize`)."""
    from ckptcompat._plausible import check_state
    from ckptcompat.store.local_view import localize

    local = localize(path)
    name = format or detect(local)
    return check_state(get(name).read(local, **options), path)


def write(path: str | os.PathLike[str], state: TrainingState, *, format: str,
          **options: Any) -> WrittenFiles:
    """Write ``state`` to ``path`` in ``format``; the writer verifies by reading back.

    Returns the files written (with ``digests`` filled when asked with ``checksum=True`` and
    the writer hashes while writing, as ``keras_h5`` does)."""
    from ckptcompat.store.urls import local_path

    return get(format).write(local_path(path), state, **options)  # a URL: typed error


def peek(path: str | os.PathLike[str], *, format: str | None = None) -> Peek:
    """Cheap metadata of the checkpoint at ``path`` (format detected if not given)."""
    name = format or detect(path)
    return get(name).peek(Path(path))


def files(path: str | os.PathLike[str], *, format: str | None = None) -> list[Path]:
    """Every file of the checkpoint at ``path`` (format detected if not given)."""
    name = format or detect(path)
    return get(name).files(Path(path))
