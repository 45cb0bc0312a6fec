"""Layers frozen after the optimizer was built: their slots are left out, said, never refused.

Keras 2 builds a slot for every variable trainable when the optimizer first steps and keeps it
when a layer is frozen later (``trainable=False``); Keras 3 writes its optimizer variables in that
order too. A model rebuilt now has an optimizer that trains only the unfrozen variables (Keras
3.1+ and tf-keras build none for a frozen one): before, ``resume`` refused the whole optimizer
("unexpected optimizer slot ... the model has no such variable", or for a ``.keras`` "expected 6
optimizer variables, the file has 10") -- also on a real TF 2.5 SavedModel
(6sephiruth/NID, tests/corpora/test_real_saved_models.py). The frozen variables' slots take no
part in a step while they stay frozen: they are left out with a warning and in the report, the
rest is restored exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_module, running_keras30
from ckptcompat.runtime import capture

pytestmark = pytest.mark.framework


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    keras = keras_module()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(1, name="b")])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x, y = np.random.rand(8, 4).astype("float32"), np.random.rand(8, 1).astype("float32")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)  # the optimizer is built with a and b
    model.get_layer("a").trainable = False
    model.compile(model.optimizer, "mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    root = tmp_path_factory.mktemp("frozen")
    for name in ("model.keras", "model.h5"):
        model.save(str(root / name))
    return root, model


@pytest.mark.parametrize("name", ["model.keras", "model.h5"])
def test_slots_of_a_layer_frozen_after_building_are_left_out_and_said(
        frozen: tuple[Path, Any], name: str, caplog: pytest.LogCaptureFixture) -> None:
    root, model = frozen
    want = capture(model)
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        result = ckptcompat.resume(root / name)
    got = capture(result.model)
    assert set(got.weights) == set(want.weights)
    assert all(np.array_equal(got.weights[n], w) for n, w in want.weights.items())
    assert got.optimizer.iterations == want.optimizer.iterations == 6
    trained = {f"b/{v}/{s}" for v in ("kernel", "bias") for s in ("m", "v")}
    frozen_slots = {f"a/{v}/{s}" for v in ("kernel", "bias") for s in ("m", "v")}
    warned = [r.getMessage() for r in caplog.records if "frozen layers" in r.getMessage()]
    dropped = {t.split(":")[0] for t in result.report.translated if "does not train" in t}
    if running_keras30():  # Keras 3.0's optimizer builds slots for a frozen layer's variables too
        assert set(result.report.restored_slots) == trained | frozen_slots and not warned and not dropped
    else:
        assert set(result.report.restored_slots) == trained
        assert len(warned) == 1 and all(s in warned[0] for s in frozen_slots), warned
        assert dropped == {f"dropped {s}" for s in frozen_slots}
    for slot in result.report.restored_slots:
        var, _, kind = slot.rpartition("/")
        assert np.array_equal(got.optimizer.slots[var][kind], want.optimizer.slots[var][kind]), slot


@pytest.mark.parametrize("source", ["model.keras", "model.h5"])
@pytest.mark.parametrize("to", ["keras3", "h5"])
def test_migrate_keeps_the_frozen_layers_slots(frozen: tuple[Path, Any], source: str, to: str,
                                               tmp_path: Path) -> None:
    """``migrate`` writes the optimizer variables as Keras wrote them (every variable trainable when
    the optimizer was built, the frozen ones' slots too) and reads every tensor back bitwise;
    before, both writers refused the frozen variables' slots ("slot the target optimizer does
    not have")."""
    root, model = frozen
    out = tmp_path / ("out.keras" if to == "keras3" else "out.h5")
    report = ckptcompat.migrate(root / source, out, to=to)
    assert report.verified and report.iterations == 6
    back = ckptcompat.read(out)
    assert {f"{v}/{s}" for v, per in back.optimizer.slots.items() for s in per} == \
        {f"{layer}/{v}/{s}" for layer in ("a", "b") for v in ("kernel", "bias") for s in ("m", "v")}
    want = capture(model)
    result = ckptcompat.resume(out)
    got = capture(result.model)
    for slot in result.report.restored_slots:
        var, _, kind = slot.rpartition("/")
        assert np.array_equal(got.optimizer.slots[var][kind], want.optimizer.slots[var][kind]), slot
    assert len(result.report.restored_slots) == (8 if running_keras30() else 4)


def _frozen_later(keras: Any, optimizer: Any, before: tuple[str, ...] = ()) -> Any:
    """Dense a, b, c trained with ``optimizer``; the layers in ``before`` frozen from the start, a
    frozen after the optimizer was built."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), *[keras.layers.Dense(3, name=n) for n in ("a", "b")],
                              keras.layers.Dense(1, name="c")])
    for name in before:
        model.get_layer(name).trainable = False
    model.compile(optimizer, "mse")
    x, y = np.random.rand(8, 4).astype("float32"), np.random.rand(8, 1).astype("float32")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.get_layer("a").trainable = False
    model.compile(model.optimizer, "mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return model


def _same_slots(result: Any, model: Any) -> None:
    want, got = capture(model), capture(result.model)
    assert result.report.restored_slots
    for slot in result.report.restored_slots:
        var, _, kind = slot.rpartition("/")
        assert np.array_equal(got.optimizer.slots[var][kind], want.optimizer.slots[var][kind]), slot


def test_a_loss_scale_wrapped_optimizer_frozen_later_writes_and_resumes(tmp_path: Path) -> None:
    """Keras 3's LossScaleOptimizer keeps the inner optimizer's variables in build order too: the
    ``.keras`` writer lays them out so, and the reader takes that layout for the wrapped optimizer."""
    keras = keras_module()
    if not hasattr(keras.optimizers, "LossScaleOptimizer") or not hasattr(keras, "version"):
        pytest.skip("Keras 3's LossScaleOptimizer")
    model = _frozen_later(keras, keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01)))
    ckptcompat.formats.write(tmp_path / "m.keras", capture(model), format="keras_zip")
    result = ckptcompat.resume(tmp_path / "m.keras")
    _same_slots(result, model)
    assert len(result.report.restored_slots) == (12 if running_keras30() else 8)


def test_a_layer_frozen_from_the_start_beside_one_frozen_later(tmp_path: Path) -> None:
    """b frozen before the optimizer was built (no slots), a after (slots kept): the writers lay out
    a's slots and not b's; the legacy .h5 (slots by name) resumes and migrates .h5 -> .h5 bitwise."""
    keras = keras_module()
    model = _frozen_later(keras, keras.optimizers.Adam(0.01), before=("b",))
    model.save(str(tmp_path / "m.h5"))
    report = ckptcompat.migrate(tmp_path / "m.h5", tmp_path / "again.h5", to="h5")
    assert report.verified
    for name in ("m.h5", "again.h5"):
        result = ckptcompat.resume(tmp_path / name)
        _same_slots(result, model)
        kept = sorted(n for n in result.report.translated if n.startswith("kept "))
        if running_keras30():  # its layers rebuilt with trainable=False keep trainable variables: the
            # rebuilt optimizer has slots for a (restored from the file, which kept them) and for b,
            # which the file never had: left as built, reported
            assert {s.split("/")[0] for s in result.report.restored_slots} == {"a", "c"}
            assert kept and all(n.startswith(("kept b/kernel/", "kept b/bias/")) for n in kept), kept
        else:
            assert {s.split("/")[0] for s in result.report.restored_slots} == {"c"} and not kept
