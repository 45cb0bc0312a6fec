"""Optimizer variables a ``.weights.h5`` keeps by position only (``optimizer/vars/<i>``, no config):
placed onto the live optimizer when count and every shape fit, refused with the way on when they do
not, never dropped silently. Keras 3.0 and tf-keras record no optimizer class in the file.

Cases a review found refused, or slots dropped, after the refusal came in: a file of an optimizer
that was never built (scalars only); a Keras 2 file (no learning-rate variable) into a Keras 3
optimizer (which has one); a class-less file placed through the layout table of the live class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _frameworks import keras_module
from tests._paths import FIXTURES

pytestmark = pytest.mark.framework


def _value(v: Any) -> np.ndarray:
    convert = getattr(getattr(keras_module(), "ops", None), "convert_to_numpy", None)
    return np.asarray(convert(v) if convert is not None else v)


def _model() -> Any:
    keras = keras_module()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3)(inputs)))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_weights_file_of_a_never_built_optimizer_resumes(tmp_path: Path) -> None:
    """Compiled, never trained: the file keeps the step counter (and Keras 3 the rate) only."""
    saved = _model()
    path = tmp_path / "m.weights.h5"
    saved.save_weights(str(path))
    fresh = _model()
    run = ckptcompat.resume(path, model=fresh, initial_epoch=0)
    assert not run.report.optimizer_reset
    assert [_value(v).tobytes() for v in fresh.weights] == [_value(v).tobytes() for v in saved.weights]


@pytest.mark.parametrize("legacy", [False, True], ids=["optimizer", "legacy_optimizer"])
@pytest.mark.parametrize("producer", ["tf221-tfkeras", "tf212", "tf216-keras30"])
def test_keras_weights_file_optimizer_is_placed_by_position(producer: str, legacy: bool) -> None:
    """A ``.weights.h5`` with Adam state from tf-keras 2.21 / tf.keras 2.12 (no learning-rate
    variable) or Keras 3.0 (no class recorded), into a fresh model (also with Keras 2's OptimizerV2
    ``optimizers.legacy.Adam``, placed through the live class's layout table): every slot and the
    step counter as the same run's full-model file restores them."""
    folder = FIXTURES / producer / "mlp_adam"
    if not (folder / "model.weights.h5").is_file():
        pytest.skip(f"{producer} wrote no Keras v3 weights file")
    reference = ckptcompat.resume(folder / "model.keras")
    if getattr(reference.model, "optimizer", None) is None:  # Keras 3.0's .keras saved after the .h5
        reference = ckptcompat.resume(folder / "model.h5")
    keras = keras_module()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    try:
        adam = (keras.optimizers.legacy if legacy else keras.optimizers).Adam(0.01)
    except (ImportError, AttributeError):  # Keras 3: "keras.optimizers.legacy is not supported"
        pytest.skip("this Keras has no optimizers.legacy")
    model.compile(adam, "sparse_categorical_crossentropy")
    run = ckptcompat.resume(folder / "model.weights.h5", model=model, initial_epoch=2)
    assert run.report.restored_slots, "the optimizer state was not placed"
    assert int(_value(model.optimizer.iterations)) == int(_value(reference.model.optimizer.iterations)) == 4
    want = _slots_by_position(reference.model)  # generated names and the optimizer's order differ
    assert _slots_by_position(model) == want and len(want) == 8  # m and v of 2 kernels and 2 biases


def _slots_by_position(model: Any) -> dict[tuple[int, str], bytes]:
    """(position of the variable among the model's weights, canonical slot) -> the slot's bytes, from
    the live optimizer (ckptcompat's capture of live objects, no file read)."""
    from ckptcompat import runtime

    captured = runtime.capture(model)
    position = {name: i for i, name in enumerate(captured.weights)}
    return {(position[var], slot): np.asarray(value).tobytes()
            for var, per in captured.optimizer.slots.items() for slot, value in per.items()}


def _sgd_model(optimizer: Any) -> Any:
    keras = keras_module()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer, "mse")
    return model


