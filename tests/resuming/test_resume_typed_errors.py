"""resume() on real files whose config this Keras cannot rebuild: a typed error, never a raw one."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptcompat
from ckptcompat.errors import CkptCompatError

pytestmark = pytest.mark.framework

#: real files that raised AttributeError / ValueError out of resume() before (Keras 3 run):
#: Keras 1.x / 2.1 list configs, a loss config Keras 3 refuses, a metrics config it cannot read
FILES = ["0xArt__CryptoANN/model.h5", "snolot__keras-train-test/sentiment_model.h5",
         "AdamVarden__EmergingTechProject/model.h5",
         "msherrif04__fetal-wellbeing-classification/checkpoint.model.keras"]


@pytest.mark.parametrize("rel", FILES)
def test_real_file_resumes_or_raises_a_typed_error(real_checkpoints: Path, rel: str) -> None:
    path = real_checkpoints / rel
    try:
        run = ckptcompat.resume(path)
    except CkptCompatError as exc:  # typed, and it names the file
        assert str(path) in str(exc) or Path(rel).name in str(exc)
    else:
        assert run.model is not None and run.report.matching == "name"
