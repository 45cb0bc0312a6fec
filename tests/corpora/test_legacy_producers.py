"""The old-era producers (fixtures/generate_legacy.py): the generator stays runnable on
Python 3.6 without ckptcompat, and a file whose release saved no step counter resumes with
a warning (standalone Keras 2.2.4 RMSprop: the slots are saved, ``iterations`` is not)."""

from __future__ import annotations

import ast
import logging
import sys

import pytest

from tests._frameworks import keras_flavour
from tests._paths import FIXTURES

GENERATOR = FIXTURES / "generate_legacy.py"


def test_generator_is_python36_syntax_and_self_contained() -> None:
    if sys.version_info < (3, 8):
        pytest.skip("ast.parse(feature_version=) is new in Python 3.8")
    tree = ast.parse(GENERATOR.read_text(), feature_version=(3, 6))
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "ckptcompat" not in imported and "__future__" not in imported


@pytest.mark.framework
@pytest.mark.skipif(keras_flavour() is None, reason="needs TensorFlow")
def test_keras224_rmsprop_without_step_counter_warns(caplog: pytest.LogCaptureFixture) -> None:
    import ckptcompat

    path = FIXTURES / "keras224-tf112-py36" / "mlp_rmsprop" / "model.h5"
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        run = ckptcompat.resume(path)
    assert any("no step counter" in r.getMessage() for r in caplog.records)
    from ckptcompat import runtime

    state = runtime.capture(run.model)
    assert state.optimizer is not None and state.optimizer.class_name == "RMSprop"
    assert set(state.optimizer.slots) == {"dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"}


def test_tf14_keras208_layer_names_not_scope_names() -> None:
    """tf.keras 2.0.8-tf: layer ``dense_1`` holds ``dense/kernel:0``; canonical is the layer's name."""
    from ckptcompat.formats import keras_h5

    for name in ("model.h5", "weights.h5"):
        state = keras_h5.read(FIXTURES / "tf14-keras208-py36" / "mlp_adam" / name)
        assert set(state.weights) == {"dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"}
    nested = keras_h5.read(FIXTURES / "tf212" / "nested_sgd" / "model.h5")  # later versions: unchanged
    assert "inner/dense/kernel" in nested.weights
