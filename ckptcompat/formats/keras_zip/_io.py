"""Safe low-level access to ``.keras`` zips and Keras v3 weight HDF5 files.

Zip members are checked from the central directory *before* anything is decompressed
(names, sizes, compression ratios), are read into memory (never extracted to disk), and
HDF5 datasets are checked for links, external storage and absurd shapes before reading.
Only zipfile, h5py, numpy and json are used; nothing is ever unpickled or executed.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat import _bounded
from ckptcompat.errors import CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError
from ckptcompat.formats._h5heap import open_checked
from ckptcompat.formats._h5safe import hard_child, read_numeric

__all__ = ["MAX_MEMBER_BYTES", "MAX_RATIO", "open_zip", "read_member", "read_json_member",
           "open_h5_bytes", "open_weights_member", "open_h5_path", "group_label", "group_vars", "safe_dataset",
           "HDF5_SIGNATURE"]

MAX_MEMBER_BYTES = 16 << 30      # 16 GiB declared size of one zip member
MAX_RATIO = 200                  # compression ratio above which a member is a bomb ...
RATIO_FLOOR = 16 << 20           # ... when it also expands to more than 16 MiB
MAX_JSON_BYTES = 256 << 20
MAX_MEMBERS = 10_000
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HINT = "the file is damaged or not a Keras archive; restore it from a backup or re-save it"


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip and validate its directory (names, sizes, ratios)."""
    try:
        zf = zipfile.ZipFile(path, "r")
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, KeyError) as exc:
        raise CorruptCheckpointError(f"cannot open the zip archive: {exc}", path=path, hint=_HINT) from exc
    if len(infos) > MAX_MEMBERS:
        zf.close()
        raise UnsafeCheckpointError(f"zip archive has {len(infos)} members", path=path,
                                    hint="a Keras archive has 3; refusing to process it")
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\0" in name:
            zf.close()
            raise UnsafeCheckpointError(f"zip member name {name!r} escapes the archive", path=path,
                                        hint="a crafted archive; do not extract it")
        if stat.S_ISLNK(info.external_attr >> 16):
            zf.close()
            raise UnsafeCheckpointError(f"zip member {name!r} is a symbolic link", path=path,
                                        hint="a Keras archive holds plain files only; a crafted archive")
        if name in seen:
            zf.close()
            raise UnsafeCheckpointError(f"zip member name {name!r} occurs twice", path=path,
                                        hint="which copy a reader takes differs between tools; a "
                                             "crafted archive")
        seen.add(name)
        if info.file_size > MAX_MEMBER_BYTES:
            zf.close()
            raise UnsafeCheckpointError(
                f"zip member {name!r} declares {info.file_size} bytes uncompressed", path=path,
                hint=f"more than the {MAX_MEMBER_BYTES} byte limit: a zip bomb or a damaged directory")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            zf.close()
            raise UnsafeCheckpointError(
                f"zip member {name!r} expands {info.compress_size} -> {info.file_size} bytes", path=path,
                hint="an absurd compression ratio (zip bomb); refusing to decompress it")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, path: Path, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """Read one member fully into memory, never more than it declared."""
    try:
        info = zf.getinfo(name)
        if info.file_size > limit:
            raise UnsafeCheckpointError(f"zip member {name!r} is {info.file_size} bytes (limit {limit})",
                                        path=path, hint="refusing to load it into memory")
        with zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except CorruptCheckpointError:
        raise
    except UnsafeCheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, NotImplementedError,
            RuntimeError) as exc:
        raise CorruptCheckpointError(f"cannot read zip member {name!r}: {exc}", path=path, hint=_HINT) from exc
    if len(data) != info.file_size:
        raise CorruptCheckpointError(f"zip member {name!r} has {len(data)} bytes, directory says "
                                     f"{info.file_size}", path=path, hint=_HINT)
    return data


def read_json_member(zf: zipfile.ZipFile, name: str, path: Path) -> Any:
    """Parse a JSON member (``config.json``, ``metadata.json``) as plain data."""
    raw = read_member(zf, name, path, MAX_JSON_BYTES)
    return _bounded.loads(raw, path=path, what=name, max_bytes=MAX_JSON_BYTES)


