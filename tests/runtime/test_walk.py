"""The live layer walk (ckptcompat.runtime._walk) and the rebuild's built-in layer classes
(ckptcompat.resuming.build), without a framework: small fakes shaped like Keras objects. The real
cases run in the resume table (tests/matrix/test_resume_table.py): Keras 3.0.5 reading the Keras
3.15 zoo's Bidirectional, tf-keras rebuilding its own SpectralNormalization."""

from __future__ import annotations

import types
from typing import Any

import pytest

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.resuming.build import _builtin_layers
from ckptcompat.runtime._walk import unused_weight_ids, walk_variables


class Var:
    def __init__(self, path: str) -> None:
        self.name = self.path = path
        self.shape = (1,)


class Layer:
    def __init__(self, name: str, weights: list[Var] = (), subs: list["Layer"] = ()) -> None:  # type: ignore[assignment]
        self.name, self._own, self._subs = name, list(weights), list(subs)

    @property
    def weights(self) -> list[Var]:
        return [*self._own, *(w for s in self._subs for w in s.weights)]

    def _flatten_layers(self, include_self: bool = False, recursive: bool = False) -> list["Layer"]:
        return list(self._subs)


class Model(Layer):
    @property
    def layers(self) -> list[Layer]:
        return list(self._subs)


def _lstm(name: str) -> Layer:
    return Layer(name, [Var(f"{name}/lstm_cell/{w}") for w in ("kernel", "recurrent_kernel", "bias")])


def _bidirectional(given_is_forward: bool) -> Layer:
    """Keras 3.0 from a newer config: the given layer (built, unused) named like the forward copy."""
    forward, backward = _lstm("forward_lstm"), _lstm("backward_lstm")
    given = forward if given_is_forward else _lstm("forward_lstm")
    bidi = Layer("bidi", subs=[given, forward, backward] if not given_is_forward else [forward, backward])
    bidi.layer, bidi.forward_layer, bidi.backward_layer = given, forward, backward  # type: ignore[attr-defined]
    return bidi


def _walk(model: Model) -> dict[str, Any]:
    return walk_variables(model, is_model=lambda x: isinstance(x, Model),
                          short_name=lambda v: v.path.rsplit("/", 1)[-1], full_name=lambda v: v.path)


@pytest.mark.parametrize("given_is_forward", [False, True], ids=["keras3.0-unused-copy", "one-layer"])
def test_bidirectional_walks_forward_and_backward_once(given_is_forward: bool) -> None:
    bidi = _bidirectional(given_is_forward)
    names = _walk(Model("m", subs=[bidi]))
    assert list(names) == [f"bidi/{side}_lstm/{w}" for side in ("forward", "backward")
                           for w in ("kernel", "recurrent_kernel", "bias")]
    assert names["bidi/forward_lstm/kernel"] is bidi.forward_layer.weights[0]  # type: ignore[attr-defined]
    assert len(unused_weight_ids(bidi)) == (0 if given_is_forward else 3)


def test_an_unused_copy_is_not_a_layer_without_forward_and_backward() -> None:
    """Only a wrapper with both copies has an unused given layer; two same-named sub-layers of any
    other layer still refuse (two variables, one name)."""
    twin = Layer("twin", subs=[_lstm("x"), _lstm("x")])
    assert unused_weight_ids(twin) == set()
    with pytest.raises(IncompatibleStateError, match="same canonical name"):
        _walk(Model("m", subs=[twin]))


def test_rebuild_names_the_running_keras_layer_classes() -> None:
    """tf-keras's config deserializer lacks SpectralNormalization: the rebuild passes the running
    Keras's own classes named in the config (layers only, never other names)."""
    class Base:
        pass

    class SpectralNormalization(Base):
        pass

    layers = types.SimpleNamespace(Layer=Base, SpectralNormalization=SpectralNormalization,
                                   Input=lambda: None, Dense=type("Dense", (Base,), {}))
    keras = types.SimpleNamespace(layers=layers)
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "SpectralNormalization", "config": {"layer": {"class_name": "Dense", "config": {}}}},
        {"class_name": "Input", "config": {}}, {"class_name": "GlorotUniform", "config": {}}]}}
    found = _builtin_layers(keras, config)
    assert found == {"SpectralNormalization": SpectralNormalization, "Dense": layers.Dense}
    assert _builtin_layers(types.SimpleNamespace(), config) == {}


def test_unknown_classes_leave_out_names_the_running_keras_resolves() -> None:
    """TF 1.15's tf.keras has no ``initializers.GlorotUniform`` attribute, yet resolves the name:
    the refusal must name only the classes it cannot rebuild (the layer), never the initializer."""
    from ckptcompat.resuming.build import _unknown_classes

    def get(name: str) -> object:
        if name != "GlorotUniform":
            raise ValueError(name)
        return object()

    keras = types.SimpleNamespace(layers=types.SimpleNamespace(Dense=object),
                                  initializers=types.SimpleNamespace(get=get))
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Dense", "config": {"kernel_initializer": {"class_name": "GlorotUniform"}}},
        {"class_name": "EinsumDense", "config": {}}]}}
    assert _unknown_classes(keras, config, {}) == ["EinsumDense"]
