"""The writer side of the optimizer corpus: every ``opt_*`` full-model file of the corpus
(every optimizer class and variant a release ships, fixtures/_optimizers.py) -> ckptcompat's
``.keras`` writer -> native Keras 3 ``load_model`` (and ``migrate(..., to="h5")`` -> native
Keras 2 ``load_model``): every weight and optimizer slot bitwise,
iterations and learning rate exact, checked on the live optimizer Keras built from our file
(across generations, only inert slots may be absent on one side: ``names.slot_meaning``).

Where the source alone cannot say its optimizer's configuration (Keras 3.15 ``.keras`` keeps
no optimizer config: RMSprop momentum vs centered, SGD's momentum), the writer refuses with
the typed error instead of inventing it; classes the running Keras lacks are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _paths import FIXTURES



def _cases() -> list[dict[str, Any]]:
    path = FIXTURES / "manifest.json"
    if not path.exists():
        return []
    return [fx for fx in json.loads(path.read_text())["fixtures"]
            if str(fx.get("case", "")).startswith("opt_") and fx.get("optimizer")
            and Path(fx["path"]).name in ("model.keras", "model.h5") and (FIXTURES / fx["path"]).exists()]


@pytest.mark.backend
@pytest.mark.parametrize("fx", _cases(), ids=lambda f: f["path"])
def test_corpus_optimizer_through_our_writer_into_native_keras3(fx: dict[str, Any], tmp_path: Path,
                                                                keras: Any) -> None:
    from ckptcompat import runtime
    from ckptcompat.errors import IncompatibleStateError
    from ckptcompat.formats import keras_zip, registry
    from ckptcompat.names.variables import canonical_optimizer_class

    state = registry.read(FIXTURES / fx["path"])
    opt = state.optimizer
    assert opt is not None and state.model_config is not None
    if runtime.flavour().find_optimizer_class(canonical_optimizer_class(opt.class_name)) is None:
        pytest.skip(f"{opt.class_name} does not exist in this Keras")
    out = tmp_path / "out.keras"
    if opt.fits or (opt.class_name == "SGD" and opt.config is None
                    and not opt.hyperparameters.get("momentum") and opt.slots):
        with pytest.raises(IncompatibleStateError):  # never invent a configuration
            keras_zip.write(out, state)
        assert not out.exists()
        return
    keras_zip.write(out, state)
    _same_state(fx, state, runtime.capture(keras.saving.load_model(out)))


@pytest.mark.keras2
@pytest.mark.parametrize("fx", [pytest.param(f, id=f["path"]) for f in _cases()])
def test_corpus_optimizer_migrated_to_h5_into_native_keras2(fx: dict[str, Any], tmp_path: Path,
                                                            keras: Any) -> None:
    """The same for Keras 2: ``migrate(..., to="h5")`` (config translated for this Keras),
    native ``load_model``. An OptimizerV2 Nadam's ``decay`` (its momentum schedule) has no place
    in tf.keras 2.11+'s config and is left out; its slots and step count are compared."""
    import ckptcompat
    from ckptcompat import runtime
    from ckptcompat.formats import registry
    from ckptcompat.names.variables import canonical_optimizer_class

    state = registry.read(FIXTURES / fx["path"])
    opt = state.optimizer
    assert opt is not None
    if runtime.flavour().find_optimizer_class(canonical_optimizer_class(opt.class_name)) is None:
        pytest.skip(f"{opt.class_name} does not exist in this Keras")
    out = tmp_path / "out.h5"
    if opt.fits or (opt.class_name == "SGD" and opt.config is None
                    and not opt.hyperparameters.get("momentum") and opt.slots):
        with pytest.raises(ckptcompat.IncompatibleStateError):  # never invent a configuration
            ckptcompat.migrate(FIXTURES / fx["path"], out, to="h5")
        assert not out.exists()
        return
    ckptcompat.migrate(FIXTURES / fx["path"], out, to="h5")
    _same_state(fx, state, runtime.capture(keras.models.load_model(out)))


def _same_state(fx: dict[str, Any], state: Any, live: Any) -> None:
    """Weights bitwise, iterations and learning rate exact, every slot bitwise; across
    generations only inert slots may come or go: SGD momentum at 0 (never read by the next
    step), Adafactor's all-zero placeholders for variables under 2-D."""
    from ckptcompat.names.slot_meaning import is_inert, is_inert_for_shape

    opt = state.optimizer
    assert set(live.weights) == set(state.weights)
    for name, value in state.weights.items():
        assert live.weights[name].dtype == value.dtype and np.array_equal(live.weights[name], value), name
    assert live.optimizer is not None and live.optimizer.class_name == opt.class_name
    # a producer that saves no step counter (Keras <= 2.2 RMSprop/Adagrad/Adadelta): 0 in the new file
    assert live.optimizer.iterations == (opt.iterations or 0) and opt.iterations == fx["optimizer"]["iterations"]
    assert live.optimizer.learning_rate == pytest.approx(fx["optimizer"]["learning_rate"], rel=1e-7)
    want = {(v, s): a for v, per in opt.slots.items() for s, a in per.items()}
    got = {(v, s): a for v, per in live.optimizer.slots.items() for s, a in per.items()}
    live_only = {k: got[k] for k in set(got) - set(want)}
    file_only = {k: want[k] for k in set(want) - set(got)}
    hyper = {**opt.hyperparameters, **live.optimizer.hyperparameters}
    moving = [k for k, a in {**live_only, **file_only}.items()
              if not is_inert(opt.class_name, k[1], hyper) and (np.any(a) or not is_inert_for_shape(
                  opt.class_name, k[1], a.shape))]
    assert not moving, (live_only, file_only)
    if fx["producer"] == _running_producer() and "/opt_legacy_" not in fx["path"]:
        # same generation: the same slots but placeholders (a legacy OptimizerV2 fixture crosses
        # to the new optimizer, whose SGD keeps momentum slots even at 0)
        assert not [k for k, a in {**live_only, **file_only}.items()
                    if np.any(a) or not is_inert_for_shape(opt.class_name, k[1], a.shape)]
    differ = [k for k in set(want) & set(got) if got[k].shape != want[k].shape or not np.array_equal(got[k], want[k])]
    assert not differ, differ


def _running_producer() -> str:
    from ckptcompat import runtime

    return "tf221-keras3" if runtime.detect() == "keras3" else "tf221-tfkeras"
