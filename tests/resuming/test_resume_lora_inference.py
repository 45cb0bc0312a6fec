"""Keras 3.0 records no ``lora_rank`` after ``enable_lora`` on a built layer: the reader infers the
LoRA layers from the optimizer variables' shapes, for Keras 3.0 files only and only with a rank below
the kernel's dimensions. A review found a Keras 3.15 file whose optimizer misfits for another reason
(a layer frozen after compiling) read as LoRA; and the refusal of a later Keras 3's quantized layers
must not catch TF Model Optimization's quantization-aware classes (``custom_objects`` supplies those)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_module


def _dense_config(*units_and_names: tuple[int, str]) -> dict[str, Any]:
    layers = [{"class_name": "Dense", "name": name, "config": {"name": name, "units": units, "use_bias": False}}
              for units, name in units_and_names]
    return {"class_name": "Functional", "config": {"name": "m", "layers": layers}}


def test_ranks_are_inferred_where_factor_shapes_account_for_every_slot() -> None:
    from ckptcompat.formats.keras_zip._lora import infer_ranks

    config = _dense_config((5, "d"), (3, "head"))
    trainable = [("d/kernel", (6, 5)), ("head/kernel", (5, 3))]
    slots = [(), (), (6, 2), (6, 2), (2, 5), (2, 5), (5, 3), (5, 3)]  # Adam: m, v side by side
    assert infer_ranks(config, trainable, slots) == {"d": 2}
    assert infer_ranks(config, trainable, [(), (), (6, 5), (6, 5), (5, 3), (5, 3)]) == {}  # no LoRA


def test_lora_on_a_narrow_head_is_inferred() -> None:
    """``enable_lora(2)`` on a ``Dense(1)`` head: a rank above one kernel dimension is legal LoRA."""
    from ckptcompat.formats.keras_zip._lora import infer_ranks

    config = _dense_config((1, "head"))
    assert infer_ranks(config, [("head/kernel", (5, 1))], [(), (), (5, 2), (5, 2), (2, 1), (2, 1)]) == {"head": 2}


@pytest.mark.parametrize("version,inferred", [("3.0.5", True), ("3.1.1", True), ("3.2.0", False)])
def test_inference_is_for_the_releases_that_do_not_record_lora(tmp_path: Path, version: str, inferred: bool) -> None:
    """Keras 3.0 (and 3.1's Embedding) write no ``lora_rank`` after ``enable_lora``; from 3.2 every
    layer records it: a misfit there is no unrecorded LoRA (the committed Keras 3.0 file, its
    ``keras_version`` rewritten)."""
    import zipfile

    from ckptcompat.formats import keras_zip
    from tests._paths import FIXTURES

    source = FIXTURES / "tf216-keras30" / "finetuned" / "lora_adam" / "model.keras"
    target = tmp_path / "model.keras"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            new.writestr(name, data.replace(b'"3.0.5"', f'"{version}"'.encode()) if name == "metadata.json" else data)
    if inferred:
        assert "dense/lora_kernel_a" in keras_zip.read(target).optimizer.slots
    else:
        with pytest.raises(ckptcompat.IncompatibleStateError):
            keras_zip.read(target)


def test_a_rank_not_below_the_kernel_is_no_lora_reading() -> None:
    """``(4, 4)`` then ``(4, 3)`` slots where the config says one ``(4, 3)`` kernel: "rank 4", at or
    above both kernel dimensions, is no low-rank factorization of it (the slots are another layer's)."""
    from ckptcompat.formats.keras_zip._lora import infer_ranks

    config = _dense_config((3, "l"))
    assert infer_ranks(config, [("l/kernel", (4, 3))], [(), (), (4, 4), (4, 4), (4, 3), (4, 3)]) == {}


@pytest.mark.backend
def test_a_later_keras3_file_whose_optimizer_misfits_is_not_read_as_lora(tmp_path: Path) -> None:
    """Keras 3.1+ record ``lora_rank``: a misfit there (a layer frozen after compiling) is not
    rebuilt with LoRA; the optimizer variables are read as built before freezing and the frozen
    layer's slots left out (tests/resuming/test_resume_frozen_slots.py)."""
    keras = keras_module()
    if keras.version().startswith("3.0."):
        pytest.skip("Keras 3.0 files are the ones inferred")
    x = np.random.RandomState(0).rand(16, 4).astype("float32")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, use_bias=False, name="l")(keras.layers.Dense(4, use_bias=False, name="f")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, x.sum(1, keepdims=True), batch_size=8, epochs=1, verbose=0)
    model.get_layer("f").trainable = False  # without compiling again: the optimizer keeps f's slots
    path = tmp_path / "m.keras"
    model.save(str(path))
    kept = ckptcompat.resume(path, steps_per_epoch=2)
    assert sorted(t.split(":")[0] for t in kept.report.translated if "does not train" in t) == \
        ["dropped f/kernel/m", "dropped f/kernel/v"]
    assert sorted(kept.report.restored_slots) == ["l/kernel/m", "l/kernel/v", "out/bias/m", "out/bias/v",
                                                   "out/kernel/m", "out/kernel/v"]
    run = ckptcompat.resume(path, steps_per_epoch=2, optimizer="reset")
    assert not any(getattr(layer, "lora_enabled", False) for layer in [*run.model.layers, *kept.model.layers])


def test_tfmot_quantization_classes_are_not_refused_as_keras_quantization() -> None:
    from ckptcompat.resuming.from_config import _refuse_quantized

    _refuse_quantized(["QuantizeWrapperV2", "QuantizeLayer", "Default8BitQuantizeConfig"], "m.h5", ValueError("x"))
    with pytest.raises(ckptcompat.UnsupportedFormatError, match="quantized by a later Keras 3"):
        _refuse_quantized(["AbsMaxQuantizer", "Int8QuantizationConfig", "QuantizedDTypePolicy"], "m.keras",
                          ValueError("x"))