def test_trained_sgd_without_momentum_is_not_taken_for_a_never_built_optimizer(tmp_path: Path) -> None:
    """SGD(momentum=0) keeps only scalars even after training (its step counter > 0): into another
    optimizer it is refused with the way on (a review found it dropped without a word, counter 0),
    into SGD its counter is restored, also where the rate is a schedule (no rate variable)."""
    keras = keras_module()
    x = np.random.RandomState(3).rand(24, 4).astype("float32")
    saved = _sgd_model(keras.optimizers.SGD(0.01))
    saved.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "sgd.weights.h5"
    saved.save_weights(str(path))
    if ckptcompat.read(path).optimizer is None:
        pytest.skip("this tf.keras (2.11) writes .weights.h5 in the legacy HDF5 layout: no optimizer in it")
    with pytest.raises(ckptcompat.IncompatibleStateError, match='optimizer="reset"'):
        ckptcompat.resume(path, model=_sgd_model(keras.optimizers.Adam(0.01)), initial_epoch=1)
    model = _sgd_model(keras.optimizers.SGD(0.01))
    ckptcompat.resume(path, model=model, initial_epoch=1)
    assert int(_value(model.optimizer.iterations)) == 3
    scheduled = _sgd_model(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)))
    if hasattr(keras, "ops"):  # Keras 3 stores the fixed rate as a variable: it conflicts with the schedule
        with pytest.raises(ckptcompat.IncompatibleStateError, match="learning rate"):
            ckptcompat.resume(path, model=scheduled, initial_epoch=1)
    else:  # Keras 2 stores no rate: the counter goes on under the model's schedule
        ckptcompat.resume(path, model=scheduled, initial_epoch=1)
        assert int(_value(scheduled.optimizer.iterations)) == 3


