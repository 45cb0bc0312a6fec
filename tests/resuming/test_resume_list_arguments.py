"""Optimizer arguments that are lists (Keras 3's ``Muon(exclude_layers=[...])``, which decides
which variables get Adam's ``velocity``) survive the Checkpoint store: the captured config kept
them but the ``.keras`` writer built its config from the scalar hyper-parameters only (it
expected no ``velocity`` where Muon had one: ``fit`` stopped), and ``resume`` rebuilt the
optimizer without them (the slots no longer fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_flavour, keras_module

pytestmark = pytest.mark.framework


def test_muon_exclude_layers_resumes_bitwise(tmp_path: Path) -> None:
    keras = keras_module()
    if keras_flavour() != "keras3" or not hasattr(keras.optimizers, "Muon"):
        pytest.skip("Keras 3's Muon")
    from ckptcompat.callbacks import Checkpoint

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(1, name="d2")])
    model.compile(keras.optimizers.Muon(learning_rate=0.01, exclude_layers=["d1"], exclude_embeddings=False), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[Checkpoint(str(tmp_path / "store"), save_freq="epoch")])
    velocities = sorted(v.path for v in model.optimizer.variables if v.path.endswith("velocity"))
    assert any("d1_kernel" in p for p in velocities)  # the excluded 2-D kernel gets Adam's velocity
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    run = ckptcompat.resume(tmp_path / "store")
    opt = run.model.optimizer
    assert opt.get_config()["exclude_layers"] == ["d1"] and int(np.asarray(opt.iterations)) == 8
    run.model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert [np.asarray(w).tobytes() for w in run.model.get_weights()] == \
        [np.asarray(w).tobytes() for w in model.get_weights()]
