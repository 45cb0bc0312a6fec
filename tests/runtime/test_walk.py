"""The live layer walk (ckptcompat.runtime._walk) and the rebuild's built-in layer classes
(ckptcompat.resuming.build), without a framework: small fakes shaped like Keras objects. The real
cases run in the resume table (tests/matrix/test_resume_table.py): Keras 3.0.5 reading the Keras
3.15 zoo's Bidirectional, tf-keras rebuilding its own SpectralNormalization."""

from __future__ import annotations

import types
from typing import Any

import pytest

from ckptcompat.errors import IncompatibleStateError
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


class Bidirectional(Layer):
    pass


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
    bidi = Bidirectional("bidi", subs=[given, forward, backward] if not given_is_forward else [forward, backward])
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


def test_the_given_layer_called_elsewhere_keeps_its_weights() -> None:
    """``lstm = LSTM(2); Bidirectional(lstm)(x); lstm(y)``: Keras 3.0's Bidirectional holds ``lstm``
    without running it, the model runs it itself: its weights are walked there, once."""
    bidi = _bidirectional(given_is_forward=False)
    shared = bidi.layer  # type: ignore[attr-defined]
    shared.name = "lstm"
    names = _walk(Model("m", subs=[bidi, shared]))
    assert [n for n in names if n.startswith("lstm/")] == ["lstm/kernel", "lstm/recurrent_kernel", "lstm/bias"]
    assert names["lstm/kernel"] is shared.weights[0] and len(names) == 9


def test_an_unused_copy_is_not_a_layer_without_forward_and_backward() -> None:
    """Only a wrapper with both copies has an unused given layer; two same-named sub-layers of any
    other layer still refuse (two variables, one name)."""
    twin = Layer("twin", subs=[_lstm("x"), _lstm("x")])
    assert unused_weight_ids(twin) == set()
    with pytest.raises(IncompatibleStateError, match="same canonical name"):
        _walk(Model("m", subs=[twin]))


class ListWrapper(list):  # what TF's tracking makes of a list attribute of layers
    pass


class OldLayer:
    """tf.keras 2.0 / 2.2.4-tf: no ``_flatten_layers``; sub-layers tracked in ``_layers``, a list
    attribute of layers as one ``ListWrapper`` entry (beside a non-layer tracked object)."""

    def __init__(self, name: str, weights: list[Var] = (), tracked: list[Any] = ()) -> None:  # type: ignore[assignment]
        self.name, self._own, self._layers = name, list(weights), list(tracked)

    @property
    def weights(self) -> list[Var]:
        subs = [x for item in self._layers for x in (item if isinstance(item, list) else [item])]
        return [*self._own, *(w for s in subs if hasattr(s, "weights") for w in s.weights)]


def test_sub_layers_of_old_tf_keras_name_a_wrappers_weights() -> None:
    """Before ``_flatten_layers`` (TF 2.0, TF 1.15) the tracked ``_layers`` name a Bidirectional's
    two LSTMs and the cells of a list: found by TF 1.15 resuming its own layer zoo (two
    variables, one name)."""
    def lstm(name: str) -> OldLayer:
        return OldLayer(name, [Var(f"{name}/{w}") for w in ("kernel", "bias")])

    bidi = OldLayer("bidi", tracked=[lstm("forward_lstm"), lstm("backward_lstm"), object()])
    cells = OldLayer("stack", tracked=[ListWrapper([lstm("cell_0"), lstm("cell_1")])])
    model = Model("m", subs=[bidi, cells])  # type: ignore[list-item]
    assert list(_walk(model)) == ["bidi/forward_lstm/kernel", "bidi/forward_lstm/bias", "bidi/backward_lstm/kernel",
                                  "bidi/backward_lstm/bias", "stack/cell_0/kernel", "stack/cell_0/bias",
                                  "stack/cell_1/kernel", "stack/cell_1/bias"]


