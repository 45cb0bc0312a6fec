"""Adapted lookup layers resume with their vocabularies (``resuming/adapted_vocab.py``).

``StringLookup``, ``IntegerLookup`` and ``TextVectorization`` keep what ``adapt`` found in a
lookup table, in no variable; Keras writes it to a ``.keras``'s assets and records it nowhere
else. Before, a model ckptcompat rebuilt from a ``.keras`` or a store had empty tables: its
first call failed ("Table not initialized") although native ``load_model`` worked. Measured
here in the running generation, from a ``.keras`` and from a store, rebuilt and into a
``model=`` built in the same process (other generated names); the cross-generation files are
``adapted_lookup`` in fixtures/layer_configs (tests/names/test_names_config_layers.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_flavour, keras_module
from ckptcompat.errors import IncompatibleStateError, UnsupportedFormatError

pytestmark = [pytest.mark.framework,
              pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="Keras's lookup layers need TensorFlow")]


def _inputs() -> list[Any]:
    import tensorflow as tf

    return [tf.constant([["a"], ["b"], ["z"], ["d"]]), tf.constant(["a b c", "a d", "z z", "c"]),
            tf.constant([[3], [5], [7], [9]], dtype="int64")]


def _build(keras: Any, adapted: bool, max_tokens: int = 8) -> Any:
    import tensorflow as tf

    L = keras.layers
    words = L.StringLookup(output_mode="tf_idf", max_tokens=max_tokens, pad_to_max_tokens=True)
    ids = L.IntegerLookup()
    text = L.TextVectorization(output_sequence_length=3, max_tokens=max_tokens)
    if adapted:
        words.adapt(tf.constant([["a"], ["b"], ["c"], ["a"], ["d"], ["a"]]))
        ids.adapt(tf.constant([[3], [5], [5], [9], [9], [9]], dtype="int64"))
        text.adapt(tf.constant(["a b c", "a d", "b b", "c c c"]))
    w_in, t_in = keras.Input(shape=(1,), dtype="string"), keras.Input(shape=(), dtype="string")
    i_in = keras.Input(shape=(1,), dtype="int64")
    parts = [L.Dense(2)(words(w_in)), L.GlobalAveragePooling1D()(L.Embedding(8, 2)(text(t_in))),
             L.GlobalAveragePooling1D()(L.Embedding(8, 2)(ids(i_in)))]
    model = keras.Model([w_in, t_in, i_in], L.Dense(1)(L.Concatenate()(parts)))
    model.compile("adam", "mse")
    return model


def _vocabularies(model: Any) -> list[list[Any]]:
    from ckptcompat.resuming.adapted_vocab import LOOKUP_CLASSES, live_vocabulary

    return [live_vocabulary(layer) for layer in model.layers if type(layer).__name__ in LOOKUP_CLASSES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    from ckptcompat.callbacks import Checkpoint

    keras = keras_module()
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("vocab")
    model = _build(keras, adapted=True)
    model.fit(_inputs(), np.arange(4.0), epochs=2, batch_size=2, verbose=0,
              callbacks=[Checkpoint(str(root / "store"), save_freq="epoch", restore=False)])
    model.save(str(root / "model.keras"))
    return root, model, np.asarray(model.predict(_inputs(), verbose=0))


@pytest.mark.parametrize("source", ["model.keras", "store"])
def test_rebuilt_model_has_the_vocabularies(trained: tuple[Path, Any, np.ndarray], source: str) -> None:
    root, model, want = trained
    result = ckptcompat.resume(root / source)
    assert _vocabularies(result.model) == _vocabularies(model)
    assert np.array_equal(result.model.predict(_inputs(), verbose=0), want)
    assert result.global_step == 4 and (source != "store" or result.initial_epoch == 2)


@pytest.mark.parametrize("source", ["model.keras", "store"])
def test_model_built_unadapted_in_the_same_process_takes_them(trained: tuple[Path, Any, np.ndarray],
                                                              source: str) -> None:
    """Other generated names (string_lookup_3): paired by class and order; its own (empty) replaced."""
    root, model, want = trained
    keras = keras_module()
    _build(keras, adapted=False)
    fresh = _build(keras, adapted=False)
    assert [layer.name for layer in fresh.layers] != [layer.name for layer in model.layers]
    ckptcompat.resume(root / source, model=fresh)
    assert _vocabularies(fresh) == _vocabularies(model)
    assert np.array_equal(fresh.predict(_inputs(), verbose=0), want)


@pytest.mark.parametrize("written", ["store", "migrate-keras3", "migrate-h5"])
def test_what_ckptcompat_writes_loads_natively(trained: tuple[Path, Any, np.ndarray], written: str,
                                               tmp_path: Path) -> None:
    """The store's model file and ``migrate``'s output load in the running Keras's own
    ``load_model`` with the same outputs: the tf_idf StringLookup's idf weights, which ckptcompat
    carries in the layer config, are written where Keras loads them (Keras 3: ``vars/idf_weights``;
    tf-keras's ``.h5``: the layer's one weight). Before, Keras 3 failed on the missing
    ``idf_weights`` and tf-keras on a layer count one short."""
    root, _, want = trained
    keras, keras3 = keras_module(), keras_flavour() == "keras3"
    if written == "store":
        path = sorted(p for p in (root / "store").rglob("model.*") if p.suffix in (".keras", ".h5"))[-1]
    else:
        to = written.split("-")[1]
        if (to == "keras3") != keras3:
            pytest.skip("Keras 3 loads no tf_idf lookup from a legacy .h5 (its own neither); tf-keras no "
                        "Keras 3 .keras")
        path = tmp_path / ("model.keras" if to == "keras3" else "model.h5")
        ckptcompat.migrate(root / "model.keras", path, to=to)
    native = keras.models.load_model(str(path))
    assert _vocabularies(native) == _vocabularies(ckptcompat.resume(path).model)
    assert np.array_equal(native.predict(_inputs(), verbose=0), want)


def test_a_vocabulary_the_model_cannot_take_is_refused_before_anything_is_assigned(
        trained: tuple[Path, Any, np.ndarray]) -> None:
    root, _, _ = trained
    small = _build(keras_module(), adapted=False, max_tokens=3)
    before = [np.array(w) for w in small.get_weights()]
    with pytest.raises(IncompatibleStateError, match="cannot take the checkpoint.s vocabulary; nothing was assigned"):
        ckptcompat.resume(root / "model.keras", model=small, partial=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, small.get_weights()))
    assert int(np.asarray(small.optimizer.iterations)) == 0


def test_unadapted_layers_carry_no_vocabulary() -> None:
    from ckptcompat.runtime._walk import model_config_of

    keras = keras_module()
    model = _build(keras, adapted=False)
    assert _vocabularies(model) == [None, None, None]
    config = model_config_of(model)
    assert all(layer["config"].get("vocabulary") is None for layer in config["config"]["layers"])


def test_a_legacy_h5_without_the_vocabularies_is_refused_by_name(trained: tuple[Path, Any, np.ndarray]) -> None:
    """Keras 3 writes a legacy .h5 without them (tf-keras refuses to write one): a rebuilt model
    would fail at its first call, so resume names the layers and the way on."""
    if keras_flavour() != "keras3":
        pytest.skip("tf-keras refuses to write a legacy .h5 of an adapted lookup layer")
    root, model, _ = trained
    model.save(str(root / "model.h5"))
    with pytest.raises(UnsupportedFormatError, match=r"no vocabulary of its adapted lookup layer.*model="):
        ckptcompat.resume(root / "model.h5")


def test_a_tf_keras_saved_model_names_the_vocabulary_it_does_not_keep(trained: tuple[Path, Any, np.ndarray]) -> None:
    """TF 2.6+ keeps a lookup table in the graph, not in ``variables/``: the rebuilt model would
    fail at its first call, so resume names the layers; into an adapted ``model=`` it resumes.
    (Before, this SavedModel did not even read: an empty string tensor and the object graph's
    metadata field were refused as damaged.)"""
    if keras_flavour() != "keras2":
        pytest.skip("only tf-keras writes a Keras SavedModel with model.save")
    root, model, want = trained
    model.save(str(root / "saved_model"), save_format="tf")
    with pytest.raises(UnsupportedFormatError, match=r"no vocabulary of its adapted lookup layer.*SavedModel"):
        ckptcompat.resume(root / "saved_model")
    ckptcompat.resume(root / "saved_model", model=model)
    assert np.array_equal(model.predict(_inputs(), verbose=0), want)


def test_a_model_adapted_on_other_data_takes_the_checkpoints(trained: tuple[Path, Any, np.ndarray]) -> None:
    """pad_to_max_tokens: Keras lets a tf_idf layer take a vocabulary of another size."""
    import tensorflow as tf

    root, model, want = trained
    other = _build(keras_module(), adapted=False)
    for layer in other.layers:
        if type(layer).__name__ == "StringLookup":
            layer.adapt(tf.constant([["q"], ["r"], ["q"]]))
    ckptcompat.resume(root / "model.keras", model=other)
    assert _vocabularies(other) == _vocabularies(model)
    assert np.array_equal(other.predict(_inputs(), verbose=0), want)


def _given(keras: Any, mask_token: Any) -> Any:
    L = keras.layers
    inp = keras.Input(shape=(1,), dtype="string")
    words = L.StringLookup(vocabulary=["a", "b", "c"], mask_token=mask_token)
    text = L.TextVectorization(vocabulary=["a", "b", "c"], output_mode="multi_hot")
    t_in = keras.Input(shape=(), dtype="string")
    x = L.Concatenate()([L.GlobalAveragePooling1D()(L.Embedding(6, 2)(words(inp))), L.Dense(2)(text(t_in))])
    model = keras.Model([inp, t_in], L.Dense(1)(x))
    model.compile("adam", "mse")
    return model


def test_vocabularies_given_to_the_constructor_resume_and_special_tokens_must_agree(tmp_path: Path) -> None:
    keras = keras_module()
    model = _given(keras, None)
    model.save(str(tmp_path / "given.keras"))
    same = _given(keras, None)
    ckptcompat.resume(tmp_path / "given.keras", model=same)  # the same vocabularies: nothing to set
    shifted = _given(keras, "")  # a mask token: every token one index further
    with pytest.raises(IncompatibleStateError, match="special tokens differ"):
        ckptcompat.resume(tmp_path / "given.keras", model=shifted)


def test_a_tf_idf_text_vectorization_resumes_and_migrates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Keras 3 stores an adapted tf_idf TextVectorization's idf twice (its own ``vars`` and its inner
    ``_lookup_layer``'s): both are read into the config (before, the inner group was "not described by
    the config" and named ``var_<i>``, which no write or resume could place); the migrated file loads
    natively with the same outputs."""
    import logging

    import tensorflow as tf

    keras = keras_module()
    text = keras.layers.TextVectorization(output_mode="tf_idf", max_tokens=8, pad_to_max_tokens=True)
    text.adapt(tf.constant(["x y", "x z", "q"]))
    inp = keras.Input(shape=(), dtype="string")
    model = keras.Model(inp, keras.layers.Dense(1)(text(inp)))
    model.compile("adam", "mse")
    data = tf.constant(["x y q", "z z", "w"])
    want = np.asarray(model.predict(data, verbose=0))
    model.save(str(tmp_path / "tv.keras"))
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        state = ckptcompat.read(tmp_path / "tv.keras")
        result = ckptcompat.resume(tmp_path / "tv.keras")
    assert not [r for r in caplog.records if "not described" in r.getMessage()]
    assert not [n for n in state.weights if "idf" in n or "_lookup_layer" in n], list(state.weights)
    assert np.array_equal(result.model.predict(data, verbose=0), want)
    keras3 = keras_flavour() == "keras3"
    out = tmp_path / ("out.keras" if keras3 else "out.h5")
    ckptcompat.migrate(tmp_path / "tv.keras", out, to="keras3" if keras3 else "h5")
    assert np.array_equal(keras.models.load_model(str(out)).predict(data, verbose=0), want)



