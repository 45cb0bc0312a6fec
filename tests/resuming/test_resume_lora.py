"""Keras 3 models with LoRA enabled (``Dense(lora_rank=2)``, ``Embedding(lora_rank=2)``).

Keras saves such a layer's kernel merged with its factors' product and never the factors; its
optimizer trains the factors (the kernel is frozen). Before, the reader laid the optimizer
variables out for the kernel and refused the whole ``.keras``; a ``.weights.h5`` fitted neither
by name nor by structure; and the Checkpoint callback could not save a LoRA model at all. Now a
Keras file resumes with the merged kernel, each ``*_a`` factor keeping the model's value, each
``*_b`` factor zeroed (the model computes what was saved) and the factors' optimizer slots at zero,
every other weight and slot bitwise as native ``load_weights`` restores them; a ckptcompat store
keeps the exact kernel and factors beside Keras's layout and resumes bitwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_backend, keras_module

pytestmark = pytest.mark.backend  # Keras 3 on any backend (skips on Keras 2)

_FACTORS = ("lora_kernel_a", "lora_kernel_b", "lora_embeddings_a", "lora_embeddings_b")


@pytest.fixture()
def keras() -> Any:
    """The running Keras 3 (LoRA is a Keras 3 feature)."""
    if keras_backend() is None:
        pytest.skip("LoRA layers exist in Keras 3 only")
    return keras_module()


def _build(keras: Any, lora: Any = True) -> Any:
    """Embedding -> Dense -> Dense; ``lora``: True (the first two with ``lora_rank=2``), False, or
    the set of those that get it (``{"embedding"}``, ``{"dense"}``)."""
    which = {"embedding", "dense"} if lora is True else set(lora or ())
    inputs = keras.Input((5,), dtype="int32")
    rank = {"lora_rank": 2} if "embedding" in which else {}
    x = keras.layers.Flatten()(keras.layers.Embedding(20, 8, **rank)(inputs))
    x = keras.layers.Dense(6, **({"lora_rank": 2} if "dense" in which else {}))(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.integers(0, 20, (16, 5)).astype("int32"), rng.random((16, 2), dtype=np.float32)


def _compiled(keras: Any, lora: Any = True) -> Any:
    _build(keras, lora), _build(keras, lora)  # other generated layer names in this model
    model = _build(keras, lora)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _trained(keras: Any, callbacks: Any = (), lora: Any = True) -> Any:
    x, y = _data()
    model = _build(keras, lora)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=list(callbacks))
    return model


def _saved(keras: Any, tmp_path: Path, kind: str) -> tuple[Any, Path]:
    model = _trained(keras)
    path = tmp_path / ("m.keras" if kind == "keras" else "m.weights.h5")
    model.save(str(path)) if kind == "keras" else model.save_weights(str(path))
    return model, path


def _value(v: Any) -> np.ndarray:
    return np.asarray(keras_module().ops.convert_to_numpy(v))


def _is_factor(v: Any) -> bool:
    return str(v.path).rpartition("/")[2] in _FACTORS


def _moments(model: Any) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """(variable, m, v) of every trainable variable (Adam builds one m and one v per variable)."""
    opt = model.optimizer
    return [(var, _value(opt._momentums[i]), _value(opt._velocities[i]))  # noqa: SLF001
            for i, var in enumerate(model.trainable_variables)]


def _outputs(model: Any) -> np.ndarray:
    return _value(model(_data()[0][:4]))


@pytest.mark.parametrize("kind", ["keras", "weights_h5"])
def test_keras_lora_file_resumes_with_factors_restarted(keras: Any, tmp_path: Path, kind: str) -> None:
    saved, path = _saved(keras, tmp_path, kind)
    native = _compiled(keras)
    native.load_weights(str(path))
    fresh = _compiled(keras)
    own_a = {v.path: _value(v) for v in fresh.weights if str(v.path).endswith("_a")}
    run = ckptcompat.resume(path, model=fresh, initial_epoch=2)
    assert sorted(n.rpartition("/")[2] for n in run.report.lora_restarted) == sorted(_FACTORS)
    for mine, theirs in zip(fresh.weights, native.weights):
        if not _is_factor(mine):  # the merged kernels and the rest: as native load_weights
            assert _value(mine).tobytes() == _value(theirs).tobytes(), mine.path
        elif str(mine.path).endswith("_b"):
            assert not _value(mine).any(), mine.path
        else:  # *_a: the model's own value (native zeros it, so its gradient stays zero)
            assert _value(mine).tobytes() == own_a[mine.path].tobytes(), mine.path
    np.testing.assert_allclose(_outputs(fresh), _outputs(saved), rtol=1e-5, atol=1e-6)
    assert int(_value(fresh.optimizer.iterations)) == 4
    for (var, m, v), (_, m_saved, v_saved) in zip(_moments(fresh), _moments(saved)):
        if _is_factor(var):
            assert not m.any() and not v.any(), var.path
        else:
            assert m.tobytes() == m_saved.tobytes() and v.tobytes() == v_saved.tobytes(), var.path
    x, y = _data()
    fresh.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert all(_value(v).any() for v in fresh.weights if str(v.path).endswith("_b"))  # LoRA trains again


def test_keras_lora_file_resumes_without_model(keras: Any, tmp_path: Path) -> None:
    saved, path = _saved(keras, tmp_path, "keras")
    run = ckptcompat.resume(path)
    assert [bool(getattr(layer, "lora_enabled", False)) for layer in run.model.layers] == \
        [bool(getattr(layer, "lora_enabled", False)) for layer in saved.layers]
    assert len(run.report.lora_restarted) == 4
    np.testing.assert_allclose(_outputs(run.model), _outputs(saved), rtol=1e-5, atol=1e-6)
    assert int(_value(run.model.optimizer.iterations)) == 4


def test_keras_lora_file_into_model_without_lora(keras: Any, tmp_path: Path) -> None:
    """The merged kernels fit a plain model; its optimizer trains the kernels the file's froze:
    refused with the way on, and ``optimizer="reset"`` restores the weights as native does."""
    saved, path = _saved(keras, tmp_path, "keras")
    plain = _compiled(keras, lora=False)
    before = [_value(v).tobytes() for v in plain.weights]
    with pytest.raises(ckptcompat.IncompatibleStateError, match="optimizer") as caught:
        ckptcompat.resume(path, model=plain)
    assert 'optimizer="reset"' in str(caught.value)
    assert [_value(v).tobytes() for v in plain.weights] == before  # nothing assigned
    run = ckptcompat.resume(path, model=plain, optimizer="reset")
    native = _compiled(keras, lora=False)
    native.load_weights(str(path))
    assert run.report.optimizer_reset
    assert [_value(v).tobytes() for v in plain.weights] == [_value(v).tobytes() for v in native.weights]
    np.testing.assert_allclose(_outputs(plain), _outputs(saved), rtol=1e-5, atol=1e-6)


def test_checkpoint_store_of_lora_model_resumes_exactly(keras: Any, tmp_path: Path) -> None:
    """The store keeps the exact kernels and factors (beside Keras's merged layout, which Keras
    loads as its own): a fresh model resumes bitwise, no factor restarted."""
    from ckptcompat.callbacks import Checkpoint

    saved = _trained(keras, [Checkpoint(str(tmp_path / "run"))])
    fresh = _compiled(keras)
    run = ckptcompat.resume(tmp_path / "run", model=fresh)
    assert run.report.lora_restarted == () and run.initial_epoch == 2
    assert [_value(v).tobytes() for v in fresh.weights] == [_value(v).tobytes() for v in saved.weights]
    assert [_value(v).tobytes() for v in fresh.optimizer.variables] == \
        [_value(v).tobytes() for v in saved.optimizer.variables]
    native = keras.saving.load_model(str(run.source.path))
    np.testing.assert_allclose(_outputs(native), _outputs(saved), rtol=1e-5, atol=1e-6)


def test_enable_lora_after_build(keras: Any, tmp_path: Path) -> None:
    """``layer.enable_lora(2)`` on a built model: Keras 3.0 then writes no ``lora_rank`` into the
    config, and the reader finds the LoRA layer from the optimizer variables' shapes (warned; it
    refused before, ``optimizer="reset"`` the way on); later releases record it. Either way the file
    resumes as above, the optimizer's step counter and the slots of the other variables exact."""
    x, y = _data()

    def build() -> Any:
        model = _build(keras, lora=False)
        model.layers[-2].enable_lora(2)
        model.compile(keras.optimizers.Adam(0.01), "mse")
        return model

    saved = build()
    saved.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    saved.save(str(path))
    fresh = build()
    run = ckptcompat.resume(path, model=fresh, steps_per_epoch=2)
    assert int(_value(fresh.optimizer.iterations)) == 4 and not run.report.optimizer_reset
    assert run.initial_epoch == 2 and len(run.report.lora_restarted) == 2
    rebuilt = ckptcompat.resume(path, steps_per_epoch=2).model  # the config gets lora_rank (3.0: inferred)
    assert [layer.lora_enabled for layer in rebuilt.layers[-2:]] == [True, False]
    native = build()
    native.load_weights(str(path))
    assert [_value(v).tobytes() for v in fresh.weights if not _is_factor(v)] == \
        [_value(v).tobytes() for v in native.weights if not _is_factor(v)]
    np.testing.assert_allclose(_outputs(fresh), _outputs(saved), rtol=1e-5, atol=1e-6)


