"""resume of a Keras 3 file whose layer class the reader does not know (a user's subclass of a
built-in layer adding a weight of its own, a custom layer): the reader can only name those
variables ``var_<i>``, so neither names nor structure fit a fresh model; before, ``resume``
refused the file where Keras's own ``load_weights`` restores it. Such a file is paired as Keras 3
loads it: by the dataset each variable was read from (``layers/scaled_lstm/cell/vars/0``) and the
place the live model's own save walk gives each of its variables, every shape verified, one to
one. Weights, optimizer slots and iterations come back bitwise, compared with the saved model and
with native ``load_weights``, in Sequential and Functional models, from ``.keras`` (also without
``model=``, the class registered) and from ``.weights.h5``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_backend, keras_module

pytestmark = pytest.mark.backend  # Keras 3 on any backend (skips on Keras 2)


@pytest.fixture()
def keras() -> Any:
    """The running Keras 3 (the tests skip on Keras 2: Keras 3 files into a Keras 3 model)."""
    if keras_backend() is None:
        pytest.skip("Keras 3 files into a Keras 3 model")
    return keras_module()


def _classes(keras: Any) -> dict[str, type]:
    package = "ckptcompat_test_unknown_class"

    @keras.saving.register_keras_serializable(package)
    class ScaledLSTM(keras.layers.LSTM):  # a built-in RNN with a weight of its own beside its cell's
        def build(self, sequences_shape: Any) -> None:
            super().build(sequences_shape)
            self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

        def call(self, sequences: Any, initial_state: Any = None, mask: Any = None, training: bool = False) -> Any:
            out = super().call(sequences, initial_state=initial_state, mask=mask, training=training)
            return out * self.scale

    @keras.saving.register_keras_serializable(package)
    class Affine(keras.layers.Layer):  # two variables of one shape: only their order tells them apart
        def build(self, shape: Any) -> None:
            self.gain = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="gain")
            self.shift = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="shift")

        def call(self, x: Any) -> Any:
            return x * self.gain + self.shift

    @keras.saving.register_keras_serializable(package)
    class Block(keras.Model):  # a subclassed model used as a layer: its config lists no layers
        def __init__(self, units: int = 4, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units, self.proj = units, keras.layers.Dense(units)

        def call(self, x: Any) -> Any:
            return self.proj(x)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "units": self.units}

    return {"ScaledLSTM": ScaledLSTM, "Affine": Affine, "Block": Block}


def _builders(keras: Any) -> dict[str, Callable[[], Any]]:
    classes = _classes(keras)

    def sequential() -> Any:
        # kernels of more than 64 values: the file's paths are read from headers, not data
        return keras.Sequential([keras.Input((5, 3)), classes["ScaledLSTM"](16), keras.layers.Dense(2)])

    def functional() -> Any:
        inputs = keras.Input((6,))
        x = classes["Affine"]()(keras.layers.Dense(4)(inputs))
        return keras.Model(inputs, keras.layers.Dense(2)(classes["Affine"]()(x)))

    def functional_with_op() -> Any:  # an op in the graph: listed in the config, not in model.layers
        inputs = keras.Input((6,))
        x = classes["Affine"]()(keras.layers.Dense(4)(inputs))
        return keras.Model(inputs, keras.layers.Dense(2)(keras.ops.multiply(x, 2.0)))

    def sequential_model_block() -> Any:
        return keras.Sequential([keras.Input((6,)), classes["Block"](4), keras.layers.Dense(2)])

    return {"sequential_scaled_lstm": sequential, "functional_affine": functional,
            "functional_with_op": functional_with_op, "sequential_model_block": sequential_model_block}


def _data(case: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    shape = (16, 5, 3) if case == "sequential_scaled_lstm" else (16, 6)
    return rng.random(shape, dtype=np.float32), rng.random((16, 2), dtype=np.float32)


def _bytes(variables: Any) -> list[bytes]:
    return [np.asarray(v).tobytes() for v in variables]


def _saved(keras: Any, build: Callable[[], Any], case: str, tmp_path: Path, kind: str) -> tuple[Any, Path]:
    """A model trained 2 epochs with Adam (own weights moved off their initial values), saved."""
    x, y = _data(case)
    model = build()
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / ("m.keras" if kind == "keras" else "m.weights.h5")
    model.save(str(path)) if kind == "keras" else model.save_weights(str(path))
    return model, path


def _saved_lstm(keras: Any, tmp_path: Path) -> tuple[Any, Path]:
    """The Sequential LSTM-subclass case trained and saved as ``.keras``."""
    case = "sequential_scaled_lstm"
    return _saved(keras, _builders(keras)[case], case, tmp_path, "keras")


def _fresh(keras: Any, build: Callable[[], Any], case: str) -> Any:
    build(), build()  # other generated layer names in the fresh model
    model = build()
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.mark.parametrize("kind", ["keras", "weights_h5"])
@pytest.mark.parametrize("case", ["sequential_scaled_lstm", "functional_affine", "functional_with_op",
                                  "sequential_model_block"])
def test_unknown_layer_class_resumes_as_keras_loads_it(keras: Any, tmp_path: Path, case: str, kind: str) -> None:
    build = _builders(keras)[case]
    saved, path = _saved(keras, build, case, tmp_path, kind)
    native = _fresh(keras, build, case)
    native.load_weights(str(path))
    fresh = _fresh(keras, build, case)
    assert {w.path for w in fresh.weights}.isdisjoint({w.path for w in saved.weights})
    run = ckptcompat.resume(path, model=fresh, initial_epoch=2)
    assert run.report.matching == "structure"
    assert _bytes(fresh.weights) == _bytes(saved.weights) == _bytes(native.weights)
    assert int(np.asarray(fresh.optimizer.iterations)) == 4
    assert _bytes(fresh.optimizer.variables) == _bytes(saved.optimizer.variables)


def test_unknown_layer_class_resumes_without_model(keras: Any, tmp_path: Path) -> None:
    """The class registered, the ``.keras`` alone rebuilds and resumes exactly."""
    saved, path = _saved_lstm(keras, tmp_path)
    run = ckptcompat.resume(path)
    assert _bytes(run.model.weights) == _bytes(saved.weights)
    assert int(np.asarray(run.model.optimizer.iterations)) == 4
    assert _bytes(run.model.optimizer.variables) == _bytes(saved.optimizer.variables)


def test_unknown_layer_class_of_another_shape_is_refused(keras: Any, tmp_path: Path) -> None:
    """Paths alone are not taken on trust: a live layer of another width is refused, naming it."""
    _, path = _saved_lstm(keras, tmp_path)
    wider = keras.Sequential([keras.Input((5, 3)), _classes(keras)["ScaledLSTM"](24), keras.layers.Dense(2)])
    wider.compile(keras.optimizers.Adam(0.01), "mse")
    before = _bytes(wider.weights)
    with pytest.raises(ckptcompat.IncompatibleStateError, match="scaled_lstm"):
        ckptcompat.resume(path, model=wider)
    assert _bytes(wider.weights) == before  # nothing assigned


def test_layers_swapped_in_the_code_are_refused(keras: Any, tmp_path: Path) -> None:
    """Keras 3 names a layer's datasets by class and counter, not place: with two same-shape
    custom layers swapped in the live code, pairing by those paths would cross them (and the
    optimizer variables Keras keeps by position would follow the live order). The file's config
    lists its layers: their classes must come in the live order, else the file is refused."""
    affine = _classes(keras)["Affine"]

    @keras.saving.register_keras_serializable("ckptcompat_test_unknown_class")
    class OtherAffine(affine):
        pass

    def build(first: type, second: type) -> Callable[[], Any]:
        return lambda: keras.Sequential([keras.Input((6,)), first(), second(), keras.layers.Dense(2)])

    _, path = _saved(keras, build(affine, OtherAffine), "functional_affine", tmp_path, "keras")
    swapped = _fresh(keras, build(OtherAffine, affine), "functional_affine")
    before = _bytes(swapped.weights)
    with pytest.raises(ckptcompat.IncompatibleStateError, match="class"):
        ckptcompat.resume(path, model=swapped)
    assert _bytes(swapped.weights) == before  # nothing assigned


def test_partial_restores_no_moments_without_their_weight(keras: Any, tmp_path: Path) -> None:
    """``partial=True`` restores what fits; an optimizer slot whose weight was not restored is
    left out too (reported), never placed beside a fresh weight. Here a custom layer saves only
    two of its three variables, so nothing pairs it; the named Dense layers resume with their
    moments, the custom layer's weights and moments stay as they were."""

    class SavesTwo(keras.layers.Layer):
        def build(self, shape: Any) -> None:
            self.a = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="a")
            self.b = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="b")
            self.cache = self.add_weight(shape=(shape[-1],), initializer="zeros", trainable=False, name="cache")

        def call(self, x: Any) -> Any:
            return x * self.a + self.b + self.cache

        def save_own_variables(self, store: Any) -> None:
            store["0"], store["1"] = self.a, self.b

        def load_own_variables(self, store: Any) -> None:
            self.a.assign(store["0"])
            self.b.assign(store["1"])

    def build() -> Any:
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, name="first"), SavesTwo(),
                                 keras.layers.Dense(2, name="last")])

    saved, path = _saved(keras, build, "functional_affine", tmp_path, "keras")
    fresh = _fresh(keras, build, "functional_affine")
    custom = fresh.layers[1]
    before = {id(v): np.asarray(v).tobytes() for v in custom.weights}
    run = ckptcompat.resume(path, model=fresh, partial=True)
    assert all(np.asarray(v).tobytes() == before[id(v)] for v in custom.weights)  # left as they were
    dense = [layer for i in (0, 2) for layer in (fresh.layers[i], saved.layers[i])]
    assert _bytes(dense[0].weights + dense[2].weights) == _bytes(dense[1].weights + dense[3].weights)

    def moments(model: Any, variable: Any) -> np.ndarray:
        return np.asarray(model.optimizer._momentums[model.optimizer._get_variable_index(variable)])  # noqa: SLF001

    assert not any(np.any(moments(fresh, v)) for v in (custom.a, custom.b))  # none beside fresh weights
    for live, kept in ((fresh.layers[0], saved.layers[0]), (fresh.layers[2], saved.layers[2])):
        assert moments(fresh, live.kernel).tobytes() == moments(saved, kept.kernel).tobytes()
    assert any("its weight was not restored" in why for _, why in run.report.skipped)


def test_same_named_classes_swapped_in_the_code_are_refused(keras: Any, tmp_path: Path) -> None:
    """Two different classes of one ``__name__`` (registered in two packages) swapped in the live
    code: their class names agree, their registered names do not; pairing by path would cross them."""
    affine = _classes(keras)["Affine"]
    first = keras.saving.register_keras_serializable("ckptcompat_test_pkg_a")(type("Affine", (affine,), {}))
    second = keras.saving.register_keras_serializable("ckptcompat_test_pkg_b")(type("Affine", (affine,), {}))

    def build(a: type, b: type) -> Callable[[], Any]:
        return lambda: keras.Sequential([keras.Input((6,)), a(), b(), keras.layers.Dense(2)])

    _, path = _saved(keras, build(first, second), "functional_affine", tmp_path, "keras")
    swapped = _fresh(keras, build(second, first), "functional_affine")
    before = _bytes(swapped.weights)
    with pytest.raises(ckptcompat.IncompatibleStateError):
        ckptcompat.resume(path, model=swapped)
    assert _bytes(swapped.weights) == before  # nothing assigned
    same = _fresh(keras, build(first, second), "functional_affine")
    ckptcompat.resume(path, model=same, initial_epoch=2)  # the same order still resumes
