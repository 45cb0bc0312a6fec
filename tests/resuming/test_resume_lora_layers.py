"""Every layer class of the running Keras 3 that can enable LoRA (enumerated from
``keras.layers``: the classes with ``enable_lora``, not a hand list), each built with
``lora_rank=2`` in a small model, trained, saved as ``.keras`` and ``.weights.h5``: ckptcompat
resumes it into a fresh model (other generated names) with every weight but the factors bitwise as
native ``load_weights``, the ``*_b`` factors zeroed, the outputs of the saved model, the other
optimizer slots bitwise as saved; and a Checkpoint store of it resumes bitwise. A class the reader
does not know as LoRA-capable fails here (the reader's table is checked against the release)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_backend, keras_module
from tests._paths import FIXTURES, load_script

pytestmark = pytest.mark.backend  # Keras 3 on any backend (skips on Keras 2)

_zoo = load_script(FIXTURES / "_zoo.py", "_zoo")  # the corpus generator's enumeration of keras.layers


def _lora_classes() -> list[str]:
    if keras_backend() is None:
        return []
    keras = keras_module()
    return [name for name in _zoo.classes(keras) if hasattr(getattr(keras.layers, name), "enable_lora")]


def _value(v: Any) -> np.ndarray:
    return np.asarray(keras_module().ops.convert_to_numpy(v))


def _build(keras: Any, name: str, rank: int) -> Any:
    plain = _zoo._make(keras, name)  # noqa: SLF001 -- the generator's constructor arguments
    layer = type(plain).from_config({**plain.get_config(), "lora_rank": 2, "name": "lora_layer"})
    x = keras.Input(_zoo.SHAPES[rank])
    out = keras.layers.Flatten()(_zoo.apply(layer, x, "one"))
    return keras.Model(x, keras.layers.Dense(2)(out))


def _data(rank: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, _, _ = _zoo._zoo_data(_zoo.SHAPES[rank], 3)  # noqa: SLF001
    return x, y


def _fresh(keras: Any, name: str, rank: int) -> Any:
    _build(keras, name, rank)
    model = _build(keras, name, rank)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _is_factor(v: Any) -> bool:
    return str(v.path).rpartition("/")[2].startswith("lora_")


@pytest.fixture(params=_lora_classes() or ["(no Keras 3)"])
def lora_class(request: pytest.FixtureRequest) -> tuple[Any, str, int]:
    if keras_backend() is None:
        pytest.skip("LoRA layers exist in Keras 3 only")
    keras = keras_module()
    rank, _, reason = _zoo._probe(keras, request.param)  # noqa: SLF001
    assert rank is not None, reason
    return keras, request.param, rank


def test_reader_knows_every_lora_class(lora_class: tuple[Any, str, int]) -> None:
    from ckptcompat.formats.keras_zip._layout import lora_frozen

    _, name, _ = lora_class
    assert lora_frozen(name), f"{name} can enable LoRA; the reader's table does not know it"


@pytest.mark.parametrize("kind", ["keras", "weights_h5"])
def test_lora_class_resumes_from_a_keras_file(lora_class: tuple[Any, str, int], tmp_path: Path, kind: str) -> None:
    keras, name, rank = lora_class
    x, y = _data(rank)
    saved = _build(keras, name, rank)
    saved.compile(keras.optimizers.Adam(0.01), "mse")
    saved.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / ("m.keras" if kind == "keras" else "m.weights.h5")
    saved.save(str(path)) if kind == "keras" else saved.save_weights(str(path))
    native = _fresh(keras, name, rank)
    native.load_weights(str(path))
    fresh = _fresh(keras, name, rank)
    run = ckptcompat.resume(path, model=fresh, initial_epoch=2)
    assert len(run.report.lora_restarted) == 2
    for mine, theirs in zip(fresh.weights, native.weights):
        if not _is_factor(mine):
            assert _value(mine).tobytes() == _value(theirs).tobytes(), mine.path
        elif str(mine.path).endswith("_b"):
            assert not _value(mine).any(), mine.path
    np.testing.assert_allclose(_value(fresh(x[:4])), _value(saved(x[:4])), rtol=1e-4, atol=1e-5)
    assert int(_value(fresh.optimizer.iterations)) == 4
    opt, ref = fresh.optimizer, saved.optimizer
    for i, var in enumerate(fresh.trainable_variables):
        m, m_saved = _value(opt._momentums[i]), _value(ref._momentums[i])  # noqa: SLF001
        assert (not m.any()) if _is_factor(var) else m.tobytes() == m_saved.tobytes(), var.path


def test_lora_class_store_resumes_bitwise(lora_class: tuple[Any, str, int], tmp_path: Path) -> None:
    from ckptcompat.callbacks import Checkpoint

    keras, name, rank = lora_class
    x, y = _data(rank)
    saved = _build(keras, name, rank)
    saved.compile(keras.optimizers.Adam(0.01), "mse")
    saved.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[Checkpoint(str(tmp_path / "run"))])
    fresh = _fresh(keras, name, rank)
    run = ckptcompat.resume(tmp_path / "run", model=fresh)
    assert run.report.lora_restarted == () and run.initial_epoch == 2
    assert [_value(v).tobytes() for v in fresh.weights] == [_value(v).tobytes() for v in saved.weights]
    assert [_value(v).tobytes() for v in fresh.optimizer.variables] == \
        [_value(v).tobytes() for v in saved.optimizer.variables]
