"""docs/architecture.md is the project's own map: it lists every module of ckptcompat, one line
each, and nothing that does not exist."""

from __future__ import annotations

import re

from _paths import ROOT

MAP = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "ckptcompat"


def _listed() -> list[str]:
    return re.findall(r"^- `([\w/]+\.py)` — \S", MAP.read_text(encoding="utf-8"), flags=re.M)


def test_every_module_is_on_the_map_once() -> None:
    listed = _listed()
    actual = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert not sorted(set(actual) - set(listed)), f"modules missing from {MAP.name}"
    assert not sorted(set(listed) - set(actual)), f"{MAP.name} lists modules that do not exist"


def test_the_map_is_in_the_docs_navigation() -> None:
    assert "architecture.md" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "the project's own map" in MAP.read_text(encoding="utf-8")
