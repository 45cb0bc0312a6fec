"""fixtures/generate.py ``_zoo_entries``: a layer-zoo model is trained and written once; only one
that fails, or whose native full-model file its release cannot write, is narrowed to the members
that work (``_zoo.recipes``'s ``narrow``), as the trial of every model used to find them.

The generator's own Keras work is replaced by fakes here: what is checked is the bookkeeping
(entries, ``not_built``, ``not_written``, ``left_out_files``, a sample's skipped kinds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._paths import FIXTURES, load_script


@pytest.fixture
def gen(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = load_script(FIXTURES / "generate.py", "_fixture_generate_zoo")
    monkeypatch.setattr(module, "flavour", lambda: "keras2")  # the native full-model kind: full_model
    module.NOT_WRITTEN.clear()
    module.LEFT_OUT.clear()
    return module


def _recipe(gen: Any, case: str, skip: dict[str, str] | None = None) -> Any:
    return gen.Recipe(case, list, list, "mse", list, list, dict(skip or {}))


def _run(gen: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outcomes: dict[str, Any],
         narrowed: tuple[bool, Any]) -> tuple[list[dict[str, Any]], dict[str, str], list[Any], list[str]]:
    """``outcomes``: case -> entries, or an exception to raise, or "no-native" (written without
    the full-model file); returns the entries, not_built, the recipes written and the cases narrowed."""
    written: list[Any] = []
    asked: list[str] = []

    def keras_case(k: Any, recipe: Any, out: Path) -> list[dict[str, Any]]:
        written.append(recipe)
        (out / recipe.case).mkdir(parents=True, exist_ok=True)
        result = outcomes[recipe.case]
        if isinstance(result, Exception):
            raise result
        if result == "no-native":
            gen.NOT_WRITTEN.setdefault(recipe.case, {})["full_model"] = "cannot"
            gen.LEFT_OUT.setdefault(recipe.case, {})["weights"] = "same as model.h5"
            return [{"case": recipe.case, "kind": "tf_checkpoint"}]
        return list(result)

    def narrow(case: str) -> tuple[bool, Any]:
        asked.append(case)
        return narrowed

    monkeypatch.setattr(gen, "keras_case", keras_case)
    not_built: dict[str, str] = {}
    entries = gen._zoo_entries(None, [_recipe(gen, "zoo_rank2", {"keras_zip": "sample"})], narrow, tmp_path,
                               not_built)
    return entries, not_built, written, asked


def test_a_model_that_works_is_written_once(gen: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entries, not_built, written, asked = _run(gen, monkeypatch, tmp_path,
                                              {"zoo_rank2": [{"case": "zoo_rank2", "kind": "full_model"}]},
                                              (True, None))
    assert entries == [{"case": "zoo_rank2", "kind": "full_model"}] and not not_built
    assert len(written) == 1 and not asked


def test_a_failing_member_is_left_out_and_the_rest_written(gen: Any, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    rest = _recipe(gen, "zoo_rank2_rest")
    entries, not_built, written, asked = _run(
        gen, monkeypatch, tmp_path,
        {"zoo_rank2": ValueError("a layer cannot be trained"), "zoo_rank2_rest": [{"case": "zoo_rank2_rest"}]},
        (True, rest))
    assert asked == ["zoo_rank2"] and entries == [{"case": "zoo_rank2_rest"}] and not not_built
    assert written[-1] is rest and rest.skip == {"keras_zip": "sample"}  # a sample's skipped kinds kept
    assert not (tmp_path / "zoo_rank2").exists()


def test_a_model_without_its_full_model_file_is_narrowed_and_its_records_dropped(
        gen: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rest = _recipe(gen, "zoo_rank2_rest")
    entries, _, _, asked = _run(gen, monkeypatch, tmp_path,
                                {"zoo_rank2": "no-native", "zoo_rank2_rest": [{"case": "zoo_rank2_rest"}]},
                                (True, rest))
    assert asked == ["zoo_rank2"] and entries == [{"case": "zoo_rank2_rest"}]
    assert "zoo_rank2" not in gen.NOT_WRITTEN and "zoo_rank2" not in gen.LEFT_OUT


def test_no_member_to_blame_keeps_what_was_written(gen: Any, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    entries, not_built, _, asked = _run(gen, monkeypatch, tmp_path, {"zoo_rank2": "no-native"}, (False, None))
    assert asked == ["zoo_rank2"] and entries == [{"case": "zoo_rank2", "kind": "tf_checkpoint"}]
    assert gen.NOT_WRITTEN["zoo_rank2"] == {"full_model": "cannot"} and not not_built


def test_no_member_to_blame_for_an_error_records_it(gen: Any, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    entries, not_built, _, _ = _run(gen, monkeypatch, tmp_path, {"zoo_rank2": RuntimeError("out of memory")},
                                    (False, None))
    assert entries == [] and not_built == {"zoo_rank2": "RuntimeError: out of memory"}


def test_every_member_failing_leaves_the_model_out(gen: Any, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    entries, not_built, written, _ = _run(gen, monkeypatch, tmp_path, {"zoo_rank2": ValueError("no")}, (True, None))
    assert entries == [] and not not_built and len(written) == 1  # the members are in left_out (narrow)


def test_narrow_records_the_failing_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_zoo.recipes``: every member counted as covered until its model fails; ``narrow`` then
    moves the failing ones to ``left_out`` with the reason and returns the model of the rest."""
    load_script(FIXTURES / "generate.py", "_fixture_generate_zoo")  # puts fixtures/ on sys.path
    import _zoo

    groups = {(2, ""): [("Dense", "one"), ("Bad", "one")], (3, ""): [("Lonely", "one")]}
    monkeypatch.setattr(_zoo, "plan", lambda k: (dict(groups), {"Lambda": "holds a function"}, {}))
    monkeypatch.setattr(_zoo, "trainable_members",
                        lambda k, rank, members, fit: ([m for m in members if m[0] == "Dense"],
                                                       {m[0]: "cannot be trained" for m in members if m[0] != "Dense"}))
    recipes, info, narrow = _zoo.recipes(object())
    assert [r.case for r in recipes] == ["zoo_rank2", "zoo_rank3"]
    assert info["covered"] == {"Dense": "zoo_rank2", "Bad": "zoo_rank2", "Lonely": "zoo_rank3"}
    failed, rest = narrow("zoo_rank2")
    assert failed and rest is not None and rest.case == "zoo_rank2"
    assert info["covered"] == {"Dense": "zoo_rank2", "Lonely": "zoo_rank3"}
    assert info["left_out"] == {"Bad": "cannot be trained", "Lambda": "holds a function"}
    assert narrow("zoo_rank3") == (True, None) and "Lonely" not in info["covered"]