def test_a_trained_weights_file_resumes_without_a_warning_about_its_slots(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Every weights file of a trained, compiled model keeps its optimizer by position (no config):
    that is the format, not a loss. Resuming one (with the epoch given) warns of nothing; the log
    says, at INFO, that the variables were placed by position, and every slot is restored bitwise."""
    import logging

    keras = keras_module()
    x = np.random.RandomState(5).rand(16, 4).astype("float32")
    saved = _model()
    saved.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "m.weights.h5"
    saved.save_weights(str(path))
    if not ckptcompat.read(path).optimizer:
        pytest.skip(f"Keras {keras.__version__} writes no optimizer into a weights file")
    model = _model()
    caplog.set_level(logging.INFO, logger="ckptcompat")
    run = ckptcompat.resume(path, model=model, initial_epoch=1)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ckptcompat")]
    assert not [w for w in warned if "optimizer" in w], warned
    assert any("placed" in r.getMessage() and "by position" in r.getMessage() for r in caplog.records
               if r.levelno == logging.INFO), "the placement by position is not logged"
    assert len(run.report.restored_slots) == 8
    assert _slots_by_position(model) == _slots_by_position(saved)


#: Nadam written by the other generation: Keras 3 keeps its momentum-cache product (``u_product``)
#: and learning rate among the optimizer's variables, tf-keras neither (both refused before)
_GENERATION_RUN = r'''
import importlib, json, sys
import numpy as np

def run(keras, action, path, optimizer="Nadam"):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(0.01), loss="mse")
    translated = []
    if action == "write":
        model.fit(np.random.RandomState(0).rand(16, 4), np.random.RandomState(1).rand(16, 2), batch_size=8,
                  epochs=2, verbose=0, shuffle=False)
        model.save_weights(path)
    else:
        import ckptcompat
        translated = list(ckptcompat.resume(path, model=model, initial_epoch=2).report.translated)
    opt = model.optimizer
    variables = opt.variables() if callable(opt.variables) else opt.variables
    product = getattr(opt, "_u_product", None)
    return {"iterations": int(np.asarray(opt.iterations)), "translated": translated,
            "u_product": None if product is None else float(np.asarray(product)),
            "slots": [np.asarray(v).tolist() for v in variables if np.ndim(v)]}

if __name__ == "__main__":
    print(json.dumps(run(importlib.import_module(sys.argv[1]), sys.argv[2], sys.argv[3], *sys.argv[4:])))
'''


def _generation_run(tmp_path: Path, module: str, action: str, path: Path, optimizer: str = "Nadam") -> dict[str, Any]:
    """The run with ``module`` (tf-keras here, Keras 3 in a process of its own)."""
    import json
    import os
    import subprocess
    import sys

    if module == "tf_keras":
        namespace: dict[str, Any] = {}
        exec(compile(_GENERATION_RUN, "nadam_run", "exec"), namespace)  # noqa: S102 -- the test's own source
        return dict(namespace["run"](keras_module(), action, str(path), optimizer))
    script = tmp_path / f"nadam_{action}.py"
    script.write_text(_GENERATION_RUN)
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, TF_USE_LEGACY_KERAS="0", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script), module, action, str(path), optimizer], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _both_generations() -> None:
    """Skip unless tf-keras runs here with Keras 3 installed beside it (the tf221-tfkeras row)."""
    from ckptcompat import runtime
    from ckptcompat._compat import PackageNotFoundError, distribution_version

    if runtime.keras_source() != "tf_keras":
        pytest.skip("runs under tf-keras with Keras 3 installed beside it (the tf221-tfkeras matrix row)")
    try:
        keras3 = distribution_version("keras")
    except PackageNotFoundError:
        keras3 = ""
    if not keras3.startswith("3."):
        pytest.skip(f"no Keras 3 beside tf-keras here ({keras3 or 'none'})")


def test_plain_sgd_weights_file_of_tf_keras_resumes_in_keras_3(tmp_path: Path) -> None:
    """tf-keras keeps a momentum slot per variable even for SGD(momentum=0); Keras 3's plain SGD keeps
    none. Its ``.weights.h5`` (slots by position) resumes in Keras 3: the step counter restored, the four
    slots (unused at momentum 0) dropped as inert and reported (it was refused: the count did not fit)."""
    _both_generations()
    path = tmp_path / "sgd.weights.h5"
    wrote = _generation_run(tmp_path, "tf_keras", "write", path, "SGD")
    assert len(wrote["slots"]) == 4  # (holding the last step's update: unused at momentum 0)
    read = _generation_run(tmp_path, "keras", "resume", path, "SGD")
    assert read["iterations"] == 4 and read["slots"] == []
    assert len([n for n in read["translated"] if n.startswith("dropped ") and "momentum" in n]) == 4, read


@pytest.mark.parametrize("writer, reader", [("keras", "tf_keras"), ("tf_keras", "keras")])
def test_nadam_weights_file_crosses_generations(tmp_path: Path, writer: str, reader: str) -> None:
    """A Keras 3.15 Nadam ``.weights.h5`` resumes in tf-keras 2.21 and a tf-keras one in Keras 3 (both
    releases are installed with TF 2.21: this runs in tf-keras, Keras 3 in a process of its own): every
    slot bitwise and the step counter; the product is the file's where it keeps one, else recomputed as
    Keras 3 defines it."""
    _both_generations()
    path = tmp_path / "nadam.weights.h5"
    wrote = _generation_run(tmp_path, writer, "write", path)
    read = _generation_run(tmp_path, reader, "resume", path)
    assert read["iterations"] == wrote["iterations"] == 4
    assert read["slots"] == wrote["slots"] and len(read["slots"]) == 8
    if writer == "keras":  # the file keeps Keras 3's product: restored as stored
        assert np.float32(read["u_product"]) == np.float32(wrote["u_product"])
    else:  # tf-keras keeps none: Keras 3's product after 4 steps, recomputed by its definition
        from ckptcompat.names.slot_meaning import nadam_u_product

        assert np.float32(read["u_product"]) == nadam_u_product(4, 0.9, keras3=True)


@pytest.mark.parametrize("writer, reader", [("keras", "tf_keras"), ("tf_keras", "keras"), ("tf_keras", "tf_keras")])
def test_adafactor_weights_file_crosses_generations(tmp_path: Path, writer: str, reader: str) -> None:
    """Keras 3 Adafactor keeps scalar ``r``/``c`` placeholders for each bias (variables under 2
    dimensions) among its variables; tf-keras keeps them outside. A ``.weights.h5`` (by position)
    resumes across (refused before: the count did not fit, even tf-keras into tf-keras): the step
    counter and every real slot bitwise; the placeholders stay zero."""
    _both_generations()
    path = tmp_path / "adafactor.weights.h5"
    wrote = _generation_run(tmp_path, writer, "write", path, "Adafactor")
    read = _generation_run(tmp_path, reader, "resume", path, "Adafactor")
    assert read["iterations"] == wrote["iterations"] == 4
    assert read["slots"] == wrote["slots"] and len(read["slots"]) == 8  # per Dense: kernel r, c, v; bias v
    assert any(np.any(s) for s in map(np.asarray, read["slots"]))


def test_a_scheduled_nadam_of_keras_3_0_to_3_9_keeps_its_schedule(tmp_path: Path) -> None:
    """Keras 3.0-3.9 Nadam creates its product before the slots; under a schedule (no rate variable) the
    product is the file's second value, where a rate would be. Resumed into the same scheduled Nadam,
    every slot, the counter and the product are restored; into a Nadam of a fixed rate, the rate stays
    the model's (the product was once taken for the rate)."""
    from ckptcompat import runtime
    from ckptcompat.names.optimizer_layouts import u_product_first

    keras = keras_module()
    if runtime.keras_source() != "keras" or not u_product_first(keras.__version__):
        pytest.skip(f"needs Keras 3.0-3.9 (Nadam's product before its slots), not {keras.__version__}")

    def compiled(rate: Any) -> Any:
        return _sgd_model(keras.optimizers.Nadam(rate))

    x = np.random.RandomState(4).rand(16, 4).astype("float32")
    saved = compiled(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5))
    saved.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "nadam.weights.h5"
    saved.save_weights(str(path))
    model = compiled(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5))
    ckptcompat.resume(path, model=model, initial_epoch=1)
    assert int(_value(model.optimizer.iterations)) == 2
    assert _slots_by_position(model) == _slots_by_position(saved)
    assert _value(model.optimizer._u_product).tobytes() == _value(saved.optimizer._u_product).tobytes()
    fixed = compiled(0.01)
    ckptcompat.resume(path, model=fixed, initial_epoch=1)
    assert np.float32(_value(fixed.optimizer.learning_rate)) == np.float32(0.01)
    assert _slots_by_position(fixed) == _slots_by_position(saved)


def test_a_weights_only_file_into_a_compiled_model_warns_that_its_optimizer_is_not_restored(
        caplog: pytest.LogCaptureFixture) -> None:
    """tf.keras 2.12's ``save_weights`` file holds no optimizer state: resumed into a compiled model
    (epoch given), the weights are restored and the log warns that the optimizer is not (it was
    silent: a fresh model resumed at epoch 2 with Adam's moments and step counter at 0, unsaid)."""
    import logging

    folder = FIXTURES / "tf212" / "mlp_adam"
    model = ckptcompat.resume(folder / "model.h5").model  # compiled, holding the run's Adam state
    caplog.set_level(logging.WARNING, logger="ckptcompat")
    run = ckptcompat.resume(folder / "weights.h5", model=model, initial_epoch=2)
    assert run.report.restored_weights and not run.report.restored_slots
    assert any("holds no optimizer state" in r.getMessage() and "optimizer is not" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
