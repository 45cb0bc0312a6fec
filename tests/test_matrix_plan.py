"""The version matrix's plan (tools/matrix.py): what each environment's test subset leaves out
runs somewhere else, so the whole suite still runs on every stack it claims."""

from __future__ import annotations

import re
from typing import Any

from tests._paths import ROOT, load_script


def _matrix() -> Any:
    return load_script(ROOT / "tools" / "matrix.py", "ckptcompat_matrix_tool")


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
    assert readme_default and readme_default.group(1) == "not slow and not fresh_fixtures"


def _args(env, prefix: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {arg.split("=", 1)[1] for arg in env.pytest_subset if arg.startswith(prefix)}


def test_suites_left_out_somewhere_run_in_another_environment_of_the_same_generation() -> None:
    matrix = _matrix()
    envs = {e.name: e for e in matrix.ENVIRONMENTS}

    def ignored(name: str) -> set[str]:
        return _args(envs[name], "--ignore=")

    assert envs["tf215"].pytest_subset == matrix._OLD_CONSUMER  # between tf212 and tf221-tfkeras
    # tf212: the old-consumer subset and the flavour's round trips; no end-to-end suite
    assert envs["tf212"].pytest_subset == (*matrix._OLD_CONSUMER, "tests/runtime/test_runtime.py",
                                           "tests/formats/test_formats_saved_model.py")
    for old in ("tf24-py38", "tf211-py310"):  # the oldest Keras 2 consumers run the SIGKILL edges
        assert set(matrix._KERAS2_EDGES) <= set(envs[old].pytest_subset), old
    for newest in ("keras3-jax", "keras3-torch"):  # the backends: every framework test
        assert envs[newest].pytest_subset == matrix._FRAMEWORK_TESTS, newest
    # the newest Keras 2: every framework test but graph execution, which runs natively on TF 1.15
    assert envs["tf221-tfkeras"].pytest_subset == (*matrix._FRAMEWORK_TESTS, matrix._GRAPH_MODE, *matrix._TF1_ON_TF221)
    for arg in matrix._TF1_ON_TF221:  # they run in tf221-keras3 (-m "slow or fresh_fixtures"): marked slow
        source = (ROOT / arg.split("=", 1)[1].split("::")[0]).read_text()
        assert re.search(r"^pytestmark = \[[^\]]*pytest\.mark\.slow", source, re.M), arg
    assert "tests/matrix/test_graph_mode.py" in envs["tf115-py37"].pytest_subset
    for path in matrix._END_TO_END:
        assert (ROOT / path).is_file(), path
    for name in ("tf216-keras30", "keras3-jax", "keras3-torch"):  # Keras 3 runs them all
        assert not ignored(name) & set(matrix._END_TO_END), name
    for env in matrix.ENVIRONMENTS:
        assert bool(env.pytest_subset) == bool(env.subset_note), env.name


def test_cases_deselected_in_a_row_exist_and_run_in_the_newest_of_its_generation() -> None:
    """A --deselect names a real test (a wrong id would deselect nothing, silently), and what
    tf212/tf216-keras30 leave out runs in tf221-tfkeras and tf221-keras3."""
    matrix = _matrix()
    envs = {e.name: e for e in matrix.ENVIRONMENTS}
    assert not _args(envs["tf221-keras3"], "--deselect=") and not _args(envs["tf221-keras3"], "--ignore=")
    deselected = set().union(*(_args(env, "--deselect=") for env in matrix.ENVIRONMENTS))
    assert deselected
    for node in deselected:
        path, _, rest = node.partition("::")
        source = (ROOT / path).read_text()
        if rest:
            function, _, case = rest.partition("[")
            assert f"def {function}(" in source, node
            assert not case or f'"{case.rstrip("]")}"' in source, node


def test_framework_free_tests_run_in_the_readme_command_and_on_the_floor() -> None:
    """The framework rows select by marker; every marker but fuzz says "needs or compares with a
    framework", so what they leave out needs none and runs in the README test command (all but
    slow) and in noframework-py37 (everything, no framework)."""
    matrix = _matrix()
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("markers = ["):]
    markers = set(re.findall(r'^\s*"(\w+):', block[:block.index("]")], re.M))
    flag, expression = matrix._FRAMEWORK_TESTS
    assert flag == "-m" and set(expression.split(" or ")) == markers - {"fuzz"}
    floor = {e.name: e for e in matrix.ENVIRONMENTS}["noframework-py37"]
    assert not floor.pytest_subset and not floor.packages and floor.python == "3.7"
