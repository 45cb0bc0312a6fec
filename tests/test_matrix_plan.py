"""The version matrix's plan (tools/matrix.py): what each environment's test subset leaves out
runs somewhere else, so the whole suite still runs on every stack it claims."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _matrix():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ckptcompat_matrix_tool", ROOT / "tools" / "matrix.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_stack_is_the_matrix_environment_that_skips_its_tests() -> None:
    """tf221-keras3 runs only the slow and fresh-fixture tests because the README test command
    (run.sh's DEV_PACKAGES) ran the rest on the very same packages."""
    matrix = _matrix()
    dev = re.search(r"DEV_PACKAGES=\(([^)]*)\)", (ROOT / "run.sh").read_text())
    assert dev, "run.sh has no DEV_PACKAGES"
    env = {e.name: e for e in matrix.ENVIRONMENTS}["tf221-keras3"]
    assert tuple(dev.group(1).split()) == env.packages
    assert env.pytest_subset == ("-m", "slow or fresh_fixtures")
    readme_default = re.search(r'set -- -m "([^"]*)"', (ROOT / "run.sh").read_text())
    assert readme_default and readme_default.group(1) == "not slow"


def test_suites_left_out_somewhere_run_in_another_environment_of_the_same_generation() -> None:
    matrix = _matrix()
    envs = {e.name: e for e in matrix.ENVIRONMENTS}

    def ignored(name: str) -> set[str]:
        return {arg.split("=", 1)[1] for arg in envs[name].pytest_subset if arg.startswith("--ignore=")}

    assert ignored("tf215") == set(matrix._END_TO_END)
    assert ignored("tf212") == set(matrix._KERAS2_NEWEST)
    assert not envs["tf221-tfkeras"].pytest_subset        # the newest Keras 2 runs everything
    for path in matrix._END_TO_END:
        assert (ROOT / path).is_file(), path
    for path in matrix._KERAS2_EDGES:                     # the Keras 2 releases either side
        assert path not in ignored("tf212")
    for name in ("tf216-keras30", "keras3-jax", "keras3-torch"):  # Keras 3 runs them all
        assert not ignored(name) & set(matrix._END_TO_END), name
    for env in matrix.ENVIRONMENTS:
        assert bool(env.pytest_subset) == bool(env.subset_note), env.name