def _tf_idf_model(keras: Any, adapted: bool, max_tokens: int = 8) -> Any:
    """A tf_idf StringLookup, IntegerLookup and TextVectorization, each into a Dense."""
    import tensorflow as tf

    L = keras.layers
    lookups = [L.StringLookup(output_mode="tf_idf", max_tokens=max_tokens, pad_to_max_tokens=True),
               L.TextVectorization(output_mode="tf_idf", max_tokens=max_tokens, pad_to_max_tokens=True),
               L.IntegerLookup(output_mode="tf_idf", max_tokens=max_tokens, pad_to_max_tokens=True)]
    if adapted:
        lookups[0].adapt(tf.constant([["a"], ["b"], ["c"], ["a"], ["d"], ["a"]]))
        lookups[1].adapt(tf.constant(["a b c", "a d", "b b", "c c c"]))
        lookups[2].adapt(tf.constant([[3], [5], [5], [9], [9], [9]], dtype="int64"))
    inputs = [keras.Input(shape=(1,), dtype="string"), keras.Input(shape=(), dtype="string"),
              keras.Input(shape=(1,), dtype="int64")]
    parts = [L.Dense(2)(lookup(x)) for lookup, x in zip(lookups, inputs)]
    model = keras.Model(inputs, L.Dense(1)(L.Concatenate()(parts)))
    model.compile("adam", "mse")
    return model


