"""A restricted unpickler for legacy sidecar files (``history.pkl``, ``state.pkl``, ...).

Only plain data may come out of a pickle read here: builtin containers, numbers, strings,
bytes, ``None``/``bool``, ``collections.OrderedDict``/``defaultdict`` and numpy arrays,
scalars and dtypes (under both the numpy < 2 ``numpy.core`` and numpy >= 2 ``numpy._core``
module paths). Every other global a pickle names -- ``os.system``, ``builtins.eval``, a
class from sklearn or Keras -- is refused with :class:`UnsafeCheckpointError` *before* it is
looked up, so nothing from the file is ever executed. Damaged pickles raise
:class:`CorruptCheckpointError`; files over ``max_bytes`` are refused unread.

Size is bounded too: the opcodes are walked first (``pickletools.genops``, nothing executed)
so no opcode's claimed length (``BYTEARRAY8`` of 1.5 GB in a 20-byte file) exceeds the data;
the constructors that allocate what their *arguments* ask for
(``bytes(n)``, ``bytearray(n)``, ``numpy.ndarray(shape)``, huge ``numpy.dtype`` items) draw
from an allocation budget per load (``max_alloc``), so a 63-byte pickle cannot make us
allocate gigabytes; and the loaded object may hold at most :data:`MAX_NODES` containers and
items, nested at most :data:`MAX_DEPTH` deep (checked iteratively), so shared references
cannot turn a small file into an exponentially large tree for the code that walks it.
"""

from __future__ import annotations

import collections
import importlib
import io
import logging
import os
import pickle
import pickletools
from collections.abc import Callable, Mapping
from pathlib import Path
from struct import error as struct_error
from typing import Any

from ckptcompat._compat import prod
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ALLOC", "MAX_NODES", "MAX_DEPTH", "ALLOWED_GLOBALS",
           "safe_load", "safe_loads", "looks_like_pickle"]

log = logging.getLogger(__name__)

#: Sidecars are small; anything bigger is refused unread (pass ``max_bytes`` to change).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Bytes the sized constructors of one load may ask for together (pass ``max_alloc``).
DEFAULT_MAX_ALLOC = 256 * 1024 * 1024
#: Containers + items the loaded object may hold, counted as a tree (shared ones each time).
MAX_NODES = 2_000_000
#: Deepest nesting of containers in the loaded object.
MAX_DEPTH = 100

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


class _AllocationBudget:
    """What the sized constructors of one load may still allocate, in bytes."""

    def __init__(self, limit: int, path: str | None) -> None:
        self.limit = self.left = limit
        self.path = path

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:  # absurd sizes are damage, as numpy's own MemoryError would say
            raise CorruptCheckpointError(
                f"the pickle asks {what} to allocate {nbytes} bytes, over the allocation budget "
                f"of {self.limit} bytes for a sidecar; refused", path=self.path,
                hint="a damaged or hostile sidecar; pass a larger max_alloc only if the file is "
                     "trusted")
        self.left -= nbytes

    def wrap(self, qualified: str, fn: Any) -> Any:
        """``fn`` with its requested size charged first (``fn`` itself when it allocates by input)."""
        kind = _SIZED.get(qualified)
        if kind is None:
            return fn
        budget = self

        def sized(*args: Any, **kwargs: Any) -> Any:
            # a wrapped class passed on as an argument (``_reconstruct(ndarray, ...)``): the class
            args = tuple(getattr(a, "__ckptcompat_wrapped__", a) for a in args)
            budget.take(kind(args, kwargs), qualified)
            result = fn(*args, **kwargs)
            itemsize = getattr(result, "itemsize", 0)
            if qualified.endswith(".dtype") and isinstance(itemsize, int):
                budget.take(itemsize, qualified)  # a dtype whose one item is gigabytes
            return result

        sized.__name__ = getattr(fn, "__name__", "sized")
        sized.__ckptcompat_wrapped__ = fn  # type: ignore[attr-defined]
        return sized


