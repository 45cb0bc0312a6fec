"""Every keras_h5 fixture with an optimizer -> our reader -> our writer -> native Keras 2 load_model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _keras_h5_manifest import manifest_entries  # noqa: E402
from _paths import is_corpus  # noqa: E402

from ckptcompat._compat import removeprefix
from ckptcompat.formats import keras_h5  # noqa: E402
from ckptcompat.names.optimizer_layouts import is_optimizer_v2_config  # noqa: E402

#: the corpus (writer coverage beyond the core cases is an open gap of issue #13) and files
#: whose release saved no step counter (Keras <= 2.2 RMSprop) are left out
ENTRIES = [(p, e) for p, e in manifest_entries() if e.get("kind") != "weights" and e.get("optimizer")
           and not is_corpus(e) and e["optimizer"].get("iterations") is not None]


@pytest.mark.keras2
@pytest.mark.parametrize("path,entry", ENTRIES, ids=[str(p.relative_to(p.parents[2])) for p, _ in ENTRIES])
def test_round_trip_native_load(keras, tmp_path: Path, path: Path, entry: dict) -> None:
    state = keras_h5.read(path)
    out = tmp_path / "out.h5"
    keras_h5.write(out, state)
    model = keras.models.load_model(out)
    names = [f"{layer.name}/{w.name.split('/')[-1].split(':')[0]}" for layer in model.layers
             for w in layer.weights]
    loaded = dict(zip(names, (w.numpy() for layer in model.layers for w in layer.weights)))
    for name, value in state.weights.items():
        if name in loaded:
            assert np.array_equal(loaded[name], value), name
    flat = [w.numpy() for w in model.weights]
    assert len(flat) == len(state.weights)
    assert all(np.array_equal(a, b) for a, b in zip(flat, state.weights.values()))
    opt = model.optimizer
    # an OptimizerV2 source (not standalone Keras's) is written as its release writes it: loaded
    # as a legacy optimizer
    legacy = hasattr(opt, "_hyper")
    own = state.optimizer.keras_config()["config"]  # tf.keras before OptimizerV2 (TF <= 1.13) writes lr
    assert legacy == (state.producer.framework != "keras" and "lr" not in own and is_optimizer_v2_config(
        own, state.optimizer.hyperparameters))
    assert int(opt.iterations.numpy()) == state.optimizer.iterations == entry["optimizer"]["iterations"]
    assert float(opt.learning_rate.numpy()) == entry["optimizer"]["learning_rate"]
    variables = opt.weights if legacy else opt.variables() if callable(opt.variables) else opt.variables
    prefix = (opt._name if legacy else opt.name) + "/"
    by_name = {removeprefix(v.name.split(":")[0], prefix): v.numpy() for v in variables}
    native = {keras_h5.canonical_from_raw(layer.name, w.name): w.name.split(":")[0]
              for layer in model.layers for w in layer.weights}
    for var, per in state.optimizer.slots.items():
        for slot, value in per.items():
            raw = {"momentum": "m"}.get(slot, slot) if state.optimizer.class_name == "SGD" else \
                {"rms": "velocity", "mg": "average_gradient"}.get(slot, slot)
            got = by_name.get(f"{native[var]}/{slot}" if legacy else f"{raw}/{native[var]}")
            assert got is not None, (var, slot, sorted(by_name))
            assert np.array_equal(got, value), (var, slot)