def test_keras_lora_file_is_not_written_as_a_tf1_bundle_with_orphan_slots(keras: Any, tmp_path: Path) -> None:
    """A TF1 bundle names a slot after its variable: the factors' slots without the factors would
    read back as weights; refused, nothing written."""
    from ckptcompat import formats

    _, path = _saved(keras, tmp_path, "keras")
    state = ckptcompat.read(path)
    with pytest.raises(ckptcompat.IncompatibleStateError, match="lora_kernel_a"):
        formats.get("tf_bundle").write(tmp_path / "tf1" / "model.ckpt", state)
    assert not (tmp_path / "tf1").exists()
    formats.get("tf_bundle").write(tmp_path / "tf1" / "model.ckpt", state.replace(optimizer=None))


def test_store_into_other_lora_layers(keras: Any, tmp_path: Path) -> None:
    """A store whose LoRA layers are not the live model's (LoRA on the Embedding only; the live
    model has it on the Dense too, or nowhere): the merged kernels are restored, as Keras saves
    them (bitwise what native load_weights gives from the store's model.keras), the live factors
    restart. Without LoRA the optimizer trained other variables (the Embedding's factors), so
    ``optimizer="reset"`` is the way on; with LoRA on the Dense too, its kernel is frozen under
    the factors: the slots the checkpoint keeps for it are left out, said (tests/resuming/
    test_resume_frozen_slots.py), and the rest of the optimizer resumes."""
    from ckptcompat.callbacks import Checkpoint

    saved = _trained(keras, [Checkpoint(str(tmp_path / "run"))], lora={"embedding"})
    for lora, restarted in ((True, 4), (False, 0)):
        live = _compiled(keras, lora)
        if lora:
            kept = ckptcompat.resume(tmp_path / "run", model=_compiled(keras, lora))
            frozen = sorted(t.split(":")[0].rpartition("/")[2] for t in kept.report.translated if "does not train" in t)
            assert frozen == ["m", "v"] and kept.report.restored_slots and kept.report.iterations
        else:
            with pytest.raises(ckptcompat.IncompatibleStateError, match='optimizer="reset"'):
                ckptcompat.resume(tmp_path / "run", model=live)
        run = ckptcompat.resume(tmp_path / "run", model=live, optimizer="reset")
        assert len(run.report.lora_restarted) == restarted
        native = _compiled(keras, lora)
        native.load_weights(str(run.source.path))
        assert [_value(v).tobytes() for v in live.weights if not _is_factor(v)] == \
            [_value(v).tobytes() for v in native.weights if not _is_factor(v)]
        np.testing.assert_allclose(_outputs(live), _outputs(saved), rtol=1e-5, atol=1e-6)


