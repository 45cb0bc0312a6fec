"""resume() of a file whose optimizer variables fit several configurations (no optimizer config):
restoring them in full into an optimizer rebuilt from the class's defaults is refused; the ways
on the refusal names, ``partial=True`` and ``optimizer="reset"``, restore the weights and leave
the optimizer fresh (before, ``partial=True`` put the slots that happened to fit into the
default optimizer)."""

from __future__ import annotations

from pathlib import Path

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
