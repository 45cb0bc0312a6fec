"""The package's shape stays what docs/architecture.md promises: few top-level modules,
small modules, short functions (a long one says why in its docstring)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ckptcompat"
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: a docstring line starting with this explains why a function is longer than the limit
LONG_REASON = "Long because"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_at_most_twelve_top_level_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_over_400_lines() -> None:
    lengths = ((str(p.relative_to(PACKAGE)), len(p.read_text().splitlines())) for p in _modules())
    long = {name: n for name, n in lengths if n > MAX_MODULE_LINES}
    assert not long, long


_NEEDS_END_LINENO = pytest.mark.skipif(sys.version_info < (3, 8), reason="ast end_lineno is new "
                                       "in Python 3.8; the newer environments run the check")


def _long_functions(source: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if length > MAX_FUNCTION_LINES and LONG_REASON not in (ast.get_docstring(node) or ""):
                out.append(f"{node.name} ({length} lines)")
    return out


@_NEEDS_END_LINENO
def test_no_function_over_60_lines_without_a_reason() -> None:
    each = ((str(p.relative_to(PACKAGE)), _long_functions(p.read_text())) for p in _modules())
    found = {name: f for name, f in each if f}
    assert not found, found


@_NEEDS_END_LINENO
def test_the_function_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    assert _long_functions(f"def f():\n{body}\n") == ["f (71 lines)"]
    assert _long_functions(f'def f():\n    """Long because: a table."""\n{body}\n') == []


#: test folders that are not a sub-package: cross-version runs, corpora we did not write, hostile input
CROSS_CUTTING_TEST_FOLDERS = {"matrix", "corpora", "hostile"}


def test_tests_mirror_the_package() -> None:
    """Every sub-package has its test folder, and every test folder is a sub-package or one of the
    cross-cutting ones; tests of the top-level modules sit in ``tests/`` itself."""
    tests = Path(__file__).resolve().parent
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert packages - folders == set(), "sub-packages without a tests/<name>/ folder"
    assert folders - packages - CROSS_CUTTING_TEST_FOLDERS == set(), "test folders that mirror nothing"
    for folder in folders - CROSS_CUTTING_TEST_FOLDERS:
        assert list((tests / folder).glob("test_*.py")), f"tests/{folder}/ holds no test module"
