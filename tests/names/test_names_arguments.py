"""Argument translation tables: exact outputs, notes and refusals."""

from __future__ import annotations

import logging

import pytest

from ckptcompat.errors import InvalidArgumentError
from ckptcompat.names.arguments import (RULES, Note, Translation, checkpoint_kwargs, filepath_epoch_base,
                                        fit_kwargs, log_notes, lr_ignored_by, method_name, optimizer_kwargs,
                                        running_keras_major)


def test_period_becomes_save_every_epochs() -> None:
    t = checkpoint_kwargs(filepath="m-{epoch}.keras", period=3, keras_major=3)
    assert t.kwargs == {"filepath": "m-{epoch}.keras", "save_every_epochs": 3}
    assert t.moved == {}
    assert t.notes == (Note("warning", "ModelCheckpoint(period=3) -> save_every_epochs=3: every 3 epochs "
                                       "(not save_freq, which counts batches); Keras 3 has no period and "
                                       "raises TypeError"),)
    assert "save_freq" not in t.kwargs
    t2 = checkpoint_kwargs(period=2, save_freq="epoch", keras_major=2)
    assert t2.kwargs == {"save_freq": "epoch", "save_every_epochs": 2} and len(t2.notes) == 1


def test_save_freq_kept() -> None:
    assert checkpoint_kwargs(save_freq="epoch").kwargs == {"save_freq": "epoch"}
    assert checkpoint_kwargs(save_freq="epoch").notes == ()
    t = checkpoint_kwargs(save_freq=100)
    assert t.kwargs == {"save_freq": 100}
    assert t.notes == (Note("info", "save_freq=100 kept: a save every 100 batches"),)


@pytest.mark.parametrize("kwargs", [{"period": 0}, {"period": 1.5}, {"period": True}, {"save_freq": "batch"},
                                    {"save_freq": -1}, {"period": 2, "save_freq": 10}])
def test_checkpoint_refusals(kwargs: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        checkpoint_kwargs(**kwargs)


def test_checkpoint_keras3_drops() -> None:
    t = checkpoint_kwargs(options="opts", load_weights_on_restart=True, monitor="val_acc", keras_major=3)
    assert t.kwargs == {"monitor": "val_acc"} and [n.level for n in t.notes] == ["warning", "warning"]
    t2 = checkpoint_kwargs(options="opts", load_weights_on_restart=True, keras_major=2)
    assert t2.kwargs == {"options": "opts", "load_weights_on_restart": True} and t2.notes == ()


def test_optimizer_lr() -> None:
    t = optimizer_kwargs(lr=0.5, beta_1=0.8)
    assert t.kwargs == {"beta_1": 0.8, "learning_rate": 0.5}
    assert [n.level for n in t.notes] == ["warning"] and t.notes[0].text.startswith("lr=0.5 -> learning_rate=0.5")
    assert optimizer_kwargs(lr=0.5, learning_rate=0.5).kwargs == {"learning_rate": 0.5}
    with pytest.raises(InvalidArgumentError):
        optimizer_kwargs(lr=0.5, learning_rate=0.1)
    assert optimizer_kwargs(learning_rate=0.1).kwargs == {"learning_rate": 0.1}
    assert optimizer_kwargs(learning_rate=0.1).notes == ()


def test_optimizer_decay_to_inverse_time_decay() -> None:
    t = optimizer_kwargs(lr=0.1, decay=0.01)
    assert t.kwargs == {"learning_rate": {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.01, "staircase": False}}}
    assert len(t.notes) == 2 and "InverseTimeDecay" in t.notes[1].text
    assert optimizer_kwargs(learning_rate=0.1, decay=0.0).kwargs == {"learning_rate": 0.1}


@pytest.mark.parametrize("kwargs", [{"decay": 0.01}, {"decay": -1.0}, {"decay": "x", "learning_rate": 0.1},
                                    {"decay": 0.1, "learning_rate": {"class_name": "ExponentialDecay"}}])
