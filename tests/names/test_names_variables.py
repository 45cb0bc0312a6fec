from __future__ import annotations

import pytest

from ckptcompat.names import variables as v


@pytest.mark.parametrize("raw, expected", [
    ("Custom>Adam", "Adam"), ("adam", "Adam"), ("AdamOptimizer", "Adam"),
    ("keras.optimizers.legacy.SGD", "SGD"), ("MomentumOptimizer", "SGD"), ("RMSprop", "RMSprop"),
    ("rmsprop", "RMSprop"), ("Unknown", "Unknown"), ("adam_7", "Adam"), ("rmsprop_12", "RMSprop"),
    ("dense_1", "dense_1"),
    ("adam_w", "AdamW"), ("adam_w_3", "AdamW"),  # Keras 3 scopes snake-case the class name
])
def test_canonical_optimizer_class(raw: str, expected: str) -> None:
    assert v.canonical_optimizer_class(raw) == expected


@pytest.mark.parametrize("cls, raw, expected", [
    ("Adam", "m", "m"), ("adam", "momentum", "m"), ("Adam", "velocity", "v"),
    ("Adam", "velocity_hat", "vhat"), ("AdamOptimizer", "Adam_1", "v"), ("SGD", "m", "momentum"),
    ("sgd", "momentum", "momentum"), ("RMSprop", "velocity", "rms"), ("RMSprop", "average_gradient", "mg"),
])
def test_canonical_slot(cls: str, raw: str, expected: str) -> None:
    assert v.canonical_slot(cls, raw) == expected


def test_split_keras3_slot_prefers_longest_suffix() -> None:
    assert v.split_keras3_slot("adam", "dense_kernel_velocity_hat") == ("dense_kernel", "vhat")
    assert v.split_keras3_slot("adam", "dense_kernel_velocity") == ("dense_kernel", "v")
    assert v.split_keras3_slot("sgd", "conv_bias_momentum") == ("conv_bias", "momentum")
    assert v.split_keras3_slot("adam", "iteration") is None


def test_canonical_weight_name() -> None:
    assert v.canonical_weight_name(["lstm"], "lstm/lstm_cell/kernel:0") == "lstm/kernel"
    assert v.canonical_weight_name(["inner", "dense_2"], "dense_2/bias:0") == "inner/dense_2/bias"
    assert v.strip_tensor_suffix("a/b:0") == "a/b"


def test_distinct_paths_names_like_the_live_walk() -> None:
    """Short names when distinct; else through the sub-layer that owns each weight, recursively
    (StackedRNNCells: every cell has a kernel; Bidirectional: the cell scope still drops)."""
    from ckptcompat.names.variables import distinct_paths

    assert distinct_paths([["lstm_cell", "kernel"], ["lstm_cell", "bias"]]) == ["kernel", "bias"]
    stacked = [["cells", "c2", "kernel"], ["cells", "c2", "bias"], ["cells", "c3", "kernel"], ["cells", "c3", "bias"]]
    assert distinct_paths(stacked) == ["cells/c2/kernel", "cells/c2/bias", "cells/c3/kernel", "cells/c3/bias"]
    bidir = [["forward_lstm", "lstm_cell", "kernel"], ["backward_lstm", "lstm_cell", "kernel"]]
    assert distinct_paths(bidir) == ["forward_lstm/kernel", "backward_lstm/kernel"]
