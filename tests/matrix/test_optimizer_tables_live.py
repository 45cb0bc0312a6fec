"""The committed optimizer-layout table of the running release is what that release builds.

``tools/optimizer_layouts.py`` wrote one table per release; here, in each matrix environment,
Adam, Nadam and SGD (every family the release ships: Keras 3, tf.keras's new and legacy
optimizers, standalone Keras) are built again with the tool's own describer and compared with
the committed entry variable by variable (slot, owner, shape, attribute; generated names aside).
A release without a table fails: each matrix environment must have one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from ckptcompat.names.optimizer_layouts import tables

pytestmark = pytest.mark.framework

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
CLASSES = ("Adam", "Nadam", "SGD")


def _signature(entry: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(v.get("slot"), v.get("var"), str(v.get("shape_rel", v["shape"])), v.get("attr")) for v in entry["variables"]]


def _committed(label: str, family: str, name: str) -> dict[str, Any]:
    assert label in tables(), f"no optimizer-layout table for {label}: run tools/optimizer_layouts.py here"
    entries = tables()[label]["families"][family]["classes"][name]
    return next(e for e in entries if e["config"] == {} and not e["loss_scale"])


def test_the_running_tf_keras_release_builds_its_committed_table() -> None:
    from optimizer_layouts import _describe, _families, _keras

    keras, generation, release = _keras()
    compared = 0
    for family, _base, classes in _families(keras, generation):
        for cls in classes:
            if cls.__name__ in CLASSES:
                live = _describe(keras, family, cls, {}, False)
                assert _signature(live) == _signature(_committed(release, family, cls.__name__)), (release, cls)
                compared += 1
    assert compared >= 3


def test_standalone_keras_builds_its_committed_table() -> None:
    import tensorflow as tf

    if not tf.__version__.startswith("1.") or importlib.util.find_spec("keras") is None:
        pytest.skip("standalone Keras 2.x runs on TF 1 here (tf115-py37)")
    import keras
    from optimizer_layouts import _describe_standalone

    for name in CLASSES:
        live = _describe_standalone(keras, getattr(keras.optimizers, name), {})
        committed = _committed(f"standalone-keras-{keras.__version__}", "standalone", name)
        assert _signature(live) == _signature(committed), name
