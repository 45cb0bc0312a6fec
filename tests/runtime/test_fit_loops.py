"""ckptcompat.runtime._fit_loops without a framework: which Keras reads a data object's length
when, and the matching of a tf.keras 2.3-2.9 ``fit``'s DataHandler (a fake one here; the real
ones run in tests/data/test_data.py and the SIGKILL suites in tf24-py38)."""

from __future__ import annotations

import types
from typing import Any, Callable

import numpy as np
import pytest

from ckptcompat._arrays import same_values
from ckptcompat.runtime._fit_loops import match_data_handler, standalone_policy, tf_keras_policy

_FAKE_KERAS = '''
class Adapter:
    def __init__(self, seq):
        self._keras_sequence = seq

class DataHandler:
    def __init__(self, seq, steps):
        self._adapter = Adapter(seq)
        self._inferred_steps = steps

class _ClusterCoordinatorDataHandler(DataHandler):
    pass

def fit(data, steps_per_epoch=None, callback=None, handler=DataHandler):
    data_handler = handler(data, steps_per_epoch or len(data))
    result = run_epoch(callback)
    return result, data_handler._inferred_steps

def run_epoch(callback):
    return callback()
'''


def _fake_keras() -> types.ModuleType:
    module = types.ModuleType("fake_keras.engine.training")
    exec(compile(_FAKE_KERAS, "fake_keras/engine/training.py", "exec"), module.__dict__)  # noqa: S102
    return module


class _Data:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("version, policy", [
    ("2.2.4-tf", "fixed"), ("2.3.0-tf", "widen"), ("2.4.0", "widen"), ("2.8.0", "widen"),
    ("2.9.1", "widen"), ("2.10.0", "every_epoch"), ("2.11.0", "every_epoch"), ("2.21.0", "every_epoch")])
def test_tf_keras_policy_by_version(version: str, policy: str) -> None:
    assert tf_keras_policy(version) == policy


def test_unreadable_version_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert tf_keras_policy("nightly") == "every_epoch"
    assert "not understood" in caplog.text


def test_standalone_policy() -> None:
    assert [standalone_policy(v) for v in ("2.0.8", "2.1.6", "2.2.4", "2.3.1")] == ["fixed"] * 3 + ["every_epoch"]


def _inside_fit(data: _Data, steps: int, **fit_kwargs: Any) -> tuple[str, int]:
    keras = _fake_keras()
    call: Callable[[], str] = lambda: match_data_handler(data, steps)  # noqa: E731
    return keras.fit(data, callback=call, **fit_kwargs)


def test_the_handler_of_this_data_is_set() -> None:
    assert _inside_fit(_Data(3), 7) == ("set", 7)  # fit read 3 (resumed epoch), now 7


def test_steps_given_to_fit_are_left_alone() -> None:
    assert _inside_fit(_Data(7), 3, steps_per_epoch=5) == ("fit_steps", 5)


def test_another_datas_handler_is_not_touched() -> None:
    keras = _fake_keras()
    assert keras.fit(_Data(3), callback=lambda: match_data_handler(_Data(3), 7)) == ("not_found", 3)


def test_outside_fit_nothing_is_found() -> None:
    assert match_data_handler(_Data(3), 7) == "not_found"


def test_a_subclass_of_the_handler_is_found() -> None:
    keras = _fake_keras()
    data = _Data(3)
    got = keras.fit(data, handler=keras._ClusterCoordinatorDataHandler,
                    callback=lambda: match_data_handler(data, 7))
    assert got == ("set", 7)


def test_other_objects_are_never_asked_for_attributes() -> None:
    asked: list[str] = []

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            asked.append(name)
            raise RuntimeError("a proxy that must not be touched")

    proxy = Proxy()  # a local of this frame, searched like fit's
    assert match_data_handler(_Data(3), 7) == "not_found" and proxy is not None
    assert asked == []


def test_compile_config_of_old_keras_models() -> None:
    """tf.keras < 2.2 and standalone Keras have no get_compile_config/_get_compile_args: the
    loss and the metrics as given to compile (standalone 2.1/2.2 keep them in ``metrics``)."""
    from ckptcompat.callbacks._compile_config import compile_config

    class TfKeras20:
        loss, _compile_metrics, loss_weights = "mse", ["mae"], None

    class Standalone22:
        loss, metrics, loss_weights = "mse", ["acc"], None

    assert compile_config(TfKeras20()) == {"loss": "mse", "metrics": ["mae"], "weighted_metrics": None,
                                           "loss_weights": None}
    assert compile_config(Standalone22())["metrics"] == ["acc"]


def test_same_values_bfloat16_nan() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([np.nan, 1.0], dtype=ml_dtypes.bfloat16)
    assert same_values(a, a.copy()) and not same_values(a, np.array([np.nan, 2.0], ml_dtypes.bfloat16))
