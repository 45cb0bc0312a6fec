"""Optimizer variables stored by position only, restored into an optimizer with no positional
order of its own (Keras 2's ``OptimizerV2``: every optimizer before tf.keras 2.11, and
``optimizers.legacy`` after): the Keras 3 creation order comes from the layout tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests._frameworks import keras_flavour
from tests._paths import FIXTURES

pytestmark = pytest.mark.framework

_CASES = ["opt_rmsprop_momentum", "opt_rmsprop_centered", "opt_adam_amsgrad", "opt_sgd_momentum"]


def _entry(case: str) -> dict[str, Any]:
    manifest = json.loads((FIXTURES / "tf221-keras3" / "manifest.json").read_text())
    return next(f for f in manifest["fixtures"] if f["path"] == f"{case}/model.keras")


def _legacy_optimizers() -> Any:
    from ckptcompat import runtime

    optimizers = runtime.keras_module().optimizers
    return getattr(optimizers, "legacy", None) or optimizers  # tf.keras <= 2.10: OptimizerV2 only


@pytest.mark.skipif(keras_flavour() != "keras2", reason="OptimizerV2 exists in Keras 2 only")
@pytest.mark.parametrize("case", _CASES)
def test_keras3_positional_slots_into_an_optimizer_v2(case: str) -> None:
    import ckptcompat
    from tests.matrix.test_resume_table import _compare

    entry = _entry(case)
    path = FIXTURES / "tf221-keras3" / entry["path"]
    opt = entry["optimizer"]
    flags = {k: v for k, v in opt["config"].items()
             if k in ("learning_rate", "momentum", "centered", "amsgrad", "nesterov", "rho",
                      "beta_1", "beta_2", "epsilon")}
    base = ckptcompat.resume(path, compile=False)
    live_opt = getattr(_legacy_optimizers(), opt["class"])(**flags)
    assert hasattr(live_opt, "get_slot_names"), "not an OptimizerV2"
    base.model.compile(optimizer=live_opt, loss="mse")
    run = ckptcompat.resume(path, model=base.model)
    assert _compare(entry, run.model, True) == []
    assert run.report.restored_slots, "no optimizer slot was restored"
