"""Models nested two deep, with a layer frozen at the bottom, resumed from every format the running
release writes: into the model rebuilt from the file, and into a fresh build whose generated layer
names all differ (Keras 3 on every backend, Keras 2 on TensorFlow).

Keras names a variable after its own layer only (``dense/kernel``), so a file does not say which
nested model a weight belongs to: a legacy ``.h5`` puts the weights of a model two deep into the
group of the outer one, TF-format weights and a SavedModel list them where the object graph
reaches them. The frozen layer has no optimizer slots; which slots exist is read through both
nesting levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_backend, running_keras30

#: Keras 3 on any backend (JAX and torch: no TensorFlow), Keras 2 on TensorFlow
pytestmark = pytest.mark.backend if keras_backend() else pytest.mark.framework


def _build(keras: Any, names: tuple[str | None, str | None] = (None, None)) -> Any:
    """``names``: of the inner and middle models (None: generated)."""
    L = keras.layers
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3), L.Dense(3)], name=names[0])
    inner.layers[0].trainable = False
    middle = keras.Sequential([keras.Input((4,)), inner, L.Dense(3)], name=names[1])
    model = keras.Sequential([keras.Input((4,)), middle, L.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _kinds() -> list[str]:
    if keras_backend():  # Keras 3.0's own .h5 writer refuses such a model (names collide)
        return ["store", "keras", "weights.h5"] + ([] if running_keras30() else ["h5"])
    return ["store", "keras", "h5", "weights.h5", "tf", "checkpoint", "savedmodel"]


def _write(keras: Any, kind: str, tmp_path: Path, names: tuple[str | None, str | None] = (None, None)
           ) -> tuple[Any, Path]:
    from ckptcompat.callbacks import Checkpoint

    keras.utils.set_random_seed(0)
    model = _build(keras, names)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32)
    store = tmp_path / "store"
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
              callbacks=[Checkpoint(store)] if kind == "store" else [])
    if kind == "store":
        return model, store
    path = tmp_path / {"keras": "m.keras", "h5": "m.h5", "weights.h5": "m.weights.h5", "tf": "weights",
                       "checkpoint": "ckpt", "savedmodel": "saved"}[kind]
    if kind == "checkpoint":  # every key under model/ (and optimizer/)
        import tensorflow as tf

        return model, Path(tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(path)))
    if kind in ("weights.h5", "tf"):
        model.save_weights(str(path))
    else:
        model.save(str(path), **({"save_format": "tf"} if kind == "savedmodel" else {}))
    return model, path


def _truth(model: Any) -> tuple[list[bytes], list[bytes], int]:
    """Weights and slots in model order (the names differ between builds), iterations."""
    from ckptcompat import runtime

    state = runtime.capture(model)
    opt = state.optimizer
    assert opt is not None
    slots = [np.asarray(v).tobytes() for per in opt.slots.values() for _, v in sorted(per.items())]
    return [np.asarray(v).tobytes() for v in state.weights.values()], slots, int(opt.iterations or 0)


@pytest.mark.parametrize("kind", _kinds())
def test_a_fresh_build_with_other_names_resumes_exactly(keras, tmp_path: Path, kind: str) -> None:
    original, path = _write(keras, kind, tmp_path)
    _build(keras)  # another build before: every generated name differs
    fresh = _build(keras)
    assert {w.path if hasattr(w, "path") else w.name for w in fresh.weights}.isdisjoint(
        {w.path if hasattr(w, "path") else w.name for w in original.weights})
    run = ckptcompat.resume(path, model=fresh)
    assert run.report.matching == "structure" and not run.report.skipped
    weights, slots, iterations = _truth(fresh)
    assert (weights, slots, iterations) == _truth(original)
    assert len(slots) == 2 * 6 and iterations == 8  # Adam's m and v of the six trainable variables


@pytest.mark.parametrize("kind", [k for k in _kinds() if k in ("keras", "h5", "savedmodel")])
def test_the_model_rebuilt_from_the_file_resumes_exactly(keras, tmp_path: Path, kind: str) -> None:
    original, path = _write(keras, kind, tmp_path)
    run = ckptcompat.resume(path)
    if running_keras30():  # a layer rebuilt with trainable=False keeps Keras 3.0's slots, which the file never had
        kept = [n for n in run.report.translated if n.startswith("kept ")]
        assert len(kept) == 4 and len(run.report.restored_slots) == 12, kept
        assert _truth(run.model)[0] == _truth(original)[0]
        from ckptcompat import runtime

        want, got = runtime.capture(original).optimizer.slots, runtime.capture(run.model).optimizer.slots
        assert all(np.array_equal(got[v][s], want[v][s]) for v in want for s in want[v])
    else:
        assert _truth(run.model) == _truth(original)
    frozen = run.model.layers[0].layers[0].layers[0]
    assert not frozen.trainable and run.model.layers[0].layers[0].layers[1].trainable


@pytest.mark.keras2
def test_weights_only_h5_with_its_model_json_resumes_and_migrates(keras, tmp_path: Path) -> None:
    """``save_weights("m.h5")`` records no config: the ``to_json()`` document beside it places the
    weights of the model two deep (resume without ``model=``, and ``migrate --to keras3``)."""
    original, _ = _write(keras, "h5", tmp_path)
    original.save_weights(str(tmp_path / "w.h5"))
    (tmp_path / "model.json").write_text(original.to_json())
    run = ckptcompat.resume(tmp_path / "w.h5")  # no optimizer in the file: compare the weights
    from ckptcompat import runtime

    assert [np.asarray(v).tobytes() for v in runtime.capture(run.model).weights.values()] == _truth(original)[0]
    report = ckptcompat.migrate(tmp_path / "w.h5", tmp_path / "w.keras", to="keras3")
    assert report.verified and report.model_config_from == tmp_path / "model.json"
    again = ckptcompat.read(tmp_path / "w.keras")
    assert [np.asarray(v).tobytes() for v in again.weights.values()] == _truth(original)[0]


#: nested models named as recurrent layers name their cell scopes (``lstm/lstm_cell/kernel``)
_CELL_LIKE = ("rnn_cell", "cell_2")


@pytest.mark.parametrize("kind", _kinds())
def test_nested_models_named_like_cell_scopes_keep_their_place(keras, tmp_path: Path, kind: str) -> None:
    """A cell scope is left out of a weight's name; a nested model of such a name is not one."""
    original, path = _write(keras, kind, tmp_path, _CELL_LIKE)
    fresh = _build(keras, _CELL_LIKE)
    run = ckptcompat.resume(path, model=fresh)
    assert not run.report.skipped
    assert _truth(fresh) == _truth(original)
    if kind in ("keras", "h5", "savedmodel") and not running_keras30():  # rebuilt: its names are the file's
        run = ckptcompat.resume(path)
        assert run.report.matching == "name" and _truth(run.model) == _truth(original)


