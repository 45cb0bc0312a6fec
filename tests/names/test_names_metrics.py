"""Metric / log-key normalisation: exact outputs of every rule."""

from __future__ import annotations

import pytest

from ckptcompat.errors import CkptCompatError, InvalidArgumentError, TemplateKeyError
from ckptcompat.names.metrics import (aliases, canonical_metric, format_filepath, metric_direction,
                                      native_auto_mode, normalize_logs)


@pytest.mark.parametrize("name,expected", [
    ("acc", "accuracy"), ("val_acc", "val_accuracy"), ("accuracy", "accuracy"),
    ("auc", "auc"), ("auc_1", "auc"), ("val_auc_2", "val_auc"), ("auc_12", "auc"),
    ("lr", "learning_rate"), ("learning_rate", "learning_rate"), ("val_lr", "val_lr"),
    ("out1_acc", "out1_accuracy"), ("val_out1_acc", "val_out1_accuracy"), ("out1_auc_1", "out1_auc"),
    ("precision_1", "precision"), ("recall_3", "recall"), ("mean_io_u_1", "mean_io_u"),
    ("precision_at_recall_1", "precision_at_recall"), ("true_positives_2", "true_positives"),
    ("mse", "mean_squared_error"), ("val_mae", "val_mean_absolute_error"), ("ce", "crossentropy"),
    # ends with digits but not Keras auto-numbered: left alone
    ("dense_1", "dense_1"), ("top_5", "top_5"), ("f1", "f1"), ("mean_1", "mean_1"),
    ("sum_2", "sum_2"), ("recall_at_5", "recall_at_5"), ("auc_01", "auc_01"), ("auc_0", "auc_0"),
    ("out_2_loss", "out_2_loss"), ("loss", "loss"), ("val_loss", "val_loss"),
    ("categorical_accuracy", "categorical_accuracy"), ("my_metric", "my_metric"), ("val_", "val_"),
])
def test_canonical_metric(name: str, expected: str) -> None:
    assert canonical_metric(name) == expected


@pytest.mark.parametrize("name,expected", [
    ("val_acc", {"val_acc", "val_accuracy"}), ("val_accuracy", {"val_acc", "val_accuracy"}),
    ("auc_1", {"auc_1", "auc"}), ("auc", {"auc"}), ("lr", {"lr", "learning_rate"}),
    ("learning_rate", {"lr", "learning_rate"}), ("out1_acc", {"out1_acc", "out1_accuracy"}),
    ("out1_accuracy", {"out1_acc", "out1_accuracy"}), ("categorical_accuracy", {"categorical_accuracy"}),
    ("binary_crossentropy", {"binary_crossentropy"}), ("val_mse", {"val_mse", "val_mean_squared_error"}),
    ("dense_1", {"dense_1"}),
])
def test_aliases(name: str, expected: set[str]) -> None:
    assert aliases(name) == expected


def test_normalize_logs_adds_both_spellings_and_does_not_mutate() -> None:
    logs = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25, "val_acc": 0.5, "lr": 0.01}
    before = dict(logs)
    out = normalize_logs(logs)
    assert logs == before and out is not logs
    assert out == {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25, "val_acc": 0.5, "lr": 0.01,
                   "acc": 0.75, "val_accuracy": 0.5, "learning_rate": 0.01}
    assert list(out)[:5] == list(logs)


def test_normalize_logs_never_overwrites_real_keys() -> None:
    logs = {"auc": 0.9, "auc_1": 0.8, "val_auc": 0.7, "val_auc_1": 0.6, "learning_rate": 0.1, "lr": 0.2}
    assert normalize_logs(logs) == logs


def test_normalize_logs_lowest_number_wins() -> None:
    # Keras 3 numbers per process: after a restart two AUCs may log as auc_3 and auc_2
    logs = {"auc_3": 0.1, "auc_2": 0.2, "val_auc_3": 0.3, "val_auc_2": 0.4}
    out = normalize_logs(logs)
    assert out["auc"] == 0.2 and out["val_auc"] == 0.4 and len(out) == 6


def test_normalize_logs_multi_output() -> None:
    out = normalize_logs({"out1_acc": 1.0, "val_out2_accuracy": 2.0})
    assert out == {"out1_acc": 1.0, "val_out2_accuracy": 2.0, "out1_accuracy": 1.0, "val_out2_acc": 2.0}


