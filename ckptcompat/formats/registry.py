"""The table of on-disk formats and format detection by markers.

Every format module exposes the same interface:

* ``NAME``: the registry name,
* ``sniff(path) -> bool``: cheap, marker-based; errs towards ``False`` (a ``True`` means the
  markers of that format are present, not that the file is intact),
* ``read(path) -> TrainingState``: raises :mod:`ckptcompat.errors` types on bad input,
* ``write(path, state, **options) -> None``: writes atomically and verifies by reading back.

Detection tries the formats in table order; markers are disjoint, so the order only
matters for speed.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ckptcompat.errors import CheckpointNotFoundError, UnsupportedFormatError
from ckptcompat.state import TrainingState

__all__ = ["FormatInfo", "FORMATS", "detect", "format_module", "read", "write"]


@dataclass(frozen=True)
class FormatInfo:
    """One row of the format table."""

    name: str
    module: str
    description: str
    suffixes: tuple[str, ...]


FORMATS: tuple[FormatInfo, ...] = (
    FormatInfo("state_json", "ckptcompat.formats.sidecar",
               "ckptcompat's own state.json (training progress, callbacks, RNG)", (".json",)),
    FormatInfo("keras_zip", "ckptcompat.formats.keras_zip",
               "Keras 3 .keras zip archive or .weights.h5 file", (".keras", ".weights.h5")),
    FormatInfo("keras_h5", "ckptcompat.formats.keras_h5",
               "legacy Keras HDF5, full model or weights only, any Keras generation", (".h5", ".hdf5")),
    FormatInfo("saved_model", "ckptcompat.formats.saved_model",
               "TF2 SavedModel folder (saved_model.pb + variables/; TF1 SavedModelBuilder too)", ()),
    FormatInfo("tf_bundle", "ckptcompat.formats.tf_bundle",
               "TensorFlow tensor bundle: TF1 Saver (name-based) or TF2 object-based checkpoint",
               (".index", ".ckpt")),
)


def format_module(name: str) -> ModuleType:
    """Import and return the module of format ``name``."""
    for info in FORMATS:
        if info.name == name:
            return importlib.import_module(info.module)
    known = ", ".join(info.name for info in FORMATS)
    raise UnsupportedFormatError(f"unknown format {name!r}", hint=f"use one of: {known}")


def detect(path: str | os.PathLike[str]) -> str:
    """Return the registry name of the format at ``path`` (a file, a directory or a bundle prefix)."""
    p = Path(path)
    if not p.exists() and not Path(str(p) + ".index").exists():
        raise CheckpointNotFoundError("no such file, directory or checkpoint prefix", path=p,
                                      hint="check the path; for a TF bundle give the prefix "
                                           "(e.g. model.ckpt) or the folder holding 'checkpoint'")
    for info in FORMATS:
        if format_module(info.name).sniff(p):
            return info.name
    raise UnsupportedFormatError(
        "not a checkpoint format ckptcompat knows",
        path=p,
        hint="supported: " + "; ".join(f"{i.description}" for i in FORMATS))


def read(path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> TrainingState:
    """Read the checkpoint at ``path`` into a :class:`TrainingState` (format detected if not given)."""
    name = format or detect(path)
    return format_module(name).read(Path(path), **options)


def write(path: str | os.PathLike[str], state: TrainingState, *, format: str, **options: Any) -> Any:
    """Write ``state`` to ``path`` in ``format``; the writer verifies by reading back.

    Returns what the format's writer returns: ``(size, sha256)`` of the file when asked
    with ``checksum=True`` (keras_h5), else None."""
    return format_module(format).write(Path(path), state, **options)