@pytest.fixture(scope="module")
def tf_idf_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    keras = keras_module()
    if not hasattr(keras.layers.StringLookup, "save_own_variables"):
        pytest.skip("this Keras writes no .weights.h5 with idf weights by name (tf.keras before 2.13)")
    keras.utils.set_random_seed(1)
    model = _tf_idf_model(keras, adapted=True)
    model.fit(_inputs(), np.arange(4.0), epochs=1, batch_size=2, verbose=0)
    path = tmp_path_factory.mktemp("idf") / "w.weights.h5"
    model.save_weights(str(path))
    return path, model, np.asarray(model.predict(_inputs(), verbose=0))


def test_a_weights_file_gives_tf_idf_layers_its_idf_weights_as_native_load_weights(
        tf_idf_weights: tuple[Path, Any, np.ndarray]) -> None:
    """A ``.weights.h5`` has no config, so no vocabulary: Keras stores each tf_idf lookup layer's idf
    weights by name (a TextVectorization's twice: its own and its inner lookup layer's) and its
    ``load_weights`` gives them back to the live layers. ckptcompat did not (the live layers kept their
    own idf: other outputs); now it sets them as native does, into a model with other generated names
    (StringLookup, IntegerLookup and TextVectorization paired by class and order)."""
    keras = keras_module()
    path, model, want = tf_idf_weights
    native = _same_vocabulary_other_idf(keras, model)
    native.load_weights(str(path))  # before any predict: Keras's traced predict keeps the idf it saw
    assert np.array_equal(native.predict(_inputs(), verbose=0), want)
    ours = _same_vocabulary_other_idf(keras, model)
    assert [layer.name for layer in ours.layers] != [layer.name for layer in model.layers]
    assert not np.array_equal(ours.predict(_inputs(), verbose=0), want)  # the idf weights matter
    ckptcompat.resume(path, model=ours)  # and the traced predict is dropped
    assert np.array_equal(ours.predict(_inputs(), verbose=0), want)


