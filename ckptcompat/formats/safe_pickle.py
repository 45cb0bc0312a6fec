"""A restricted unpickler for legacy sidecar files (``history.pkl``, ``state.pkl``, ...).

Only plain data may come out of a pickle read here: builtin containers, numbers, strings,
bytes, ``None``/``bool``, ``collections.OrderedDict``/``defaultdict`` and numpy arrays,
scalars and dtypes (under both the numpy < 2 ``numpy.core`` and numpy >= 2 ``numpy._core``
module paths). Every other global a pickle names -- ``os.system``, ``builtins.eval``, a
class from sklearn or Keras -- is refused with :class:`UnsafeCheckpointError` *before* it is
looked up, so nothing from the file is ever executed. Damaged pickles raise
:class:`CorruptCheckpointError`; files over ``max_bytes`` are refused unread.
"""

from __future__ import annotations

import collections
import importlib
import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)

__all__ = ["DEFAULT_MAX_BYTES", "ALLOWED_GLOBALS", "safe_load", "safe_loads", "looks_like_pickle"]

log = logging.getLogger(__name__)

#: Sidecars are small; anything bigger is refused unread (pass ``max_bytes`` to change).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
             "str", "bytes", "bytearray", "bool")
_NUMPY_FUNCS = {  # (module as spelled in the pickle, name) -> (numpy submodule, name)
    **{(f"numpy.{core}.multiarray", "_reconstruct"): ("multiarray", "_reconstruct")
       for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): ("multiarray", "scalar") for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): ("numeric", "_frombuffer") for core in ("core", "_core")},
}

#: Every ``module.name`` a pickle may reference.
ALLOWED_GLOBALS: frozenset[str] = frozenset(
    [f"builtins.{n}" for n in _BUILTINS]
    + [f"__builtin__.{n}" for n in _BUILTINS]           # protocol 0-2 pickles from Python 2
    + ["collections.OrderedDict", "collections.defaultdict", "_codecs.encode",
       "numpy.ndarray", "numpy.dtype"]
    + [f"{m}.{n}" for m, n in _NUMPY_FUNCS])


def _numpy_internal(submodule: str, name: str) -> Any:
    """The installed numpy's own ``_reconstruct``/``scalar``/``_frombuffer`` (either layout)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; text codecs only."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return text.encode(encoding, errors)


def _resolve(module: str, name: str) -> Any:
    import numpy as np

    if module in ("builtins", "__builtin__"):
        return getattr(__import__("builtins"), name)
    if module == "collections":
        return getattr(collections, name)
    if module == "_codecs":
        return _latin1_encode
    if (module, name) in _NUMPY_FUNCS:
        return _numpy_internal(*_NUMPY_FUNCS[(module, name)])
    return getattr(np, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, path: str | None) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"the pickle references {qualified!r}; loading it would import or run code from "
                "the file, so it was refused",
                path=self._path,
                hint="only plain data (dicts, lists, numbers, strings, numpy arrays) is read from "
                     "pickles; re-save the sidecar as JSON, or with ckptcompat")
        return _resolve(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("the pickle uses persistent ids; refused", path=self._path,
                                    hint="re-save the sidecar as plain data")


def looks_like_pickle(head: bytes) -> bool:
    """True when ``head`` starts like a pickle of protocol 2-5 (the ``PROTO`` opcode)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def safe_loads(data: bytes, *, path: str | os.PathLike[str] | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Unpickle ``data`` allowing plain data only (see the module docstring)."""
    where = None if path is None else str(path)
    if len(data) > max_bytes:
        raise UnsafeCheckpointError(
            f"pickle of {len(data)} bytes is over the {max_bytes}-byte limit for sidecars; refused",
            path=where, hint="pass a larger max_bytes if this file is trusted and really that big")
    if not data:
        raise CorruptCheckpointError("empty file where a pickle was expected", path=where,
                                     hint="the sidecar was not written completely; use an older one")
    try:
        return _RestrictedUnpickler(io.BytesIO(data), where).load()
    except CkptCompatError:
        raise
    except MemoryError as exc:
        raise CorruptCheckpointError("pickle asks for more memory than is available (absurd sizes)",
                                     path=where, hint="the file is damaged or hostile") from exc
    except RecursionError as exc:
        raise CorruptCheckpointError("pickle nests too deeply", path=where,
                                     hint="the file is damaged or hostile") from exc
    except Exception as exc:  # noqa: BLE001 -- any failure inside pickle means a damaged file
        raise CorruptCheckpointError(
            f"cannot unpickle: {type(exc).__name__}: {exc}", path=where,
            hint="the file is truncated or damaged; use an older copy") from exc


def safe_load(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Read and unpickle the file at ``path`` allowing plain data only."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError("no such file", path=p, hint="check the path") from exc
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot stat: {exc}", path=p, hint="check permissions") from exc
    if p.is_dir():
        raise UnsupportedFormatError("is a directory, not a pickle file", path=p,
                                     hint="give the path of the sidecar file")
    if size > max_bytes:
        raise UnsafeCheckpointError(
            f"pickle of {size} bytes is over the {max_bytes}-byte limit for sidecars; refused",
            path=p, hint="pass a larger max_bytes if this file is trusted and really that big")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CorruptCheckpointError(f"cannot read: {exc}", path=p, hint="check permissions") from exc
    log.debug("restricted unpickling of %s (%d bytes)", p, len(data))
    return safe_loads(data, path=p, max_bytes=max_bytes)

