"""Files that begin like a container ckptcompat reads (HDF5, zip) but cannot be opened as one.

A ``.h5`` or ``.keras`` cut short by a killed save keeps its first bytes: its signature says what
it was meant to be. Such a file is damaged (:class:`~ckptcompat.errors.CorruptCheckpointError`),
not of an unknown format; an intact HDF5 file or zip that holds no checkpoint stays unknown.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

__all__ = ["damaged_container"]

_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"


def damaged_container(path: Path) -> str | None:
    """Why the regular file ``path`` is a damaged HDF5 file or zip archive (or empty), else None."""
    try:
        if not path.is_file():
            return None
        if path.stat().st_size == 0:
            return "empty file (0 bytes): the save was interrupted"
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head == _HDF5:
        return _hdf5_problem(path)
    if head.startswith(_ZIP):
        try:
            with zipfile.ZipFile(path):
                return None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            return f"a zip archive (a .keras file) that cannot be opened, truncated or damaged ({exc})"
    return None


def _hdf5_problem(path: Path) -> str | None:
    from ckptcompat._lazy import require
    from ckptcompat.errors import MissingDependencyError

    try:
        h5py = require("h5py", "read HDF5 files")
    except MissingDependencyError:
        return None
    try:
        h5py.File(path, "r").close()
    except Exception as exc:  # noqa: BLE001 -- HDF5 raises OSError and others for a damaged file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"HDF5 cannot open this HDF5 file ({first[:160]}): truncated, damaged, or locked by a writer"
    return None