def test_store_keeps_lora_alpha(keras: Any, tmp_path: Path) -> None:
    """``enable_lora(2, lora_alpha=8)``: the layer scales its factors by 4. Keras rebuilds the
    layer from its config without the alpha (scale 1); resume gives it back and restores the
    store's exact values. A live layer of another scale takes the merged kernel instead (its
    factors restart, the other slots are restored)."""
    import inspect as python_inspect

    from ckptcompat.callbacks import Checkpoint

    if "lora_alpha" not in python_inspect.signature(keras.layers.Dense.enable_lora).parameters:
        pytest.skip("this Keras has no lora_alpha")
    x, y = _data()

    def build(alpha: int) -> Any:
        model = _build(keras, lora=False)
        model.layers[-2].enable_lora(2, lora_alpha=alpha)
        model.compile(keras.optimizers.Adam(0.01), "mse")
        return model

    saved = build(8)
    saved.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Checkpoint(str(tmp_path / "run"))])
    run = ckptcompat.resume(tmp_path / "run")
    assert run.report.lora_restarted == () and run.model.layers[-2].lora_alpha == 8
    assert [_value(v).tobytes() for v in run.model.weights] == [_value(v).tobytes() for v in saved.weights]
    np.testing.assert_allclose(_outputs(run.model), _outputs(saved), rtol=1e-5, atol=1e-6)
    other = build(2)
    run = ckptcompat.resume(tmp_path / "run", model=other)
    assert len(run.report.lora_restarted) == 2 and int(_value(other.optimizer.iterations)) == 4
    np.testing.assert_allclose(_outputs(other), _outputs(saved), rtol=1e-5, atol=1e-6)