def _int_size(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """``bytes(n)`` / ``bytearray(n)``: ``n`` bytes; from a buffer or string: its length."""
    first = args[0] if args else kwargs.get("source", b"")
    if isinstance(first, int) and not isinstance(first, bool):
        return max(first, 0)
    return len(first) if hasattr(first, "__len__") else 0


def _shape_size(shape: Any, dtype: Any) -> int:
    import numpy as np

    dims = (shape,) if isinstance(shape, int) else tuple(shape or ())
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of integers")
    return prod(max(int(d), 0) for d in dims) * np.dtype(dtype if dtype is not None else float).itemsize


def _ndarray_size(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    shape = args[0] if args else kwargs.get("shape", ())
    dtype = args[1] if len(args) > 1 else kwargs.get("dtype")
    return _shape_size(shape, dtype)


def _reconstruct_size(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    # numpy's _reconstruct(subtype, shape, dtype-char): the array set up before __setstate__
    return _shape_size(args[1] if len(args) > 1 else (), args[2] if len(args) > 2 else "b")


def _scalar_size(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    dtype = args[0] if args else None
    return int(getattr(dtype, "itemsize", 0) or 0)


#: constructors whose allocation their arguments decide -> size of what they will allocate
_SIZED: dict[str, Callable[[tuple[Any, ...], Mapping[str, Any]], int]] = {
    **{f"{m}.{n}": _int_size for m in ("builtins", "__builtin__") for n in ("bytes", "bytearray")},
    "numpy.ndarray": _ndarray_size,
    "numpy.dtype": lambda args, kwargs: 0,
    **{f"numpy.{core}.multiarray._reconstruct": _reconstruct_size for core in ("core", "_core")},
    **{f"numpy.{core}.multiarray.scalar": _scalar_size for core in ("core", "_core")},
}


def _check_opcodes(data: bytes, path: str | None) -> None:
    """Walk the opcodes without executing them: every length an opcode claims (``BYTEARRAY8``,
    ``BINBYTES8``, ...) must fit in the data, checked before the unpickler allocates it."""
    if data[:1] == b"\x80" and len(data) > 1 and data[1] > pickle.HIGHEST_PROTOCOL:
        raise UnsupportedFormatError(
            f"pickle protocol {data[1]} is newer than this Python reads (up to "
            f"{pickle.HIGHEST_PROTOCOL}; protocol 5 needs Python 3.8+)", path=path,
            hint="read it with a newer Python, or convert it there: ckptcompat migrate")
    try:
        for _ in pickletools.genops(data):
            pass
    except (ValueError, EOFError, IndexError, struct_error) as exc:
        raise CorruptCheckpointError(f"malformed pickle: {exc}", path=path,
                                     hint="the file is truncated, damaged or hostile") from exc


def _check_tree(obj: Any, path: str | None) -> None:
    """Refuse a loaded object with more than MAX_NODES items or deeper than MAX_DEPTH (iterative)."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise CorruptCheckpointError(
                f"the unpickled data has more than {MAX_NODES} items (shared references "
                "counted each time they occur)", path=path, hint="a damaged or hostile sidecar")
        if isinstance(item, Mapping):
            children: Any = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            raise CorruptCheckpointError(f"the unpickled data nests deeper than {MAX_DEPTH} levels",
                                         path=path, hint="a damaged or hostile sidecar")
        stack.extend((child, depth + 1) for child in children)
        if len(stack) > MAX_NODES:
            raise CorruptCheckpointError(f"the unpickled data has more than {MAX_NODES} items",
                                         path=path, hint="a damaged or hostile sidecar")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, path: str | None, max_alloc: int = DEFAULT_MAX_ALLOC) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path
        self._budget = _AllocationBudget(max_alloc, path)

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified not in ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"the pickle references {qualified!r}; loading it would import or run code from "
                "the file, so it was refused",
                path=self._path,
                hint="only plain data (dicts, lists, numbers, strings, numpy arrays) is read from "
                     "pickles; re-save the sidecar as JSON, or with ckptcompat")
        return self._budget.wrap(qualified, _resolve(module, name))

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("the pickle uses persistent ids; refused", path=self._path,
                                    hint="re-save the sidecar as plain data")


def looks_like_pickle(head: bytes) -> bool:
    """True when ``head`` starts like a pickle of protocol 2-5 (the ``PROTO`` opcode)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def safe_loads(data: bytes, *, path: str | os.PathLike[str] | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES, max_alloc: int = DEFAULT_MAX_ALLOC) -> Any:
    """Unpickle ``data`` allowing plain data only, within ``max_alloc`` bytes of sized
    allocations, :data:`MAX_NODES` items and :data:`MAX_DEPTH` levels (see the module docstring)."""
    where = None if path is None else str(path)
    if len(data) > max_bytes:
        raise UnsafeCheckpointError(
            f"pickle of {len(data)} bytes is over the {max_bytes}-byte limit for sidecars; refused",
            path=where, hint="pass a larger max_bytes if this file is trusted and really that big")
    if not data:
        raise CorruptCheckpointError("empty file where a pickle was expected", path=where,
                                     hint="the sidecar was not written completely; use an older one")
    _check_opcodes(data, where)
    try:
        result = _RestrictedUnpickler(io.BytesIO(data), where, max_alloc).load()
        _check_tree(result, where)
        return result
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


def safe_load(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
              max_alloc: int = DEFAULT_MAX_ALLOC) -> Any:
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
    return safe_loads(data, path=p, max_bytes=max_bytes, max_alloc=max_alloc)

