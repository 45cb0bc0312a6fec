"""resume(path, model=fresh) when Keras auto-named the fresh model's layers differently.

The checkpoints are written by the running release itself (native ``.keras``, ``.h5``,
``.weights.h5``, TF-format weights) or by ckptcompat's ``Checkpoint``; the fresh model is the
same architecture built after two throw-away builds, so every generated layer name differs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from ckptcompat.errors import IncompatibleStateError, InvalidArgumentError
from _frameworks import keras_flavour

pytestmark = pytest.mark.framework


def _build(keras: Any, *, width: int = 3, amsgrad: bool = False, optimizer: Any = None) -> Any:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(0.01, amsgrad=amsgrad), loss="mse")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((32, 4), dtype=np.float32), rng.random((32, 2), dtype=np.float32)


def _fresh(keras: Any, original: Any, **kwargs: Any) -> Any:
    _build(keras), _build(keras)  # the notebook built it twice before: other generated names
    model = _build(keras, **kwargs)
    assert {w.name for w in model.layers}.isdisjoint({w.name for w in original.layers})
    return model


def _truth(model: Any) -> tuple[list[bytes], list[bytes], int, float]:
    """Weights and slots in model order (names differ), iterations, learning rate."""
    from ckptcompat import runtime

    state = runtime.capture(model)
    opt = state.optimizer
    assert opt is not None
    slots = [np.asarray(v).tobytes() for per in opt.slots.values() for _, v in sorted(per.items())]
    return ([np.asarray(v).tobytes() for v in state.weights.values()], slots,
            int(opt.iterations or 0), float(opt.learning_rate or 0.0))


def _writers() -> list[str]:
    if keras_flavour() == "keras3":
        return ["store", "keras", "h5", "weights.h5"]
    return ["store", "keras", "h5", "weights.h5", "tf"]


def _write(keras: Any, kind: str, tmp_path: Path, *, clear: bool = False) -> tuple[Any, Path]:
    from ckptcompat.callbacks import Checkpoint

    if clear:
        keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = _build(keras)
    x, y = _data()
    callbacks = [Checkpoint(tmp_path / "store")] if kind == "store" else []
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks)
    if kind == "store":
        return model, tmp_path / "store"
    target = {"keras": "model.keras", "h5": "model.h5", "weights.h5": "model.weights.h5",
              "tf": "weights"}[kind]
    path = tmp_path / target
    if kind in ("weights.h5", "tf"):
        model.save_weights(str(path))
    else:
        model.save(str(path))
    return model, path


@pytest.mark.parametrize("kind", _writers())
def test_fresh_model_with_other_names_resumes_exactly(keras, tmp_path, kind) -> None:
    original, path = _write(keras, kind, tmp_path)
    fresh = _fresh(keras, original)
    run = ckptcompat.resume(path, model=fresh)
    assert run.report.matching == "structure"
    from ckptcompat import runtime

    mapped = dict(run.report.by_structure)
    assert sorted(mapped.values()) == sorted(runtime.capture(fresh).weights)
    assert len(mapped) == 8 and not run.report.skipped
    if kind == "weights.h5" and ckptcompat.read(path).optimizer is None:  # tf.keras 2.11: the weights are all there is
        assert _truth(fresh)[0] == _truth(original)[0] and not run.report.restored_slots
        return
    assert _truth(fresh) == _truth(original)


@pytest.mark.keras3
def test_native_load_weights_agrees(keras, tmp_path) -> None:
    """What Keras 3 itself does with the fresh model is what resume does."""
    original, path = _write(keras, "keras", tmp_path)
    fresh, native = _fresh(keras, original), _build(keras)
    native.load_weights(str(path))
    ckptcompat.resume(path, model=fresh)
    assert [w.numpy().tobytes() for w in fresh.weights] == [w.numpy().tobytes() for w in native.weights]


def test_same_names_still_match_by_name(keras, tmp_path) -> None:
    original, path = _write(keras, "store", tmp_path, clear=True)
    from ckptcompat import runtime

    state = runtime.capture(original)
    keras.backend.clear_session()
    model = _build(keras)
    assert set(runtime.capture(model).weights) == set(state.weights)
    run = ckptcompat.resume(path, model=model)
    assert run.report.matching == "name" and run.report.by_structure == ()
    assert _truth(model) == _truth(original)


@pytest.mark.parametrize("kind", ["store", "h5"])
def test_other_architecture_lists_every_misfit(keras, tmp_path, kind) -> None:
    original, path = _write(keras, kind, tmp_path)
    fresh = _fresh(keras, original, width=5)
    before = [w.numpy().tobytes() for w in fresh.weights]
    with pytest.raises(IncompatibleStateError) as info:
        ckptcompat.resume(path, model=fresh)
    text = str(info.value)
    assert "neither by name nor by structure" in text
    assert "unexpected weight" in text and "missing weight" in text
    # the structure misfits name the layers and shapes that differ
    assert f"{original.layers[0].name}' vs model '{fresh.layers[0].name}'" in text
    assert "kernel shape (4, 3) vs (4, 5)" in text and "gamma shape (3,) vs (5,)" in text
    assert [w.numpy().tobytes() for w in fresh.weights] == before  # nothing assigned


def test_optimizer_misfit_gives_the_way_on(keras, tmp_path) -> None:
    original, path = _write(keras, "store", tmp_path)
    fresh = _fresh(keras, original, optimizer=keras.optimizers.Adagrad(0.01))
    with pytest.raises(IncompatibleStateError) as info:
        ckptcompat.resume(path, model=fresh)
    text = str(info.value)
    assert "weights fit the model but the optimizer state does not" in text
    assert 'optimizer="reset"' in text and "partial=True" in text
    assert "class differs: checkpoint Adam, model Adagrad" in text


def test_optimizer_reset(keras, tmp_path, caplog) -> None:
    original, path = _write(keras, "store", tmp_path)
    fresh = _fresh(keras, original, optimizer=keras.optimizers.SGD(0.5))
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(path, model=fresh, optimizer="reset")
    assert run.report.optimizer_reset and run.report.restored_slots == ()
    assert any('optimizer="reset"' in r.getMessage() for r in caplog.records)
    assert run.initial_epoch == 2
    assert _truth(fresh)[0] == _truth(original)[0]
    assert int(fresh.optimizer.iterations.numpy()) == 0
    assert float(np.asarray(fresh.optimizer.learning_rate)) == pytest.approx(0.5)
    with pytest.raises(InvalidArgumentError):
        ckptcompat.resume(path, model=fresh, optimizer="fresh")


def test_partial_restores_what_fits_and_reports_the_rest(keras, tmp_path) -> None:
    original, path = _write(keras, "store", tmp_path)
    fresh = _fresh(keras, original, optimizer=keras.optimizers.Adagrad(0.01))
    run = ckptcompat.resume(path, model=fresh, partial=True)
    assert dict(run.report.skipped) == {"optimizer": "class differs: checkpoint Adam, model Adagrad"}
    assert run.report.restored_slots == ()
    assert _truth(fresh)[0] == _truth(original)[0]


def test_amsgrad_switched_on_is_translated_not_refused(keras, tmp_path) -> None:
    """Adam without amsgrad -> Adam(amsgrad=True): vhat never existed, so it starts at zero
    (translated by meaning) and every other slot is restored exactly."""
    original, path = _write(keras, "store", tmp_path)
    fresh = _fresh(keras, original, amsgrad=True)
    run = ckptcompat.resume(path, model=fresh)
    trainable = len(original.trainable_weights)
    assert run.report.matching == "structure" and len(run.report.restored_slots) == 3 * trainable
    created = [n for n in run.report.translated if n.startswith("created ") and "/vhat" in n]
    assert len(created) == trainable, run.report.translated
    weights, _, iterations, lr = _truth(original)
    assert _truth(fresh)[0] == weights and _truth(fresh)[2:] == (iterations, lr)


def test_unknown_epoch_warns_and_accepts_initial_epoch(keras, tmp_path, caplog) -> None:
    original, path = _write(keras, "h5", tmp_path)  # 2 epochs x 4 steps, no epoch recorded
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(path, model=_fresh(keras, original))
    assert (run.initial_epoch, run.source.epoch_source) == (0, "unknown")
    assert any("epoch is not recorded" in r.getMessage() and "initial_epoch=" in r.getMessage()
               for r in caplog.records)
    run = ckptcompat.resume(path, model=_build(keras), initial_epoch=5)
    assert (run.initial_epoch, run.source.epoch_source) == (5, "initial_epoch")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(path, model=_build(keras), steps_per_epoch=4)
    assert (run.initial_epoch, run.initial_step, run.source.epoch_source) == (2, 0, "iterations")
    assert any("inferred epoch 2" in r.getMessage() for r in caplog.records)
    from ckptcompat.data import ArrayData

    x, y = _data()
    run = ckptcompat.resume(path, model=_build(keras), data=ArrayData(x, y, batch_size=8, seed=1))
    assert (run.initial_epoch, run.source.epoch_source) == (2, "iterations")  # len(data) == 4
    with pytest.raises(InvalidArgumentError):
        ckptcompat.resume(path, model=_build(keras), steps_per_epoch=0)


def _nested(keras: Any) -> Any:
    """Functional model: Embedding -> Bidirectional(LSTM) -> nested Sequential -> Dense."""
    inputs = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(10, 4)(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(3))(h)
    head = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(4)])
    outputs = keras.layers.Dense(1)(head(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(0.01, momentum=0.5), loss="mse")
    return model


@pytest.mark.parametrize("kind", ["store", "keras"])
def test_nested_and_recurrent_layers_match_by_structure(keras, tmp_path, kind) -> None:
    from ckptcompat.callbacks import Checkpoint

    keras.utils.set_random_seed(0)
    original = _nested(keras)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 10, (16, 5)).astype("int32"), rng.random((16, 1), dtype=np.float32)
    original.fit(x, y, epochs=1, batch_size=4, verbose=0,
                 callbacks=[Checkpoint(tmp_path / "store")] if kind == "store" else [])
    path = tmp_path / "store"
    if kind == "keras":
        path = tmp_path / "m.keras"
        original.save(str(path))
    _nested(keras), _nested(keras)
    fresh = _nested(keras)
    run = ckptcompat.resume(path, model=fresh)
    assert run.report.matching == "structure" and not run.report.skipped
    assert len(run.report.by_structure) == len(fresh.weights)
    assert _truth(fresh) == _truth(original)


@pytest.mark.keras2
def test_legacy_weights_h5_matches_by_structure(keras, tmp_path) -> None:
    """Keras 2 ``save_weights("w.h5")``: weights only (no optimizer in the file)."""
    keras.utils.set_random_seed(0)
    original = _build(keras)
    x, y = _data()
    original.fit(x, y, epochs=1, batch_size=8, verbose=0)
    original.save_weights(str(tmp_path / "w.h5"))
    fresh = _fresh(keras, original)
    run = ckptcompat.resume(tmp_path / "w.h5", model=fresh)
    assert run.report.matching == "structure" and len(run.report.by_structure) == 8
    assert [w.numpy().tobytes() for w in fresh.weights] == [w.numpy().tobytes() for w in original.weights]


def test_generation_spellings_of_one_variable_pair_by_structure_only_there() -> None:
    """Keras 3 DepthwiseConv ``kernel`` is Keras 2's ``depthwise_kernel``: the structure matcher
    pairs them for that class only, and a config-less read takes the live spelling."""
    from ckptcompat.resuming.match import _same_leaf
    from ckptcompat.names.variables import respell

    assert _same_leaf("kernel", "depthwise_kernel", "DepthwiseConv2D")
    assert _same_leaf("depthwise_kernel", "kernel", "DepthwiseConv1D")
    assert not _same_leaf("kernel", "depthwise_kernel", "SeparableConv2D")
    assert not _same_leaf("kernel", "bias", "DepthwiseConv2D")
    live = {"dw/depthwise_kernel": (2, 2, 3, 1), "dw/bias": (3,)}
    assert respell("dw/kernel", live, taken={"dw/kernel": 0, "dw/bias": 0}) == "dw/depthwise_kernel"
    assert respell("dw/bias", live, taken={}) == "dw/bias"
    assert respell("dw/kernel", {"dw/kernel": (1,)}, taken={}) == "dw/kernel"
    # never onto a name the file itself holds
    assert respell("dw/kernel", live, taken={"dw/kernel": 0, "dw/depthwise_kernel": 0}) == "dw/kernel"


def test_flat_tf1_cell_weights_pair_with_the_live_cells() -> None:
    """tf.keras 2.2.4-tf (TF 1.15) holds the weights of a ``StackedRNNCells``' cells flat
    (``kernel``, ``kernel_1``: suffix N = cell N); the live walk names them per cell: paired by
    cell index, leaf and shape, every other variable by its name (found by TF 1.15's layer zoo,
    in an ``.h5`` and in a config-less TF bundle listing layers in another order)."""
    from ckptcompat.resuming.match import LiveLayer, match_state
    from ckptcompat.state import TrainingState

    shapes = {"kernel": (4, 2), "recurrent_kernel": (2, 2), "bias": (2,)}
    second = {**shapes, "kernel": (2, 2)}
    weights = {"a/kernel": np.zeros((2, 2))}
    weights.update({f"s/{n}": np.zeros(shapes[n]) for n in shapes})
    weights.update({f"s/{n}_1": np.zeros(second[n]) for n in shapes})
    live = {f"s/cells/c0/{n}": shapes[n] for n in shapes}
    live.update({f"s/cells/c1/{n}": second[n] for n in shapes})
    live["a/kernel"] = (2, 2)  # the model's order differs from the file's
    layers = [LiveLayer("s", "RNN"), LiveLayer("a", "Dense")]
    found = match_state(TrainingState(weights=weights), live, layers)
    assert found.method == "structure" and not found.misfits
    assert set(found.state.weights) == set(live)
    assert found.mapping["s/kernel_1"] == "s/cells/c1/kernel" and found.mapping["s/bias"] == "s/cells/c0/bias"
    assert found.state.weights["a/kernel"] is weights["a/kernel"]  # kept by name


def test_leftover_pairing_never_guesses() -> None:
    """What the flat-cell rule must not pair (each refused before it, still refused): layers whose
    generated names shifted (``dense`` -> ``dense_1``: names are not identity), numbered weights
    of a renamed layer listed alphabetically (``w_10`` is not ``w_2``), a cell index or shape that
    does not fit."""
    from ckptcompat.resuming.match import LiveLayer, match_state
    from ckptcompat.state import TrainingState

    shifted = TrainingState(weights={"batch_normalization/gamma": np.zeros(8), "dense/kernel": np.zeros((8, 8)),
                                     "dense_1/kernel": np.zeros((8, 8)), "dense_2/kernel": np.zeros((8, 2))})
    live = {"dense_1/kernel": (8, 8), "batch_normalization_1/gamma": (8,), "dense_2/kernel": (8, 8),
            "dense_3/kernel": (8, 2)}
    layers = [LiveLayer(n, c) for n, c in (("dense_1", "Dense"), ("batch_normalization_1", "BatchNormalization"),
                                           ("dense_2", "Dense"), ("dense_3", "Dense"))]
    assert match_state(shifted, live, layers).misfits
    numbered = TrainingState(weights={f"old/w_{i}": np.zeros((4, 4)) for i in sorted(range(12), key=str)})
    live = {f"new/w_{i}": (4, 4) for i in range(12)}
    assert match_state(numbered, live, [LiveLayer("new", "Custom")]).misfits
    cells = TrainingState(weights={"s/kernel": np.zeros((4, 2)), "s/kernel_2": np.zeros((2, 2))})
    assert match_state(cells, {"s/c/0/kernel": (4, 2), "s/c/1/kernel": (2, 2)}, [LiveLayer("s", "RNN")]).misfits
    cells = TrainingState(weights={"s/kernel": np.zeros((4, 2)), "s/kernel_1": np.zeros((3, 2))})
    assert match_state(cells, {"s/c/0/kernel": (4, 2), "s/c/1/kernel": (2, 2)}, [LiveLayer("s", "RNN")]).misfits
    # only inside a layer that holds cells, one level of cells under one parent, Keras suffixes only
    flat = TrainingState(weights={"m/kernel": np.zeros((2, 2)), "m/kernel_1": np.zeros((2, 2)),
                                  "m/kernel_2": np.zeros((2, 2))})
    mha = {"m/query/kernel": (2, 2), "m/key/kernel": (2, 2), "m/value/kernel": (2, 2)}
    assert match_state(flat, mha, [LiveLayer("m", "MultiHeadAttention")]).misfits
    assert not match_state(flat, {"m/c/0/kernel": (2, 2), "m/c/1/kernel": (2, 2), "m/c/2/kernel": (2, 2)},
                           [LiveLayer("m", "RNN")]).misfits  # the same names in an RNN: cells 0, 1, 2
    deeper = {"m/c/0/kernel": (2, 2), "m/c/0/inner/kernel": (2, 2), "m/c/1/kernel": (2, 2)}
    assert match_state(flat, deeper, [LiveLayer("m", "RNN")]).misfits
    zero = TrainingState(weights={"m/kernel_0": np.zeros((2, 2)), "m/kernel_01": np.zeros((2, 2))})
    assert match_state(zero, {"m/c/0/kernel": (2, 2), "m/c/1/kernel": (2, 2)}, [LiveLayer("m", "RNN")]).misfits
    odd = TrainingState(weights={"m/kernel\n": np.zeros((2, 2)), "m/kernel_" + "9" * 5000: np.zeros((2, 2))})
    assert match_state(odd, {"m/c/0/kernel": (2, 2), "m/c/1/kernel": (2, 2)}, [LiveLayer("m", "RNN")]).misfits
