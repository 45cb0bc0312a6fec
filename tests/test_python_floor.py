"""The library is written for its Python floor (3.7, ``python_requires`` in setup.cfg).

Every module must parse with the 3.7 grammar (no ``:=``, no positional-only ``/``) and must not
subscript a builtin or ``collections.abc`` class outside annotations (``dict[str, int]`` as a
runtime alias fails before 3.9). Newer library calls (``str.removeprefix``, ``math.prod``,
``Path.unlink(missing_ok=)``) go through ``ckptcompat._compat``; the ``noframework-py37`` matrix
environment runs the suite on a real Python 3.7.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path

import pytest

from _paths import ROOT

FLOOR = (3, 7)
PACKAGE = ROOT / "ckptcompat"
#: classes that are subscriptable at runtime only from Python 3.9 on
_NEW_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type", "Callable", "Mapping",
                 "MutableMapping", "Sequence", "MutableSequence", "Iterable", "Iterator", "Generator",
                 "Collection", "AbstractSet", "OrderedDict", "defaultdict", "deque", "Counter", "PathLike"}
#: method calls newer than the floor, spelled as they appear in source (each has a _compat helper)
_NEW_CALLS = re.compile(r"\.(removeprefix|removesuffix|is_relative_to)\(|missing_ok=|math\.prod\("
                        r"|importlib\.metadata|dirs_exist_ok=|functools\.cache\b|strict=True\)")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _annotation_node_ids(tree: ast.AST) -> set[int]:
    """Nodes inside annotations and ``if TYPE_CHECKING:`` blocks (never evaluated at runtime)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            args = a.args + a.kwonlyargs + getattr(a, "posonlyargs", []) + [a.vararg, a.kwarg]
            roots += [arg.annotation for arg in args if arg is not None and arg.annotation is not None]
            roots += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            roots += node.body
    return {id(n) for root in roots for n in ast.walk(root)}


def _typing_names(tree: ast.AST) -> set[str]:
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in ("typing", "typing_extensions")
            for alias in node.names}


def _is_none(node: ast.AST) -> bool:
    """``None`` as parsed (``ast.NameConstant`` on Python 3.7, ``ast.Constant`` later)."""
    return isinstance(node, (ast.Constant, getattr(ast, "NameConstant", ast.Constant))) and \
        getattr(node, "value", 0) is None


def _runtime_generics(path: Path, base: Path = ROOT) -> list[str]:
    text = path.read_text(encoding="utf-8")  # on the floor itself the plain grammar is the floor's
    tree = ast.parse(text, str(path)) if sys.version_info < (3, 8) else \
        ast.parse(text, str(path), feature_version=FLOOR)
    skip, from_typing = _annotation_node_ids(tree), _typing_names(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Subscript):
            value = node.value
            name = value.id if isinstance(value, ast.Name) else getattr(value, "attr", None)
            if name in _NEW_GENERICS and name not in from_typing:
                out.append(f"{path.relative_to(base)}:{node.lineno}: {name}[...] evaluated at runtime")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and any(
                _is_none(side) for side in (node.left, node.right)):
            out.append(f"{path.relative_to(base)}:{node.lineno}: 'X | None' evaluated at runtime")
    return out


def test_python_requires_is_the_floor() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options"]["python_requires"].strip() == ">=" + ".".join(map(str, FLOOR))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_runs_on_the_floor(path: Path) -> None:
    assert not _runtime_generics(path)
    text = path.read_text(encoding="utf-8")
    if path.name != "_compat.py":
        newer = [m.group(0) for m in _NEW_CALLS.finditer(text)]
        assert not newer, f"{path.relative_to(ROOT)} calls {newer}: use ckptcompat._compat"


def test_the_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from collections.abc import Callable\nX = dict[str, int]\nY = Callable[[int], None]\n"
                      "Z = int | None\ndef f(a: list[int]) -> dict[str, int | None]: ...\n")
    found = sorted(line.split(": ", 1)[1] for line in _runtime_generics(sample, tmp_path))
    assert found == sorted(["dict[...] evaluated at runtime", "Callable[...] evaluated at runtime",
                     "'X | None' evaluated at runtime"])
    sample.write_text("y = [x for x in range(3) if (n := x)]\n")
    with pytest.raises(SyntaxError):
        _runtime_generics(sample, tmp_path)