def test_optimizer_decay_refusals(kwargs: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        optimizer_kwargs(**kwargs)


def test_optimizer_epsilon_none() -> None:
    t = optimizer_kwargs(epsilon=None)
    assert t.kwargs == {"epsilon": 1e-7} and t.notes[0].level == "info"
    assert optimizer_kwargs(epsilon=1e-8).kwargs == {"epsilon": 1e-8}


def test_fit_dataset_args_keras3_moved() -> None:
    t = fit_kwargs(epochs=3, workers=4, use_multiprocessing=True, max_queue_size=7, keras_major=3)
    assert t.kwargs == {"epochs": 3}
    assert t.moved == {"workers": 4, "use_multiprocessing": True, "max_queue_size": 7}
    assert len(t.notes) == 1 and "keras.utils.PyDataset(workers=4, use_multiprocessing=True, " \
                                  "max_queue_size=7)" in t.notes[0].text


def test_fit_dataset_args_keras2_kept() -> None:
    t = fit_kwargs(epochs=3, workers=4, keras_major=2)
    assert t == Translation({"epochs": 3, "workers": 4}, {}, ())


def test_fit_keras1_names() -> None:
    assert fit_kwargs(nb_epoch=5).kwargs == {"epochs": 5}
    with pytest.raises(InvalidArgumentError):
        fit_kwargs(nb_epoch=5, epochs=6)
    for name in ("samples_per_epoch", "nb_val_samples"):
        with pytest.raises(InvalidArgumentError, match="ceil"):
            fit_kwargs(**{name: 1000})


def test_input_not_mutated() -> None:
    given = {"lr": 0.1, "decay": 0.5}
    optimizer_kwargs(**given)
    assert given == {"lr": 0.1, "decay": 0.5}


def test_method_name() -> None:
    assert method_name("fit_generator")[0] == "fit"
    assert method_name("evaluate_generator", 2)[0] == "evaluate"
    assert method_name("predict_generator", 3)[1][0].text.endswith("(removed in Keras 3)")
    assert method_name("fit") == ("fit", [])


@pytest.mark.parametrize("version,tf_keras,expected", [
    ("2.10.1", False, False), ("2.11.0", False, True), ("2.12.1", False, True), ("2.15.1", False, True),
    ("2.16.2", False, False), ("2.21.0", False, False), ("2.21.0", True, True), ("2.15.1", True, True),
    ("1.15.5", False, False),
])
def test_lr_ignored_by(version: str, tf_keras: bool, expected: bool) -> None:
    assert lr_ignored_by(version, tf_keras=tf_keras) is expected


@pytest.mark.parametrize("version,base", [("1.2.2", 0), ("2.0.8", 0), ("2.0.9", 1), ("2.2.4", 1),
                                          ("2.15.0", 1), ("3.6.0", 1), ("2.1", 1)])
def test_filepath_epoch_base(version: str, base: int) -> None:
    assert filepath_epoch_base(version) == base


def test_version_parse_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        lr_ignored_by("nightly")
    with pytest.raises(InvalidArgumentError):
        filepath_epoch_base("")


def test_log_notes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ckptcompat.names.arguments")
    log_notes(optimizer_kwargs(lr=0.1, epsilon=None))
    assert [(r.levelno, r.getMessage()[:16]) for r in caplog.records] == [
        (logging.WARNING, "lr=0.1 -> learni"), (logging.INFO, "epsilon=None -> ")]


def test_rules_table_rows() -> None:
    assert {r.target for r in RULES} == {"ModelCheckpoint", "optimizer", "fit"}
    assert all(r.versions and r.argument for r in RULES)


@pytest.mark.parametrize("flavour,major", [("keras2", 2), ("keras3", 3)])
def test_translations_target_the_running_keras_by_default(monkeypatch: pytest.MonkeyPatch, flavour: str,
                                                          major: int) -> None:
    """Without keras_major the running Keras (ckptcompat.runtime.detect) decides, not "3"."""
    from ckptcompat import runtime

    monkeypatch.setattr(runtime, "detect", lambda: flavour)
    t = fit_kwargs(epochs=3, workers=4)
    assert t.kwargs == ({"epochs": 3, "workers": 4} if major == 2 else {"epochs": 3})
    assert t.moved == ({} if major == 2 else {"workers": 4})
    assert ("options" in checkpoint_kwargs(options="opts").kwargs) is (major == 2)
    assert method_name("fit_generator")[1][0].text.endswith(
        "(deprecated since tf.keras 2.1)" if major == 2 else "(removed in Keras 3)")
    assert running_keras_major() == major


def test_without_tensorflow_translations_target_keras3(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptcompat import runtime
    from ckptcompat.errors import MissingDependencyError

    def missing() -> str:
        raise MissingDependencyError("TensorFlow is not installed")

    monkeypatch.setattr(runtime, "detect", missing)
    assert running_keras_major() == 3
    assert fit_kwargs(workers=4).moved == {"workers": 4}
