"""``keras_zip.peek``: metadata and compile config of a ``.keras`` archive (its weights member
is not opened), or the dataset table of a ``.weights.h5`` file."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ckptcompat.errors import CkptCompatError, CorruptCheckpointError, UnsupportedFormatError
from ckptcompat.formats import Peek
from ckptcompat.formats._h5_peek import dataset_table
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import Producer

__all__ = ["peek_keras"]


def _optimizer_class(config: Any) -> str | None:
    compile_cfg = config.get("compile_config") if isinstance(config, dict) else None
    opt = compile_cfg.get("optimizer") if isinstance(compile_cfg, dict) else None
    raw = opt if isinstance(opt, str) else (opt.get("class_name") if isinstance(opt, dict) else None)
    return canonical_optimizer_class(str(raw)) if raw else None


def _peek_archive(path: Path, name: str) -> Peek:
    from ckptcompat.formats.keras_zip import _framework
    from ckptcompat.formats.keras_zip import _io as kio

    with kio.open_zip(path) as zf:
        members = set(zf.namelist())
        if "model.weights.h5" not in members:
            raise CorruptCheckpointError("the archive has no model.weights.h5", path=path,
                                         hint="the file is incomplete; re-save the model")
        meta = kio.read_json_member(zf, "metadata.json", path) if "metadata.json" in members else {}
        config = kio.read_json_member(zf, "config.json", path) if "config.json" in members else None
    if not isinstance(meta, dict):
        raise CorruptCheckpointError("metadata.json is not a JSON object", path=path)
    version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else None
    producer = Producer(framework=_framework(version), versions={"keras": version} if version else {},
                        format=name, path=str(path))
    return Peek(format=name, path=path, kind="model", producer=producer,
                optimizer=_optimizer_class(config))


def _peek_weights(path: Path, name: str) -> Peek:
    from ckptcompat.formats.keras_zip import _io as kio

    h5 = kio.open_h5_path(path)
    try:
        if "model_weights" in h5 or "layer_names" in h5.attrs:
            raise UnsupportedFormatError("a legacy Keras HDF5 file, not the Keras v3 layout", path=path,
                                         hint="read it with format='keras_h5'")
        return Peek(format=name, path=path, kind="weights", producer=Producer(format=name, path=str(path)),
                    variables=dataset_table(h5))
    finally:
        h5.close()


def peek_keras(path: Path, name: str) -> Peek:
    """Cheap metadata of the ``.keras`` / ``.weights.h5`` at ``path``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head:
            raise CorruptCheckpointError("the file is empty (0 bytes)", path=path,
                                         hint="the save was interrupted; use an older checkpoint")
        return _peek_archive(path, name) if head.startswith(b"PK") else _peek_weights(path, name)
    except CkptCompatError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptCheckpointError(f"cannot read the file: {exc}", path=path) from exc