def _renorm_build(keras: Any) -> Any:
    L = keras.layers
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3), L.BatchNormalization(renorm=True)])
    model = keras.Sequential([keras.Input((4,)), keras.Sequential([keras.Input((4,)), inner]), L.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


@pytest.mark.parametrize("kind", [k for k in _kinds() if k != "store"])
def test_batch_renormalization_statistics_in_a_nested_model(keras, tmp_path: Path, kind: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """BatchNormalization(renorm=True) keeps three more statistics (moving_stddev, renorm_mean,
    renorm_stddev): named as such in every format, no optimizer slots expected for them."""
    try:
        keras.layers.BatchNormalization(renorm=True)  # tf-keras takes it through **kwargs
    except (TypeError, ValueError):
        pytest.skip("this Keras has no batch renormalization (Keras 3 before 3.14)")
    keras.utils.set_random_seed(0)
    original = _renorm_build(keras)
    rng = np.random.default_rng(0)
    original.fit(rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32), epochs=2,
                 batch_size=4, shuffle=False, verbose=0)
    path = tmp_path / {"keras": "m.keras", "h5": "m.h5", "weights.h5": "m.weights.h5", "tf": "weights",
                       "checkpoint": "ckpt", "savedmodel": "saved"}[kind]
    if kind == "checkpoint":
        import tensorflow as tf

        path = Path(tf.train.Checkpoint(model=original, optimizer=original.optimizer).write(str(path)))
    elif kind in ("weights.h5", "tf"):
        original.save_weights(str(path))
    else:
        original.save(str(path), **({"save_format": "tf"} if kind == "savedmodel" else {}))
    caplog.set_level("WARNING", logger="ckptcompat")
    _renorm_build(keras)
    fresh = _renorm_build(keras)
    run = ckptcompat.resume(path, model=fresh)
    assert not run.report.skipped and len(run.report.restored_slots) == 2 * 6  # Dense k, b; gamma, beta; Dense k, b
    assert [np.asarray(w).tobytes() for w in fresh.get_weights()] == \
        [np.asarray(w).tobytes() for w in original.get_weights()]
    assert not [r for r in caplog.records if "naming them var_" in r.getMessage()], caplog.text
    if kind in ("keras", "h5", "weights.h5"):
        names = set(ckptcompat.read(path).weights)
        assert {n.rsplit("/", 1)[-1] for n in names} >= {"moving_stddev", "renorm_mean", "renorm_stddev"}, names
