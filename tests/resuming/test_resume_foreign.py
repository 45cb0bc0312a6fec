"""resume() on foreign folders (the workflows' ModelCheckpoint / pickle layouts), listing order shuffled.

Real fixture files (fixtures/<env>/mlp_adam) are copied under the names the workflows use.
The three ``model.h5`` copies come from different producers (keras 2.12 / 2.15 / 2.21), so
the producer version of the resumed file proves which one was picked. Every case runs with
``os.listdir`` / ``os.scandir`` / ``Path.iterdir`` returning reversed and shuffled orders:
the outcome must not change.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _paths import FIXTURES

pytestmark = pytest.mark.framework
CASE = "mlp_adam"
SERIES = {"tf212": "2.12.0", "tf215": "2.15.0", "tf221-tfkeras": "2.21.0"}


class _Scandir:
    def __init__(self, entries: list[Any]) -> None:
        self._entries = entries

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._entries)

    def __next__(self) -> Any:  # pragma: no cover
        raise StopIteration

    def __enter__(self) -> _Scandir:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _patch_listing(monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    def arrange(items: list[Any]) -> list[Any]:
        items = sorted(items, key=lambda e: str(getattr(e, "name", e)))
        if order == "reversed":
            return items[::-1]
        random.Random(1234).shuffle(items)
        return items

    listdir, scandir, iterdir = os.listdir, os.scandir, Path.iterdir
    monkeypatch.setattr(os, "listdir", lambda p=".": arrange(listdir(p)))
    monkeypatch.setattr(os, "scandir", lambda p=".": _Scandir(arrange(list(scandir(p)))))
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(arrange(list(iterdir(self)))))


def _copy(src_env: str, name: str, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / src_env / CASE / name, dst)
    return dst


def _outcome(run: Any) -> tuple[Any, ...]:
    from ckptcompat import runtime

    weights = runtime.capture(run.model).weights
    return (Path(run.source.path).name, run.initial_epoch, run.source.epoch_source,
            run.source.producer["versions"].get("keras"),
            tuple((k, weights[k].tobytes()) for k in sorted(weights)))


def _each_order(monkeypatch: pytest.MonkeyPatch, call: Any) -> tuple[Any, ...]:
    outcomes = []
    for order in ("reversed", "shuffled"):
        with monkeypatch.context() as m:
            _patch_listing(m, order)
            outcomes.append(_outcome(call()))
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


def _assert_file_weights(run: Any, path: Path) -> None:
    from ckptcompat import runtime
    from ckptcompat.formats import registry

    live, saved = runtime.capture(run.model), registry.read(path)
    assert saved.weights and set(saved.weights) == set(live.weights)
    for name, value in saved.weights.items():
        assert np.array_equal(value, live.weights[name]) and value.dtype == live.weights[name].dtype


def test_pattern_series_latest_best_and_initial_epoch(tmp_path: Path, monkeypatch, keras) -> None:
    folder = tmp_path / "checkpoints" / "training"
    names = {"tf212": "model-01-0.50-0.90.h5", "tf221-tfkeras": "model-02-0.61-0.80.h5",
             "tf215": "model-03-0.55-0.85.h5"}
    for env, name in names.items():
        _copy(env, "model.h5", folder / name)
    (folder / "history.json").write_text("{}")  # not a candidate
    pattern = "model-{epoch:02d}-{val_acc:.2f}-{val_loss:.2f}.h5"
    latest = _each_order(monkeypatch, lambda: ckptcompat.resume(folder, pattern=pattern))
    assert latest[:4] == ("model-03-0.55-0.85.h5", 3, "filename", SERIES["tf215"])
    best = _each_order(monkeypatch, lambda: ckptcompat.resume(
        folder, pattern=pattern, which="best", monitor="val_accuracy"))
    assert best[:4] == ("model-02-0.61-0.80.h5", 2, "filename", SERIES["tf221-tfkeras"])

    run = ckptcompat.resume(folder, pattern=pattern)
    _assert_file_weights(run, folder / "model-03-0.55-0.85.h5")
    seen: list[int] = []
    probe = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: seen.append(epoch))
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    y = (np.arange(8) % 3).astype(np.int64)
    run.model.fit(x, y, epochs=5, verbose=0, callbacks=[probe], **run.fit_kwargs())
    assert seen == [3, 4]


def test_epoch_number_series_is_numeric_not_lexicographic(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "output" / "checkpoints"
    for env, epoch in (("tf212", 5), ("tf215", 40), ("tf221-tfkeras", 10)):
        _copy(env, "model.h5", folder / f"epoch_{epoch}.hdf5")
    out = _each_order(monkeypatch, lambda: ckptcompat.resume(folder, learning_rate=1e-2))
    assert out[:4] == ("epoch_40.hdf5", 40, "filename", SERIES["tf215"])


def test_h5_with_pickled_optimizer_and_epoch(tmp_path: Path, monkeypatch, keras) -> None:
    folder = tmp_path / "00001-test-train"
    h5 = _copy("tf212", "model.h5", folder / "snapshot.h5")
    opt_cfg = keras.optimizers.Adam(learning_rate=0.005).get_config()
    with open(folder / "snapshot.pkl", "wb") as fh:
        pickle.dump({"optimizer": opt_cfg, "epoch": 6}, fh)  # on_epoch_end's 0-based epoch
    out = _each_order(monkeypatch, lambda: ckptcompat.resume(folder))
    assert out[:3] == ("snapshot.h5", 7, "sidecar")
    run = ckptcompat.resume(folder)
    _assert_file_weights(run, h5)
    from ckptcompat import runtime
    from ckptcompat.formats import registry

    saved, live = registry.read(h5).optimizer, runtime.capture(run.model).optimizer
    assert saved is not None and live is not None and saved.slots
    assert live.iterations == saved.iterations
    for var, per in saved.slots.items():
        for slot, value in per.items():
            assert np.array_equal(value, live.slots[var][slot])


def test_single_feature_extraction_file(tmp_path: Path, monkeypatch) -> None:
    path = _copy("tf215", "model.h5", tmp_path / "feature_extraction.h5")
    _copy("tf212", "model.h5", tmp_path / "unrelated" / "other.h5")
    out = _each_order(monkeypatch, lambda: ckptcompat.resume(path))
    assert out[:4] == ("feature_extraction.h5", 0, "unknown", SERIES["tf215"])
    _assert_file_weights(ckptcompat.resume(path), path)


def test_tf_format_weights_with_checkpoint_file(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "saved_weights"
    shutil.copytree(FIXTURES / "tf212" / CASE / "tf_weights", folder)
    base = ckptcompat.resume(FIXTURES / "tf212" / CASE / "model.h5")

    def run() -> Any:
        return ckptcompat.resume(folder, model=base.model)

    out = _each_order(monkeypatch, run)
    assert out[0] == "ckpt" and out[2] in ("state_file", "unknown")
    from ckptcompat.formats import registry

    saved = registry.read(folder / "ckpt")
    live = dict(out[4])
    for name, value in saved.weights.items():
        assert live[name] == np.ascontiguousarray(value).tobytes()


def test_sequential_config_without_input_shape_is_refused_with_the_way_on(tmp_path: Path, keras: Any) -> None:
    """Standalone Keras 2.3 writes ``Sequential([InputLayer(...), Dense(...)])`` without any input
    shape (its own ``load_model`` fails): the model rebuilt from the config has no weights, so
    resume says why and how to go on, then resumes the model built in code exactly."""
    import h5py

    source = FIXTURES / "keras231-tf115-py37" / "opt_adam" / "model.h5"
    if not source.is_file():
        pytest.skip("no standalone Keras fixture")
    path = tmp_path / "model.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:  # as Keras 2.3 writes it for an explicit InputLayer
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][0]["config"].pop("batch_input_shape")
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ckptcompat.UnsupportedFormatError, match="records no input shape") as info:
        ckptcompat.resume(path)
    assert "model=model" in str(info.value)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="dense")])
    model.compile(optimizer=keras.optimizers.Adam(0.0125), loss="sparse_categorical_crossentropy")
    run = ckptcompat.resume(path, model=model)
    state = ckptcompat.read(source)
    assert np.array_equal(np.asarray(run.model.layers[-1].kernel), state.weights["dense/kernel"])
    assert int(np.asarray(run.model.optimizer.iterations)) == 4
