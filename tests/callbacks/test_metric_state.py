"""The epoch's metric accumulators a mid-epoch save records and the resumed run adds back
(``ckptcompat.callbacks._metric_state``; end to end in tests/matrix/test_checkpoint_rerun.py and
test_backend_resume.py, where the resumed epoch logs the uninterrupted run's values)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from ckptcompat.callbacks._metric_state import add_back, capture

pytestmark = [pytest.mark.backend]


def _trained(keras: Any) -> Any:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", keras.metrics.AUC(num_thresholds=5, name="auc")])
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 12
    model.fit(x, np.array([[0.0], [1.0], [0.0], [1.0]], np.float32), batch_size=4, epochs=1, verbose=0)
    return model


def test_capture_names_every_accumulator(keras: Any) -> None:
    saved = capture(_trained(keras))
    assert {"loss/total", "loss/count", "mae/total", "mae/count"} <= set(saved)
    assert {k for k in saved if k.startswith("auc")} == {
        "auc/true_positives", "auc/false_positives", "auc/true_negatives", "auc/false_negatives"}
    assert saved["loss/count"] in (1, 4)  # one batch: by batch (Keras 3.0-3.x) or by sample
    assert saved["auc/true_positives"].shape == (5,)


def test_add_back_sums_and_names_what_does_not_fit(keras: Any, caplog: pytest.LogCaptureFixture) -> None:
    model = _trained(keras)
    before = capture(model)
    extra = {"gone/total": np.float32(1.0), "mae/count": np.zeros(3, np.float32)}  # no metric; wrong shape
    with caplog.at_level(logging.WARNING, logger="ckptcompat.callbacks._metric_state"):
        done = add_back(model, {**before, **extra})
    after = capture(model)
    assert sorted(done) == sorted(k for k in before if k != "mae/count")
    for key in done:
        np.testing.assert_array_equal(after[key], before[key] + before[key])
    assert after["mae/count"] == before["mae/count"]
    assert "gone/total" in caplog.text and "mae/count" in caplog.text


def test_a_model_without_metrics_yet_captures_nothing(keras: Any) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    assert capture(model) == {}
