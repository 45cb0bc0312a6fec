"""Bounded JSON parsing for every JSON document ckptcompat reads from disk.

``json.loads`` recurses once per nesting level, so a document nested 100 000 deep ends in
:class:`RecursionError` (and every recursive walker after it would too). :func:`loads`
first checks the size, then measures the nesting depth *without recursing* (escapes and
strings are dropped with linear byte operations, the brackets counted with a running sum),
and only then parses. Every failure is a :class:`CorruptCheckpointError` naming the path,
the document and the limit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ckptcompat.errors import CorruptCheckpointError

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "json_depth", "loads", "load_file"]

#: Largest JSON document read (bytes); callers pass smaller limits where they know better.
MAX_JSON_BYTES = 256 << 20
#: Deepest nesting accepted; Keras model configs of nested functional models stay far below.
MAX_JSON_DEPTH = 200

_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets
_SIGNS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")   # +1 / -1 as int8
_CHUNK = 8 << 20


def json_depth(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of the JSON text ``data`` (stops counting once it exceeds ``limit``).

    Iterative and linear in ``len(data)``; an unbalanced text is measured as far as it goes
    (an unclosed ``[[[[`` counts as deep as it is long).
    """
    import numpy as np

    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    # drop escaped backslashes, then escaped quotes (left to right, as JSON reads escapes):
    # the quotes left delimit strings, so every other piece between them is outside one
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        signs = np.frombuffer(brackets[start:start + _CHUNK].translate(_SIGNS), dtype=np.int8)
        running = np.cumsum(signs, dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
        if deepest > limit:
            break
    return deepest


def loads(data: bytes | str, *, path: str | os.PathLike[str] | None, what: str,
          max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``data`` as JSON within ``max_bytes`` and ``max_depth``.

    ``what`` names the document in messages (``"the store manifest"``, ``"config.json"``).
    Raises :class:`CorruptCheckpointError` for oversized, too deep or invalid JSON.
    """
    size = len(data)
    if size > max_bytes:
        raise CorruptCheckpointError(
            f"{what} is {size} bytes, over the {max_bytes}-byte limit", path=path,
            hint="the file is damaged or hostile; ckptcompat never writes documents that large")
    depth = json_depth(data, max_depth)
    if depth > max_depth:
        raise CorruptCheckpointError(
            f"{what} nests deeper than the limit of {max_depth} levels", path=path,
            hint="the file is damaged or hostile; real checkpoints nest a few dozen levels at most")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptCheckpointError(f"{what} is not valid JSON ({exc})", path=path,
                                     hint="the file is truncated or damaged; use an older copy") from exc


def load_file(path: str | os.PathLike[str], *, what: str, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Read and parse the JSON file at ``path`` within the limits (size checked before reading).

    :class:`OSError` (missing file, permissions) propagates unchanged for the caller to type.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise CorruptCheckpointError(
            f"{what} is {size} bytes, over the {max_bytes}-byte limit", path=p,
            hint="the file is damaged or hostile; ckptcompat never writes documents that large")
    with p.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    return loads(data, path=p, what=what, max_bytes=max_bytes, max_depth=max_depth)
