"""Generate ``ckptcompat/names/configs/keras3_releases.json``: what each Keras 3 release added to
the config space, read from the released sources themselves.

For every Keras 3 minor release (its newest patch on the package index) the wheel is
downloaded (``pip download --no-deps``: pure Python, no install) and the constructors of every
class under ``keras/src/{layers,initializers,regularizers,constraints}`` are read with ``ast``
(never imported): their arguments and defaults, following ``**kwargs`` to the base classes. The
output lists, per class, every constructor argument that the first Keras 3 release lacks, the
first release that takes it and its default there (the value at which older releases behave the
same), and the first release of every class that 3.0 did not have. ckptcompat drops such an
argument at its default when rebuilding a newer release's config in an older one, and names it
otherwise (``names/configs/keras3_releases.py``).

    python tools/keras3_releases.py              # every release on the index, into the package
    python tools/keras3_releases.py --wheels DIR # wheels already downloaded (keras-3.*.whl)
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "ckptcompat" / "names" / "configs" / "keras3_releases.json"
PACKAGES = ("layers", "initializers", "regularizers", "constraints")
_NOT_LITERAL = "<not a literal>"


def _index_versions() -> list[str]:
    """The newest patch of every Keras 3 minor release on the package index."""
    text = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "keras"], check=True,
                          capture_output=True, text=True).stdout
    listed = re.search(r"Available versions: (.*)", text)
    if not listed:
        raise SystemExit(f"pip index versions keras: no version list in {text!r}")
    newest: dict[tuple[int, int], tuple[int, ...]] = {}
    for version in listed.group(1).split(", "):
        if not re.fullmatch(r"3\.\d+\.\d+", version):
            continue  # pre-releases and Keras 1/2
        parts = tuple(int(p) for p in version.split("."))
        newest[parts[:2]] = max(newest.get(parts[:2], parts), parts)
    return [".".join(map(str, newest[minor])) for minor in sorted(newest)]


def _download(versions: list[str], folder: Path) -> dict[str, Path]:
    for version in versions:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"keras=={version}",
                        "-d", str(folder)], check=True)
    return _wheels(folder)


def _wheels(folder: Path) -> dict[str, Path]:
    found = {}
    for wheel in folder.glob("keras-3.*-py3-none-any.whl"):
        found[wheel.name.split("-")[1]] = wheel
    return dict(sorted(found.items(), key=lambda item: _release(item[0])))


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:3])


def _literal(node: ast.expr | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else _NOT_LITERAL
    except ValueError:
        return _NOT_LITERAL


def _constructor(cls: ast.ClassDef) -> tuple[dict[str, Any], bool] | None:
    """The ``__init__`` arguments of ``cls`` with their defaults, and whether it takes ``**kwargs``."""
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            a = node.args
            positional = a.posonlyargs + a.args
            defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
            args = {p.arg: _literal(d) for p, d in zip(positional, defaults) if p.arg != "self"}
            args.update({p.arg: _literal(d) for p, d in zip(a.kwonlyargs, a.kw_defaults)})
            return args, a.kwarg is not None
    return None


def _classes(wheel: Path) -> dict[str, dict[str, Any]]:
    """Every class of the configurable packages: its own constructor and its base class names."""
    found: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not (name.endswith(".py") and any(name.startswith(f"keras/src/{p}/") for p in PACKAGES)):
                continue
            if "/test" in name or name.endswith("_test.py"):
                continue
            for node in ast.walk(ast.parse(zf.read(name))):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                    found.setdefault(node.name, {"init": _constructor(node), "bases": bases,
                                                 "exported": _exported_names(node)})
    return found


def _exported_names(cls: ast.ClassDef) -> set[str]:
    """The public names ``@keras_export`` gives ``cls`` (a config's ``class_name`` may be one of them:
    ``GroupQueryAttention`` for the class ``GroupedQueryAttention``)."""
    names = set()
    for decorator in cls.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "keras_export":
            for arg in decorator.args:
                value = _literal(arg)
                for path in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(path, str):
                        names.add(path.rsplit(".", 1)[-1])
    return names - {cls.name}


def _arguments(classes: dict[str, dict[str, Any]], name: str, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What ``name``'s constructor accepts: its own arguments and, through ``**kwargs`` (or no
    ``__init__`` of its own), its base classes'."""
    info = classes.get(name)
    if info is None or name in seen:
        return {}
    own, passes_on = info["init"] if info["init"] else ({}, True)
    out: dict[str, Any] = {}
    if passes_on:
        for base in info["bases"]:
            out.update(_arguments(classes, base, seen | {name}))
    out.update(own)
    return out


def table(wheels: dict[str, Path]) -> dict[str, Any]:
    """The generated table (see the module docstring) from the wheels, oldest release first."""
    releases = list(wheels)
    per_release, defined = {}, {}
    for version, wheel in wheels.items():
        classes = _classes(wheel)
        defined[version] = set(classes)
        per_release[version] = {name: _arguments(classes, name) for name in classes}
        for name, info in classes.items():  # the exported aliases take the class's arguments
            for alias in info["exported"]:
                per_release[version].setdefault(alias, per_release[version][name])
    first = dict(per_release[releases[0]])  # each class's arguments in the first release that has it
    args_since: dict[str, dict[str, list[Any]]] = {}
    classes_since: dict[str, str] = {}
    for version in releases[1:]:
        minor = ".".join(version.split(".")[:2])
        for name in defined[version] - defined[releases[0]]:  # by class name: what deserializing looks up
            classes_since.setdefault(name, minor)
        for name, args in per_release[version].items():
            if name not in first:  # new in this release: later additions count from here
                first[name] = args
                continue
            for arg, default in args.items():
                if arg not in first[name] and arg not in args_since.get(name, {}):
                    args_since.setdefault(name, {})[arg] = [minor, default]
    return {"generated_by": "tools/keras3_releases.py (constructors read from each release's wheel)",
            "releases": releases, "not_literal": _NOT_LITERAL,
            "args_since": {name: dict(sorted(args.items())) for name, args in sorted(args_since.items())},
            "classes_since": dict(sorted(classes_since.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, help="a folder of keras-3.*.whl (default: download them)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = _wheels(args.wheels) if args.wheels else _download(_index_versions(), Path(tmp))
        if not wheels:
            raise SystemExit("no keras-3.*.whl found")
        result = table(wheels)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    print(f"[keras3_releases] {len(result['releases'])} releases, "
          f"{sum(map(len, result['args_since'].values()))} arguments added after {result['releases'][0]}, "
          f"{len(result['classes_since'])} classes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
