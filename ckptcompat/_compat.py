"""The few things the library uses that Python 3.7 lacks: ``Protocol``, package versions, ``prod``.

Everything else is written for the 3.7 floor directly (no ``:=``, no runtime ``list[int]``);
``tests/test_python_floor.py`` parses every module with the 3.7 grammar.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, SupportsInt

if sys.version_info >= (3, 8):
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version
    from typing import Protocol, runtime_checkable
else:  # pragma: no cover - exercised in the Python 3.7 matrix environments
    from importlib_metadata import PackageNotFoundError
    from importlib_metadata import version as distribution_version
    from typing_extensions import Protocol, runtime_checkable

__all__ = ["PackageNotFoundError", "Protocol", "distribution_version", "is_within", "prod", "removeprefix",
           "runtime_checkable", "unlink_if_present"]


def prod(values: Iterable[SupportsInt]) -> int:
    """The product of ``values`` as a Python int (1 when empty): ``math.prod`` before 3.8."""
    result = 1
    for value in values:
        result *= int(value)
    return result


def removeprefix(text: str, prefix: str) -> str:
    """``text`` without a leading ``prefix``: ``str.removeprefix`` before 3.9."""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def unlink_if_present(path: Path) -> None:
    """Remove a file that may be absent: ``Path.unlink(missing_ok=True)`` before 3.8."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def is_within(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root`` (both resolved): ``Path.is_relative_to`` before 3.9."""
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
