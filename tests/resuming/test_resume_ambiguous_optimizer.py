"""resume() of a file whose optimizer variables fit several configurations (no optimizer config):
restoring them in full into an optimizer rebuilt from the class's defaults is refused; the ways
on the refusal names, ``partial=True`` and ``optimizer="reset"``, restore the weights and leave
the optimizer fresh (before, ``partial=True`` put the slots that happened to fit into the
default optimizer)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from ckptcompat.errors import IncompatibleStateError

pytestmark = pytest.mark.framework

# a Keras 3.15 .keras saved after a .h5 of the same model (no optimizer config): RMSprop with
# momentum and centered RMSprop keep the same variables (tests/formats/test_formats_keras_zip.py)
FILE = Path(__file__).resolve().parents[2] / "fixtures" / "tf221-keras3" / "opt_rmsprop_momentum" / "model.keras"


def test_config_less_rmsprop_is_refused_in_full_and_reset_with_partial() -> None:
    with pytest.raises(IncompatibleStateError, match=r"RMSprop\(momentum>0\) or RMSprop\(centered=True\)"):
        ckptcompat.resume(FILE, initial_epoch=2)
    saved = sorted(np.asarray(v).tobytes() for v in ckptcompat.read(FILE).weights.values())
    for way in ({"partial": True}, {"optimizer": "reset"}):
        run = ckptcompat.resume(FILE, initial_epoch=2, **way)
        assert run.report.optimizer_reset and run.report.restored_slots == (), way
        assert sorted(np.asarray(v).tobytes() for v in run.model.weights) == saved, way


def test_compile_false_with_partial_reports_no_reset() -> None:
    """``compile=False``: no optimizer is rebuilt, so none is reset either (the report said so)."""
    run = ckptcompat.resume(FILE, initial_epoch=2, compile=False, partial=True)
    assert getattr(run.model, "optimizer", None) is None and not run.report.optimizer_reset


def _config_less(tmp_path: Path, optimizer: Any) -> tuple[Any, Path, Any]:
    """(keras, a Keras 3 ``.keras`` saved after a ``.h5`` of the same model, the trained model);
    skipped where the running Keras records the optimizer config there."""
    import json
    import zipfile

    from _frameworks import keras_flavour, keras_module

    if keras_flavour() != "keras3":
        pytest.skip("Keras 3's .keras")
    keras = keras_module()
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer(keras), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(str(tmp_path / "m.h5"))
    model.save(str(tmp_path / "m.keras"))
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        if "optimizer" in (json.loads(archive.read("config.json")).get("compile_config") or {}):
            pytest.skip("this Keras records the optimizer config")
        if "name" not in h5py_attrs(archive):
            pytest.skip("this Keras records not even the optimizer class there (3.0, 3.1)")
    return keras, tmp_path / "m.keras", model


def h5py_attrs(archive: Any) -> Any:
    import io

    import h5py

    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        return dict(weights["optimizer/vars"].attrs)


def test_config_less_sgd_momentum_value_is_not_guessed(tmp_path: Path) -> None:
    """SGD's momentum slots show momentum > 0, not its value: it was rebuilt as momentum=0.9
    without a word (found by review). Now the fit is named and a rebuild refused; into the run's
    own optimizer (``model=``) everything resumes bitwise."""
    keras, path, saved = _config_less(tmp_path, lambda k: k.optimizers.SGD(0.01, momentum=0.5))
    fit = "SGD(momentum=<a value > 0 the file does not record>)"
    assert ckptcompat.read(path).optimizer.fits == (fit,)
    with pytest.raises(IncompatibleStateError, match=re.escape(fit)):
        ckptcompat.resume(path, initial_epoch=2)
    model = ckptcompat.resume(path, compile=False, initial_epoch=2).model
    model.compile(keras.optimizers.SGD(0.01, momentum=0.5), "mse")
    ckptcompat.resume(path, model=model, initial_epoch=2)
    assert [np.asarray(v).tobytes() for v in model.optimizer.variables] == \
        [np.asarray(v).tobytes() for v in saved.optimizer.variables]


def test_config_less_adam_says_its_arguments_are_defaults(tmp_path: Path, caplog: Any) -> None:
    """Adam's variables show amsgrad, not beta_1: rebuilt with the running Keras's defaults, which
    is said (a warning naming the way on), not done silently."""
    _, path, _ = _config_less(tmp_path, lambda k: k.optimizers.Adam(0.01, beta_1=0.5))
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(path, initial_epoch=2)
    assert run.report.restored_slots
    assert any("rebuilt with the running Keras's defaults" in r.getMessage() and "model=" in r.getMessage()
               for r in caplog.records)