def test_idf_weights_of_another_size_are_refused_before_anything_is_assigned_or_kept_with_partial(
        tf_idf_weights: tuple[Path, Any, np.ndarray], caplog: pytest.LogCaptureFixture) -> None:
    import logging

    keras = keras_module()
    path, model, _ = tf_idf_weights
    other = _tf_idf_model(keras, adapted=True, max_tokens=6)
    before = [np.array(w) for w in other.get_weights()]
    with pytest.raises(IncompatibleStateError, match=r"idf_weights of 8 values, the layer's hold 6"):
        ckptcompat.resume(path, model=other)
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        ckptcompat.resume(path, model=other, partial=True, optimizer="reset")  # the Dense kernels differ too
    assert any("keep their own idf weights" in r.getMessage() for r in caplog.records)


def _same_vocabulary_other_idf(keras: Any, model: Any) -> Any:
    """The model's architecture with its vocabularies but idf weights of ones (other generated names)."""
    fresh = _tf_idf_model(keras, adapted=False)
    for mine, theirs in zip(fresh.layers, model.layers):
        if type(mine).__name__ in ("StringLookup", "TextVectorization", "IntegerLookup"):
            vocabulary = theirs.get_vocabulary()
            mine.set_vocabulary(vocabulary, idf_weights=np.ones(len(vocabulary), np.float32))
    return fresh


