"""The generated optimizer-layout tables against the running Keras 3 release (any backend).

``tools/optimizer_layouts.py`` wrote one table per Keras 3 release; here the running release's
own Nadam decides where it keeps ``u_product`` (3.0-3.9 create it before the slots, 3.10+ after),
and a Nadam state written for this release by ``migrate`` loads with its own ``load_model``,
every optimizer variable bitwise. The matrix runs this on Keras 3.0 and 3.8 (tf216-keras30/38)
and 3.15 (the README environment, JAX, torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _frameworks import keras_backend

pytestmark = [pytest.mark.backend, pytest.mark.skipif(keras_backend() is None, reason="needs Keras 3")]

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "optimizers" / "keras-3.15" / "keras3-Nadam-default"


def _nadam_built() -> tuple[object, list[object]]:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    opt = keras.optimizers.Nadam()
    opt.build(model.trainable_variables)
    return opt, list(opt.variables)


def test_the_running_release_keeps_u_product_where_its_table_says() -> None:
    import keras

    from ckptcompat.names.optimizer_layouts import u_product_first

    opt, variables = _nadam_built()
    slots = {id(v) for v in [*opt._momentums, *opt._velocities]}
    place = [i for i, v in enumerate(variables) if v is opt._u_product][0]
    first_slot = min(i for i, v in enumerate(variables) if id(v) in slots)
    assert u_product_first(keras.__version__) == (place < first_slot), keras.__version__


def test_nadam_migrated_for_the_running_release_loads_natively(tmp_path: Path) -> None:
    """A Keras 3.15 Nadam run (real file) migrated to a .keras of the running release: its own
    ``load_model`` restores every optimizer variable (Keras 3.1-3.9 refused u_product last)."""
    import keras

    import ckptcompat
    from ckptcompat.formats import keras_zip

    src = SAMPLE / "model.keras"
    state = keras_zip.read(src)
    ckptcompat.migrate(src, tmp_path / "m.keras", to="keras3")
    model = keras.models.load_model(tmp_path / "m.keras")
    opt = model.optimizer
    assert int(np.asarray(opt.iterations)) == state.optimizer.iterations == 3
    assert np.asarray(opt._u_product).tobytes() == np.asarray(state.optimizer.extra["u_product"]).tobytes()
    names = {id(w): f"{layer.name}/{w.name.split('/')[-1].split(':')[0]}"
             for layer in model.layers for w in layer.trainable_weights}
    assert len(opt._momentums) == len(names) == len(state.optimizer.slots) > 0
    for var, m, v in zip(model.trainable_variables, opt._momentums, opt._velocities):
        slots = state.optimizer.slots[names[id(var)]]
        assert np.asarray(m).tobytes() == np.asarray(slots["m"]).tobytes(), names[id(var)]
        assert np.asarray(v).tobytes() == np.asarray(slots["v"]).tobytes(), names[id(var)]
