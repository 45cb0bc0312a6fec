"""Keras 3 models quantized with ``model.quantize("int8")`` (Keras >= 3.1), every layer class of the
running Keras that quantization turns int8 (enumerated from ``keras.layers`` through the corpus
generator's zoo, not listed by hand). Before, the reader named an int8 layer's variables ``var_<i>``
(its class's float layout did not fit) and the Checkpoint callback could not save such a model at all
(``kernel_scale`` not in the layout). Now the int8 layout is read by name: a Keras file resumes into
a fresh quantized model (other generated names) bitwise as native ``load_weights``, optimizer
included, and a Checkpoint store bitwise. A LoRA layer on an int8 kernel resumes from a Keras file
(factors restarted); the store refuses it with a typed error (Keras re-quantizes the merged kernel)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_backend, keras_module
from tests._paths import FIXTURES, load_script

pytestmark = pytest.mark.backend  # Keras 3 on any backend (skips on Keras 2)

_zoo = load_script(FIXTURES / "_zoo.py", "_zoo")


@pytest.fixture(autouse=True)
def _no_full_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras runs a full ``gc.collect()`` each time quantization deletes a float kernel (to free
    device memory sooner): in a test process holding the rest of the suite's objects that is most
    of these tests' time (~0.5 s each). Collection only frees memory: skip it here."""
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)


def _value(v: Any) -> np.ndarray:
    return np.asarray(keras_module().ops.convert_to_numpy(v))


def _build(keras: Any, name: str, rank: int, lora: bool = False) -> Any:
    layer = _zoo._make(keras, name)  # noqa: SLF001 -- the generator's constructor arguments
    x = keras.Input(_zoo.SHAPES[rank])
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.Flatten()(_zoo.apply(layer, x, "one"))))
    model.quantize("int8")
    if lora:
        layer.enable_lora(2)
    return model


def _int8_classes() -> list[tuple[str, int]]:
    """(class, input rank) of every zoo class that ``quantize("int8")`` quantizes."""
    if keras_backend() is None or not hasattr(keras_module().Model, "quantize"):
        return []
    keras = keras_module()
    found = []
    for name in _zoo.classes(keras):
        if name in _zoo.NOT_LAYERS or getattr(keras.layers, name).quantize is keras.layers.Layer.quantize:
            continue  # a class that does not override Layer.quantize (which raises) is never quantized
        rank, _, _ = _zoo._probe(keras, name)  # noqa: SLF001
        if rank is None:
            continue
        try:
            model = _build(keras, name, rank)
        except Exception:  # noqa: BLE001 -- not quantizable in a small model: not int8 here
            continue
        if getattr(model.layers[1], "quantization_mode", None) == "int8":
            found.append((name, rank))
    return found


_CLASSES = _int8_classes()


@pytest.fixture(params=_CLASSES or [("(none)", 0)], ids=lambda p: p[0])
def int8_class(request: pytest.FixtureRequest) -> tuple[Any, str, int]:
    if not _CLASSES:
        pytest.skip("no Keras 3 with model.quantize here")
    return (keras_module(), *request.param)


def _trained(keras: Any, name: str, rank: int, callbacks: Any = (), lora: bool = False) -> tuple[Any, Any]:
    x, y, _, _ = _zoo._zoo_data(_zoo.SHAPES[rank], 3)  # noqa: SLF001
    model = _build(keras, name, rank, lora)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=list(callbacks))
    return model, x


def _fresh(keras: Any, name: str, rank: int, lora: bool = False) -> Any:
    _build(keras, name, rank, lora)
    model = _build(keras, name, rank, lora)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _bytes(variables: Any) -> list[bytes]:
    return [_value(v).tobytes() for v in variables]


def test_int8_layer_resumes_from_a_keras_file(int8_class: tuple[Any, str, int], tmp_path: Path) -> None:
    """One trained model, written as ``.keras`` and as ``.weights.h5``: each resumes as native loads it."""
    keras, name, rank = int8_class
    saved, _ = _trained(keras, name, rank)
    for path in (tmp_path / "m.keras", tmp_path / "m.weights.h5"):
        saved.save(str(path)) if path.suffix == ".keras" else saved.save_weights(str(path))
        native = _fresh(keras, name, rank)
        native.load_weights(str(path))
        fresh = _fresh(keras, name, rank)
        ckptcompat.resume(path, model=fresh, initial_epoch=2)
        assert _bytes(fresh.weights) == _bytes(native.weights) == _bytes(saved.weights), path.name
        assert _bytes(fresh.optimizer.variables) == _bytes(saved.optimizer.variables), path.name