def _fake_keras2(monkeypatch: pytest.MonkeyPatch, native_knows: set[str]) -> tuple[Any, list[dict[str, Any]]]:
    """A Keras whose config deserializer knows ``native_knows`` only (as tf-keras lacks
    SpectralNormalization); ``Identity`` is both a layer and an initializer, as in tf.keras 2.12+."""
    from ckptcompat import runtime

    class Base:
        pass

    layers = types.SimpleNamespace(Layer=Base, Input=lambda: None,
                                   **{n: type(n, (Base,), {}) for n in ("SpectralNormalization", "Dense", "Identity")})

    def get(name: str) -> object:
        if name != "Identity":
            raise ValueError(name)
        return object()

    calls: list[dict[str, Any]] = []

    def model_from_config(config: Any, custom: dict[str, Any]) -> str:
        calls.append(dict(custom))
        missing = _classes(config) - native_knows - set(custom)
        if missing:
            raise TypeError(f"'str' object is not callable ({sorted(missing)})")
        return "model"

    monkeypatch.setattr(runtime, "flavour", lambda name=None: types.SimpleNamespace(model_from_config=model_from_config,
                                                                                 RETRY_WITH_OWN_LAYERS=True))
    return types.SimpleNamespace(layers=layers, initializers=types.SimpleNamespace(get=get)), calls


def _classes(config: Any) -> set[str]:
    from ckptcompat.resuming.build import class_names

    return class_names(config)


def _config(*layers: str) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"layers": [
        {"class_name": name, "config": {"kernel_initializer": {"class_name": "Identity", "config": {}}}}
        for name in layers]}}


def test_keras2_rebuild_retries_with_its_own_layer_classes_only_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """tf-keras's deserializer lacks SpectralNormalization: the rebuild retries with the running
    Keras's own class for it (never for a name an initializer resolves, Identity); a config the
    deserializer rebuilds is given nothing extra; when the retry fails too, the first error stands."""
    from ckptcompat.resuming.from_config import _builtin_layers, _native_rebuild

    keras, calls = _fake_keras2(monkeypatch, native_knows={"Functional", "Dense", "Identity"})
    assert _native_rebuild("keras2", keras, _config("Dense"), {}) == "model"
    assert calls == [{}]
    calls.clear()
    assert _native_rebuild("keras2", keras, _config("SpectralNormalization", "Dense"), {}) == "model"
    # the retry names the layer classes of the config, never Identity (an initializer resolves it)
    assert calls == [{}, {"SpectralNormalization": keras.layers.SpectralNormalization, "Dense": keras.layers.Dense}]
    mine = object()
    calls.clear()
    _native_rebuild("keras2", keras, _config("SpectralNormalization"), {"SpectralNormalization": mine})
    assert calls == [{"SpectralNormalization": mine}]  # the user's class wins, no retry
    keras, calls = _fake_keras2(monkeypatch, native_knows={"Functional", "Identity"})
    with pytest.raises(TypeError, match=r"\['Mystery', 'SpectralNormalization'\]"):  # the retry lacks Mystery
        _native_rebuild("keras2", keras, _config("SpectralNormalization", "Mystery"), {})
    assert set(_builtin_layers(keras, _config("SpectralNormalization"))) == {"SpectralNormalization", "Identity"}
    assert _builtin_layers(types.SimpleNamespace(), _config("Dense")) == {}


def test_unknown_classes_leave_out_names_the_running_keras_resolves() -> None:
    """TF 1.15's tf.keras has no ``initializers.GlorotUniform`` attribute, yet resolves the name:
    the refusal must name only the classes it cannot rebuild (the layer), never the initializer."""
    from ckptcompat.resuming.from_config import _unknown_classes

    def get(name: str) -> object:
        if name != "GlorotUniform":
            raise ValueError(name)
        return object()

    keras = types.SimpleNamespace(layers=types.SimpleNamespace(Dense=object),
                                  initializers=types.SimpleNamespace(get=get),
                                  regularizers=types.SimpleNamespace(get=lambda name: name))  # tf-keras: the name back
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Dense", "config": {"kernel_initializer": {"class_name": "GlorotUniform"}}},
        {"class_name": "EinsumDense", "config": {}}]}}
    assert _unknown_classes(keras, config, {}) == ["EinsumDense"]
