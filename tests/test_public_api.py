"""The public surface: ``ckptcompat.__all__`` resolves, README's imports work, and user docs and
examples name public things only (no ``ckptcompat`` module or name starting with ``_``)."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import typing
from pathlib import Path

import pytest

import ckptcompat
from ckptcompat import errors
from _paths import ROOT

#: docs/architecture.md is the project's own map (it names every module, private ones too)
USER_TEXTS = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "architecture.md") + [ROOT / "README.md"]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_PACKAGES = ("callbacks", "cli", "data", "discovery", "formats", "names", "resuming", "runtime",
             "store", "tf1")
#: private module names of ckptcompat, now and before the re-layout (``_resume_read`` ...)
_PRIVATE_MODULES = sorted({p.stem for p in (ROOT / "ckptcompat").rglob("_*.py") if not p.stem.startswith("__")}
                          | {"_async_writer", "_resume_read", "_resume_build", "_store_io", "_cli_tables",
                             "_data_state", "_demo_child", "_discovery_probe"})
_PRIVATE = [
    re.compile(r"ckptcompat(?:\.\w+)*\._[a-z]\w*"),                          # ckptcompat.x._y
    re.compile(r"ckptcompat/(?:\w+/)*_[a-z]\w*(?:\.py)?"),                   # ckptcompat/x/_y.py
    re.compile(rf"\b(?:{'|'.join(_PACKAGES)})\._[a-z]\w*"),                  # callbacks._state
    re.compile(rf"(?<![\w.])(?:{'|'.join(map(re.escape, _PRIVATE_MODULES))})\.\w+"),  # _async_writer.x
]


def private_references(text: str) -> list[str]:
    """Every reference to a private ckptcompat module or name in ``text``."""
    return sorted({m.group(0) for rx in _PRIVATE for m in rx.finditer(text)})


def private_imports(source: str) -> list[str]:
    """Imports of ckptcompat modules or names that start with ``_`` in Python ``source``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ckptcompat":
            parts = node.module.split(".")  # type: ignore[union-attr]
            names = [a.name for a in node.names]
            if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
                bad.append(f"from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            bad += [f"import {a.name}" for a in node.names
                    if a.name.split(".")[0] == "ckptcompat" and any(p.startswith("_") for p in a.name.split("."))]
    return bad


def test_scanners_catch_what_they_must() -> None:
    """The scanners themselves: each kind of private reference is found, public ones are not."""
    assert "ckptcompat.callbacks._base" in private_references("see `ckptcompat.callbacks._base.bind`")
    assert "ckptcompat/callbacks/_state.py" in private_references("(`ckptcompat/callbacks/_state.py`)")
    assert private_references("offered (`callbacks._state.offer_states`)") == ["callbacks._state"]
    assert private_references("`_async_writer.snapshot` copies") == ["_async_writer.snapshot"]
    assert private_references("runs `ckptcompat/_demo_child.py`") != []
    assert private_references("`ckptcompat.formats.read`, `runtime.capture`, `_codecs.encode`, "
                              "`numpy._core`, `__init__.py`") == []
    assert private_imports("from ckptcompat.callbacks._base import keras_module") != []
    assert private_imports("from ckptcompat.store import _commit") != []
    assert private_imports("import ckptcompat.formats._protowire as pw") != []
    assert private_imports("import _tiny\nfrom ckptcompat.runtime import keras_module") == []


@pytest.mark.parametrize("path", USER_TEXTS + EXAMPLES, ids=lambda p: p.name)
def test_user_docs_and_examples_name_public_things_only(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = private_references(text)
    if path.suffix == ".py":
        found += private_imports(text)
    assert not found, f"{path.relative_to(ROOT)} names private ckptcompat things: {found}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_find_checkpoints_through_the_api(path: Path) -> None:
    """No example tests for the store's own files on disk (``ckptcompat.json``): whether there is
    something to resume is ``ckptcompat.resume`` raising ``CheckpointNotFoundError``."""
    text = path.read_text(encoding="utf-8")
    assert not re.findall(r"ckptcompat\.json|\.ckptcompat\.lock", text), path.name


def test_every_name_in_all_resolves() -> None:
    assert len(ckptcompat.__all__) == len(set(ckptcompat.__all__))
    for name in ckptcompat.__all__:
        assert getattr(ckptcompat, name) is not None, name
        assert not name.startswith("_") or name == "__version__", name
    assert set(ckptcompat.__all__) <= set(dir(ckptcompat))


def test_every_error_users_can_receive_is_exported() -> None:
    classes = {n for n, v in vars(errors).items()
               if isinstance(v, type) and issubclass(v, errors.CkptCompatError)}
    assert classes == set(errors.__all__)
    assert classes <= set(ckptcompat.__all__)
    for name in classes:
        assert getattr(ckptcompat, name) is getattr(errors, name)


def test_top_level_names_are_the_real_objects() -> None:
    from ckptcompat.migration import migrate
    from ckptcompat.resuming.orchestrate import ResumeResult, resume
    from ckptcompat.store import CheckpointStore

    assert ckptcompat.migrate is migrate and callable(ckptcompat.migrate)
    assert ckptcompat.CheckpointStore is CheckpointStore
    assert ckptcompat.resume is resume and ckptcompat.ResumeResult is ResumeResult
    importlib.import_module("ckptcompat.migration")  # importing the module must not shadow the function
    assert ckptcompat.migrate is migrate


def test_resume_and_write_are_typed() -> None:
    from ckptcompat.formats import WrittenFiles
    from ckptcompat.resuming.orchestrate import ResumeResult, resume

    if sys.version_info < (3, 11):
        pytest.skip("typing.get_overloads is new in Python 3.11")
    overloads = typing.get_overloads(resume)
    assert [f.__annotations__["return"] for f in overloads] == ["ResumeResult", "TF1Restore"]
    assert [f.__annotations__["session"] for f in overloads] == ["None", "Any"]
    assert resume.__annotations__["return"] == "ResumeResult | TF1Restore"
    assert ckptcompat.write.__annotations__["return"] == WrittenFiles.__name__
    assert ResumeResult.__dataclass_fields__["initial_epoch"].type == "int"


def _readme_python() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_public_imports_work() -> None:
    blocks = _readme_python()
    assert blocks, "README has no python example"
    imports, attributes = [], set()
    for block in blocks:
        tree = ast.parse(block)
        imports += [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        attributes |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                       and isinstance(n.value, ast.Name) and n.value.id == "ckptcompat"}
    assert any(alias.name.startswith("ckptcompat") or getattr(n, "module", None) == "ckptcompat"
               for n in imports for alias in n.names)
    namespace: dict[str, object] = {}
    exec(compile(ast.Module(body=imports, type_ignores=[]), "README.md", "exec"),  # noqa: S102
         namespace)  # the README's own import lines
    for name in attributes:
        assert name in ckptcompat.__all__, f"README uses ckptcompat.{name}, which is not public"
        assert getattr(ckptcompat, name) is not None
    named_errors = set(re.findall(r"`(\w+Error)`", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert named_errors and named_errors <= set(ckptcompat.__all__)
