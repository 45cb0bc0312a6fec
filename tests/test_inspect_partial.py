"""inspect reports what it can read of a file whose optimizer part does not fit (real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptcompat.cli.commands import EXIT_OK, main
from ckptcompat.inspection import inspect

#: a real Keras 2.3.1 file (10 weights, RMSprop) whose every optimizer weight now reads
REAL = "ikukang__DeepLearningWithPythonKeras/mnist_cnn.h5"


def test_optimizer_misfit_still_reports_the_weights(optimizer_misfit_h5: Path, capsys: pytest.CaptureFixture[str]) -> None:
    misfit = optimizer_misfit_h5
    weights = 10
    info = inspect(misfit)
    assert info.weight_count == weights and info.optimizer is None
    assert info.unreadable == ("optimizer",)
    assert info.problems and all(p.startswith("optimizer: ") for p in info.problems)
    assert any("mystery_slot" in p for p in info.problems)
    assert main(["inspect", str(misfit), "--json"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["unreadable"] == ["optimizer"] and out["problems"] == list(info.problems)
    assert out["weight_count"] == weights
    assert main(["inspect", str(misfit)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["unreadable", "optimizer"] for line in lines)


@pytest.mark.parametrize("rel", ["BilleChu__dnn-test-tensorflow",
                                 # their optimizer layouts once fit nothing; now they read in full
                                 "Abhaypandy__ANN-classification-churn-prediction/model.keras", REAL])
def test_readable_file_has_no_problems(real_checkpoints: Path, rel: str) -> None:
    info = inspect(real_checkpoints / rel)
    assert info.to_dict()["unreadable"] == [] and info.to_dict()["problems"] == []