def _two_dense(keras: Any, alphas: tuple[Any, Any]) -> Any:
    """Input(8) -> Dense(8) -> Dense(8) -> Dense(2); ``alphas``: per hidden Dense, its
    ``enable_lora(2, lora_alpha=...)`` (None: no LoRA)."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(8), keras.layers.Dense(2)])
    for layer, alpha in zip(model.layers[:2], alphas):
        if alpha is not None:
            layer.enable_lora(2, lora_alpha=alpha)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


@pytest.mark.parametrize("saved_alphas, live_alphas", [((8, 2), (2, 8)), ((8, None), (None, 8))],
                         ids=["scales_swapped", "lora_moved"])
def test_store_lora_layers_are_matched_layer_by_layer(keras: Any, tmp_path: Path, saved_alphas: Any,
                                                      live_alphas: Any) -> None:
    """The store's exact factors go only to the live LoRA layer they match, of the same rank and
    scale: with the two layers' scales swapped, or LoRA moved to the other (same-shaped) layer, the
    merged kernels are restored and the live factors restart (the saved function, not another)."""
    import inspect as python_inspect

    from ckptcompat.callbacks import Checkpoint

    if "lora_alpha" not in python_inspect.signature(keras.layers.Dense.enable_lora).parameters:
        pytest.skip("this Keras has no lora_alpha")
    rng = np.random.default_rng(7)
    x, y = rng.random((16, 8), dtype=np.float32), rng.random((16, 2), dtype=np.float32)
    saved = _two_dense(keras, saved_alphas)
    saved.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Checkpoint(str(tmp_path / "run"))])
    live = _two_dense(keras, live_alphas)
    run = ckptcompat.resume(tmp_path / "run", model=live, optimizer="reset")
    assert run.report.lora_restarted
    np.testing.assert_allclose(_value(live(x[:4])), _value(saved(x[:4])), rtol=1e-5, atol=1e-6)


def test_weights_h5_of_lora_sgd_into_model_without_lora_is_refused(keras: Any, tmp_path: Path) -> None:
    """A ``.weights.h5`` keeps the optimizer variables by position; a LoRA run's (SGD with momentum:
    the factors' momentums, not the kernels') do not fit a plain model's: refused with the way on,
    nothing assigned (they were dropped and every momentum created at zero before)."""
    x, y = _data()
    saved = _build(keras)
    saved.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    saved.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "m.weights.h5"
    saved.save_weights(str(path))
    plain = _build(keras, lora=False)
    plain.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    plain.optimizer.build(plain.trainable_variables)
    before = [_value(v).tobytes() for v in plain.weights]
    with pytest.raises(ckptcompat.IncompatibleStateError, match='optimizer="reset"'):
        ckptcompat.resume(path, model=plain, initial_epoch=2)
    assert [_value(v).tobytes() for v in plain.weights] == before
    run = ckptcompat.resume(path, model=plain, initial_epoch=2, optimizer="reset")
    assert run.report.optimizer_reset
    np.testing.assert_allclose(_outputs(plain), _outputs(saved), rtol=1e-5, atol=1e-6)


def test_lora_state_is_not_written_as_weights_h5(keras: Any, tmp_path: Path) -> None:
    from ckptcompat import formats
    from ckptcompat.runtime import capture

    model = _trained(keras)
    with pytest.raises(ckptcompat.errors.UnsupportedFormatError, match="LoRA"):
        formats.get("keras_zip").write(tmp_path / "m.weights.h5", capture(model))
    assert not (tmp_path / "m.weights.h5").exists()


def test_lora_on_an_attention_projection_is_refused_by_the_store(keras: Any, tmp_path: Path) -> None:
    """LoRA on a MultiHeadAttention projection (the transformer way): the attention layer's config
    does not describe it, so the store cannot write it as Keras does; a typed error names the
    factors, nothing committed."""
    from ckptcompat.callbacks import Checkpoint

    inputs = keras.Input((3, 4))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(mha(inputs, inputs))))
    mha.query_dense.enable_lora(2)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(1)
    with pytest.raises(ckptcompat.errors.UnsupportedFormatError, match="lora_kernel_a"):
        model.fit(rng.random((8, 3, 4)), rng.random((8, 2)), epochs=1, verbose=0,
                  callbacks=[Checkpoint(str(tmp_path / "run"))])
    assert not list((tmp_path / "run").glob("ckpt-*"))