def _title_and_body(keras: Any) -> Any:
    """Two tf_idf StringLookups of one size, created title first but called body first: the file's
    layer positions, its labels (Keras 3.8+: the generated names) and the live names all differ."""
    import tensorflow as tf

    L = keras.layers
    title = L.StringLookup(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    body = L.StringLookup(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    title.adapt(tf.constant([["a"], ["b"], ["a"]]))
    body.adapt(tf.constant([["a"], ["c"], ["c"], ["d"], ["c"]]))
    t_in, b_in = keras.Input(shape=(1,), dtype="string"), keras.Input(shape=(1,), dtype="string")
    model = keras.Model([t_in, b_in], L.Dense(1)(L.Concatenate()([body(b_in), title(t_in)])))
    model.compile("sgd", "mse")
    return model


def test_idf_weights_go_to_the_layer_at_the_files_position_as_native_load_weights(tmp_path: Path) -> None:
    keras = keras_module()
    if not hasattr(keras.layers.StringLookup, "save_own_variables"):
        pytest.skip("this Keras writes no .weights.h5 with idf weights by name (tf.keras before 2.13)")
    model = _title_and_body(keras)
    model.save_weights(str(tmp_path / "w.weights.h5"))

    def idf(m: Any) -> list[list[float]]:
        out = []
        for layer in m.layers:
            if type(layer).__name__ == "StringLookup":
                store: dict[str, Any] = {}
                layer.save_own_variables(store)
                out.append(np.asarray(store["idf_weights"]).tolist())
        return out

    native, ours = _title_and_body(keras), _title_and_body(keras)
    for m in (native, ours):  # the same vocabularies, idf weights of ones
        for layer in m.layers:
            if type(layer).__name__ == "StringLookup":
                layer.set_vocabulary(layer.get_vocabulary(), idf_weights=np.ones(len(layer.get_vocabulary())))
    native.load_weights(str(tmp_path / "w.weights.h5"))
    ckptcompat.resume(tmp_path / "w.weights.h5", model=ours)
    assert idf(native) == idf(model) and idf(ours) == idf(model)
    assert idf(model)[0] != idf(model)[1]  # a swap would show


def test_a_layer_never_adapted_takes_the_idf_weights_as_native_load_weights(
        tf_idf_weights: tuple[Path, Any, np.ndarray]) -> None:
    """It holds no token, so no idf of its own to compare sizes with (tf-keras: one value, its OOV's)."""
    keras = keras_module()
    path, model, _ = tf_idf_weights
    native, ours = _tf_idf_model(keras, adapted=False), _tf_idf_model(keras, adapted=False)
    try:
        native.load_weights(str(path))
    except ValueError as exc:  # Keras 3.0: an unadapted lookup has no idf_weights to assign
        assert "idf_weights" in str(exc)
        with pytest.raises(IncompatibleStateError, match="cannot take the checkpoint's idf weights"):
            ckptcompat.resume(path, model=ours)
        return
    ckptcompat.resume(path, model=ours)

    def idf(m: Any) -> list[list[float]]:
        from ckptcompat.resuming.lookup_idf import _own

        return [np.asarray(_own(layer)).tolist() for layer in m.layers if type(layer).__name__ in
                ("StringLookup", "IntegerLookup", "TextVectorization")]

    assert idf(ours) == idf(native) == idf(model)
