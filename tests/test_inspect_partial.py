"""inspect reports what it can read of a file whose optimizer part does not fit (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptcompat.cli.commands import EXIT_OK, main
from ckptcompat.inspection import inspect

#: real files whose optimizer variables fit no known layout, with their weight count
CASES = [("ikukang__DeepLearningWithPythonKeras/mnist_cnn.h5", 10)]


@pytest.mark.parametrize("rel,weights", CASES)
def test_optimizer_misfit_still_reports_the_weights(real_checkpoints: Path, rel: str, weights: int,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = real_checkpoints / rel
    info = inspect(path)
    assert info.weight_count == weights and info.optimizer is None
    assert info.unreadable == ("optimizer",)
    assert info.problems and all(p.startswith("optimizer: ") for p in info.problems)
    assert main(["inspect", str(path), "--json"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["unreadable"] == ["optimizer"] and out["problems"] == list(info.problems)
    assert out["weight_count"] == weights
    assert main(["inspect", str(path)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["unreadable", "optimizer"] for line in lines)


@pytest.mark.parametrize("rel", ["BilleChu__dnn-test-tensorflow",
                                 # its Keras 2.15 Adam layout once fit nothing; now it reads in full
                                 "Abhaypandy__ANN-classification-churn-prediction/model.keras"])
def test_readable_file_has_no_problems(real_checkpoints: Path, rel: str) -> None:
    info = inspect(real_checkpoints / rel)
    assert info.to_dict()["unreadable"] == [] and info.to_dict()["problems"] == []