@pytest.mark.parametrize("name,expected", [
    ("loss", "min"), ("val_loss", "min"), ("out1_loss", "min"), ("val_mse", "min"),
    ("mean_absolute_error", "min"), ("binary_crossentropy", "min"), ("false_negatives_1", "min"),
    ("acc", "max"), ("val_acc", "max"), ("val_accuracy", "max"), ("val_auc", "max"), ("val_auc_1", "max"),
    ("precision_2", "max"), ("recall", "max"), ("sparse_top_k_categorical_accuracy", "max"),
    ("mean_io_u", "max"), ("f1_score", "max"), ("out1_acc", "max"),
    ("lr", None), ("learning_rate", None), ("my_metric", None), ("mean", None),
])
def test_metric_direction(name: str, expected: str | None) -> None:
    assert metric_direction(name) == expected


@pytest.mark.parametrize("callback,monitor,version,expected", [
    ("ModelCheckpoint", "val_auc", "2.15.0", "min"),  # the Keras 2 bug we fix
    ("ModelCheckpoint", "val_acc", "2.2.4", "max"), ("ModelCheckpoint", "fmeasure", "1.2.2", "max"),
    ("ModelCheckpoint", "val_auc", "3.10.0", "min"), ("ModelCheckpoint", "val_auc", "3.11.0", "max"),
    ("ModelCheckpoint", "val_my_metric", "3.15.1", None),
    ("EarlyStopping", "val_auc", "2.6.0", "min"), ("EarlyStopping", "val_auc", "2.7.0", "max"),
    ("EarlyStopping", "val_auc", "2.21.0", "max"), ("EarlyStopping", "val_accuracy", "3.0.5", "max"),
    ("EarlyStopping", "val_loss", "3.0.5", "min"), ("EarlyStopping", "val_my_metric", "3.0.5", None),
    ("ReduceLROnPlateau", "val_auc", "3.0.5", "min"), ("ReduceLROnPlateau", "val_auc", "3.11.1", "max"),
])
def test_native_auto_mode(callback: str, monitor: str, version: str, expected: str | None) -> None:
    assert native_auto_mode(callback, monitor, version) == expected


def test_native_auto_mode_bad_input() -> None:
    with pytest.raises(InvalidArgumentError):
        native_auto_mode("TensorBoard", "val_loss", "3.0.0")
    with pytest.raises(InvalidArgumentError):
        native_auto_mode("EarlyStopping", "val_loss", "latest")


def test_format_filepath_aliases_and_epoch() -> None:
    logs = {"loss": 0.5, "val_accuracy": 0.875, "val_auc_1": 0.6875}
    assert format_filepath("m-{epoch:02d}-{val_acc:.2f}-{val_auc:.3f}.h5", 0, logs) == "m-01-0.88-0.688.h5"
    assert format_filepath("w.{epoch}.{batch}.{loss}", 4, logs, batch=9) == "w.5.10.0.5"
    assert format_filepath("plain.keras", 3, {}) == "plain.keras"
    assert logs == {"loss": 0.5, "val_accuracy": 0.875, "val_auc_1": 0.6875}


def test_format_filepath_missing_key() -> None:
    with pytest.raises(TemplateKeyError) as info:
        format_filepath("m-{epoch}-{val_f1:.2f}.h5", 0, {"loss": 1.0, "acc": 0.5})
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, CkptCompatError)
    assert err.key == "val_f1" and err.available == ["acc", "epoch", "loss"]
    assert "val_f1" in str(err) and "available: acc, epoch, loss" in str(err)
    with pytest.raises(TemplateKeyError):
        format_filepath("m-{batch}.h5", 0, {"loss": 1.0})
    with pytest.raises(TemplateKeyError):
        format_filepath("m-{}.h5", 0, {"loss": 1.0})


def test_format_filepath_bad_spec() -> None:
    with pytest.raises(InvalidArgumentError):
        format_filepath("m-{loss:d}.h5", 0, {"loss": 0.5})
    with pytest.raises(InvalidArgumentError):
        format_filepath("m-{loss.h5", 0, {"loss": 0.5})