def open_h5_bytes(data: bytes, path: Path, what: str = "model.weights.h5") -> Any:
    """Open HDF5 bytes held in memory."""
    if not data.startswith(HDF5_SIGNATURE):
        raise CorruptCheckpointError(f"{what} is not an HDF5 file", path=path, hint=_HINT)
    try:
        return open_checked(io.BytesIO(data), path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"cannot open {what}: {exc}", path=path, hint=_HINT) from exc


def open_weights_member(path: Path, info: zipfile.ZipInfo) -> tuple[Any, Any]:
    """The weights HDF5 of the archive at ``path`` and the member window to close after it.

    A STORED member is opened in place (:mod:`._member`): in a headers-only read only the
    blocks h5py asks for are read; otherwise its CRC-32 is checked by one streaming pass first,
    as a whole-member read would. A compressed member is read into memory (window ``None``)."""
    from ckptcompat.formats._headers import headers_active
    from ckptcompat.formats.keras_zip._member import check_crc, open_stored

    if info.file_size > MAX_MEMBER_BYTES:
        raise UnsafeCheckpointError(f"zip member {info.filename!r} is {info.file_size} bytes",
                                    path=path, hint="refusing to open it")
    window = open_stored(path, info)
    if window is None:
        with zipfile.ZipFile(path) as zf:
            return open_h5_bytes(read_member(zf, info.filename, path), path), None
    try:
        if not headers_active():
            check_crc(window, info, path)
        if window.read(8) != HDF5_SIGNATURE:
            raise CorruptCheckpointError(f"{info.filename} is not an HDF5 file", path=path, hint=_HINT)
        window.seek(0)
        return open_checked(window, path), window
    except (OSError, ValueError, RuntimeError) as exc:
        window.close()
        raise CorruptCheckpointError(f"cannot open {info.filename}: {exc}", path=path, hint=_HINT) from exc
    except BaseException:
        window.close()
        raise


def open_h5_path(path: Path) -> Any:
    """Open an HDF5 file on disk read-only."""

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read the file: {exc}", path=path, hint=_HINT) from exc
    if head != HDF5_SIGNATURE:
        raise UnsupportedFormatError("not a zip archive nor an HDF5 file", path=path,
                                     hint="expected a Keras .keras archive or a .weights.h5 file")
    try:
        return open_checked(path, path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"cannot open the HDF5 file: {exc}", path=path, hint=_HINT) from exc


def safe_dataset(group: Any, key: str, path: Path, where: str) -> np.ndarray:
    """Read ``group[key]`` after refusing links, external/virtual storage, non-numeric dtypes
    and shape bombs (see :mod:`ckptcompat.formats._h5safe`)."""
    return read_numeric(group, key, path, where, hint=_HINT)


def group_label(h5: Any, group: str) -> str | None:
    """The layer name Keras 3.8+ writes on a ``vars`` group (its ``name`` attribute); None before."""
    label = h5[group].attrs.get("name") if group in h5 else None
    if isinstance(label, bytes):
        label = label.decode("utf-8", "replace")
    return label if isinstance(label, str) else None


def group_vars(h5: Any, group_path: str, path: Path,
               named: dict[str, np.ndarray] | None = None) -> list[np.ndarray] | None:
    """The datasets ``<group_path>/0``, ``/1``, ... in index order; ``None`` if the group is absent.

    ``named``: a layer's own ``save_own_variables`` may store by name instead (a ``tf_idf``
    lookup's ``idf_weights``): such datasets go into ``named`` (the list is then empty)."""
    import h5py

    try:
        if group_path not in h5:
            return None
        group = hard_child(h5, group_path, path, group_path, _HINT)
        if not isinstance(group, h5py.Group):
            raise CorruptCheckpointError(f"{group_path} is not a group", path=path, hint=_HINT)
        keys = list(group.keys())
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CorruptCheckpointError(f"cannot list {group_path}: {exc}", path=path, hint=_HINT) from exc
    if named is not None and keys and not any(k.isdigit() for k in keys):
        named.update((k, safe_dataset(group, k, path, f"{group_path}/{k}")) for k in sorted(keys))
        return []
    if sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != [str(i) for i in range(len(keys))]:
        raise CorruptCheckpointError(f"{group_path} holds {sorted(keys)}, expected 0..{len(keys) - 1}",
                                     path=path, hint=_HINT)
    return [safe_dataset(group, str(i), path, f"{group_path}/{i}") for i in range(len(keys))]