def test_int8_layer_store_resumes_bitwise(int8_class: tuple[Any, str, int], tmp_path: Path) -> None:
    from ckptcompat.callbacks import Checkpoint

    keras, name, rank = int8_class
    saved, _ = _trained(keras, name, rank, [Checkpoint(str(tmp_path / "run"))])
    fresh = _fresh(keras, name, rank)
    run = ckptcompat.resume(tmp_path / "run", model=fresh)
    assert run.initial_epoch == 2 and run.report.matching in ("name", "structure")
    assert _bytes(fresh.weights) == _bytes(saved.weights)
    assert _bytes(fresh.optimizer.variables) == _bytes(saved.optimizer.variables)
    rebuilt = ckptcompat.resume(tmp_path / "run")
    assert _bytes(rebuilt.model.weights) == _bytes(saved.weights)


def test_lora_on_an_int8_kernel(keras: Any, tmp_path: Path) -> None:
    """QLoRA: a Keras file resumes with the factors restarted on Keras's re-quantized merged kernel;
    the store refuses the model with a typed error, nothing half-written."""
    if not any(name == "Dense" for name, _ in _CLASSES):
        pytest.skip("no int8 Dense here")
    from ckptcompat.callbacks import Checkpoint

    saved, x = _trained(keras, "Dense", 2, lora=True)
    path = tmp_path / "m.keras"
    saved.save(str(path))
    native = _fresh(keras, "Dense", 2, lora=True)
    native.load_weights(str(path))
    fresh = _fresh(keras, "Dense", 2, lora=True)
    run = ckptcompat.resume(path, model=fresh, initial_epoch=2)
    assert len(run.report.lora_restarted) == 2
    assert [b for v, b in zip(fresh.weights, _bytes(fresh.weights)) if "lora_" not in v.path] == \
        [b for v, b in zip(native.weights, _bytes(native.weights)) if "lora_" not in v.path]
    np.testing.assert_allclose(_value(fresh(x[:4])), _value(native(x[:4])), rtol=1e-6, atol=1e-6)
    model = _fresh(keras, "Dense", 2, lora=True)
    with pytest.raises(ckptcompat.errors.UnsupportedFormatError, match="LoRA"):
        model.fit(x, x[:, :2], epochs=1, verbose=0, callbacks=[Checkpoint(str(tmp_path / "run"))])
    assert not list((tmp_path / "run").glob("ckpt-*"))


def test_partial_never_puts_int8_codes_into_floats(keras: Any, tmp_path: Path) -> None:
    """``partial=True`` between an int8 file and a float model (either way): the kernels have the
    same shape but other meanings; they are left out and reported, never assigned."""
    if not any(name == "Dense" for name, _ in _CLASSES):
        pytest.skip("no int8 Dense here")
    saved, _ = _trained(keras, "Dense", 2)
    path = tmp_path / "int8.keras"
    saved.save(str(path))
    plain = _zoo._make(keras, "Dense")  # noqa: SLF001
    x = keras.Input(_zoo.SHAPES[2])
    floats = keras.Model(x, keras.layers.Dense(2)(keras.layers.Flatten()(plain(x))))
    floats.compile(keras.optimizers.Adam(0.01), "mse")
    before = _bytes(floats.weights)
    run = ckptcompat.resume(path, model=floats, partial=True)
    kernels = [v for v in floats.weights if v.path.endswith("kernel")]
    assert kernels and all(b == a for v, a, b in zip(floats.weights, before, _bytes(floats.weights))
                           if v.path.endswith("kernel"))
    assert any("dtype" in reason for _, reason in run.report.skipped)
    floats.save(str(tmp_path / "float.keras"))
    quantized = _fresh(keras, "Dense", 2)
    before = _bytes(quantized.weights)
    ckptcompat.resume(tmp_path / "float.keras", model=quantized, partial=True)
    assert all(b == a for v, a, b in zip(quantized.weights, before, _bytes(quantized.weights))
               if v.path.endswith("kernel"))


def test_store_refuses_modes_it_does_not_lay_out(keras: Any, tmp_path: Path) -> None:
    """``quantize("int4")`` (Int4DTypePolicy, mode ``int4/128`` in newer releases): the Checkpoint
    callback refuses with a typed error naming the layer and mode, nothing committed."""
    if not any(name == "Dense" for name, _ in _CLASSES):
        pytest.skip("no int8 Dense here")
    from ckptcompat.callbacks import Checkpoint

    x, y, _, _ = _zoo._zoo_data(_zoo.SHAPES[2], 3)  # noqa: SLF001
    model = keras.Sequential([keras.Input(_zoo.SHAPES[2]), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.quantize("int4")
    model.compile(keras.optimizers.Adam(0.01), "mse")
    with pytest.raises(ckptcompat.errors.UnsupportedFormatError, match="int4"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Checkpoint(str(tmp_path / "run"))])
    assert not list((tmp_path / "run").glob("ckpt-*"))
