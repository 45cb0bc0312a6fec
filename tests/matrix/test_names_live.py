"""Name tables against the running Keras: real logged keys, auto modes, lr=/decay, fit, period."""

from __future__ import annotations

import importlib
from ckptcompat._compat import distribution_version
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ckptcompat import runtime
from ckptcompat.names.arguments import checkpoint_kwargs, fit_kwargs, lr_ignored_by, optimizer_kwargs
from ckptcompat.names.metrics import canonical_metric, format_filepath, metric_direction, native_auto_mode, \
    normalize_logs

pytestmark = pytest.mark.framework


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, (x[:, :1] > 0).astype("float32")


def _fit(keras: ModuleType, metrics: list, epochs: int = 1, callbacks: list | None = None):
    x, y = _data()
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=metrics)
    seen: list[dict] = []
    grab = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=16, verbose=0,
              callbacks=[grab, *(callbacks or [])])
    return model, seen[-1]


def _tf_version() -> str:
    return importlib.import_module("tensorflow").__version__


def _keras_version(keras: ModuleType) -> str:
    if getattr(keras, "__version__", None):
        return str(keras.__version__)
    return distribution_version("tf_keras" if _legacy() else "keras")


def _legacy() -> bool:
    return runtime.keras_source() == "tf_keras"


@pytest.mark.parametrize("spelling", ["acc", "accuracy"])
def test_accuracy_spellings(keras: ModuleType, spelling: str) -> None:
    _, logs = _fit(keras, [spelling])
    assert set(logs) == {"loss", spelling, "val_loss", f"val_{spelling}"}
    assert {k: canonical_metric(k) for k in logs} == {
        "loss": "loss", spelling: "accuracy", "val_loss": "val_loss", f"val_{spelling}": "val_accuracy"}
    before = dict(logs)
    out = normalize_logs(logs)
    assert logs == before
    assert out["acc"] == out["accuracy"] == logs[spelling]
    assert out["val_acc"] == out["val_accuracy"] == logs[f"val_{spelling}"]
    assert set(out) == {"loss", "val_loss", "acc", "accuracy", "val_acc", "val_accuracy"}


def test_two_aucs(keras: ModuleType) -> None:
    first, second = keras.metrics.AUC(), keras.metrics.AUC()
    names = [first.name, second.name]
    assert names[0] != names[1] and all(n == "auc" or n.startswith("auc_") for n in names)
    _, logs = _fit(keras, [first, second])
    assert set(logs) == {"loss", "val_loss", *names, *(f"val_{n}" for n in names)}
    assert {canonical_metric(k) for k in logs} == {"loss", "val_loss", "auc", "val_auc"}
    out = normalize_logs(logs)
    low = min(names, key=lambda n: 0 if n == "auc" else int(n.rsplit("_", 1)[1]))
    assert out["auc"] == logs[low] and out["val_auc"] == logs[f"val_{low}"]
    for name in names:  # real keys keep their own values
        assert out[name] == logs[name] and out[f"val_{name}"] == logs[f"val_{name}"]


def test_format_filepath_matches_native_checkpoint(keras: ModuleType, tmp_path: Path) -> None:
    native = str(tmp_path / "m-{epoch:02d}-{val_accuracy:.4f}.weights.h5")
    ckpt = keras.callbacks.ModelCheckpoint(native, save_weights_only=True)
    _, logs = _fit(keras, ["accuracy"], epochs=2, callbacks=[ckpt])
    ours = format_filepath(str(tmp_path / "m-{epoch:02d}-{val_acc:.4f}.weights.h5"), 1, logs)
    assert Path(ours).exists() and Path(ours).name.startswith("m-02-")


def _native_direction(cb: object) -> str | None:
    if getattr(cb, "monitor_op", None) is None and hasattr(cb, "_set_monitor_op"):
        try:
            cb._set_monitor_op()
        except ValueError:
            return None
    return "max" if bool(cb.monitor_op(1.0, 0.0)) else "min"


def test_auto_mode_matches_native(keras: ModuleType) -> None:
    model, _ = _fit(keras, ["acc", "accuracy", keras.metrics.AUC(name="auc")])
    version = _keras_version(keras)
    disagree = set()
    for cls in ("ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau"):
        for monitor in ("val_acc", "val_accuracy", "val_loss", "val_auc"):
            kwargs = {"filepath": "x.keras"} if cls == "ModelCheckpoint" else {}
            cb = getattr(keras.callbacks, cls)(monitor=monitor, mode="auto", **kwargs)
            cb.set_model(model)
            native = _native_direction(cb)
            assert native == native_auto_mode(cls, monitor, version), (cls, monitor, version)
            if native != metric_direction(monitor):
                disagree.add((cls, monitor))
    parts = tuple(int(p) for p in version.split(".")[:2])
    expected = {("ModelCheckpoint", "val_auc"), ("ReduceLROnPlateau", "val_auc")} if parts < (3, 11) else set()
    assert disagree == expected


def test_lr_argument_behaviour(keras: ModuleType) -> None:
    ignored = lr_ignored_by(_tf_version(), tf_keras=_legacy())
    if _keras_version(keras).startswith("3."):
        assert ignored is False
        with pytest.raises(ValueError, match="lr"):
            keras.optimizers.Adam(lr=0.5)
    else:
        assert ignored is True  # tf212, tf215, tf-keras 2.21: new optimizers drop lr= silently
        assert float(keras.optimizers.Adam(lr=0.5).learning_rate.numpy()) == np.float32(0.001)
        assert float(keras.optimizers.legacy.Adam(lr=0.5).learning_rate.numpy()) == 0.5
    opt = keras.optimizers.Adam(**optimizer_kwargs(lr=0.5).kwargs)
    assert float(np.asarray(opt.learning_rate)) == 0.5


def test_decay_schedule_equals_legacy_decay(keras: ModuleType) -> None:
    desc = optimizer_kwargs(lr=0.1, decay=0.01).kwargs["learning_rate"]
    schedule = keras.optimizers.schedules.deserialize(desc)
    got = [np.float32(np.asarray(schedule(step))) for step in (0, 10, 1000)]
    assert got == [np.float32(0.1) / (np.float32(1) + np.float32(0.01) * np.float32(s)) for s in (0, 10, 1000)]
    if not _keras_version(keras).startswith("3."):
        tf = importlib.import_module("tensorflow")
        legacy = keras.optimizers.legacy.SGD(learning_rate=0.1, decay=0.01)
        legacy.iterations.assign(10)
        assert np.float32(legacy._decayed_lr(tf.float32).numpy()) == got[1]


def test_fit_worker_arguments(keras: ModuleType) -> None:
    x, y = _data()
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    major = int(_keras_version(keras).split(".")[0])
    t = fit_kwargs(epochs=1, verbose=0, workers=1, max_queue_size=4, use_multiprocessing=False, keras_major=major)
    if major >= 3:
        with pytest.raises(TypeError):
            model.fit(x, y, epochs=1, verbose=0, workers=1)
        assert t.moved == {"workers": 1, "max_queue_size": 4, "use_multiprocessing": False}

        class Seq(keras.utils.PyDataset):
            def __len__(self) -> int:
                return 2

            def __getitem__(self, i: int):
                return x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
        model.fit(Seq(**t.moved), **t.kwargs)
    else:
        assert t.moved == {} and t.kwargs["workers"] == 1
        model.fit(x, y, batch_size=16, **t.kwargs)
    assert int(np.asarray(model.optimizer.iterations)) == 2


def test_period_counts_epochs(keras: ModuleType, tmp_path: Path) -> None:
    t = checkpoint_kwargs(period=2, keras_major=int(_keras_version(keras).split(".")[0]))
    assert t.kwargs == {"save_every_epochs": 2}
    template = str(tmp_path / "e{epoch}.weights.h5")
    if _keras_version(keras).startswith("3."):
        with pytest.raises(TypeError):
            keras.callbacks.ModelCheckpoint(template, save_weights_only=True, period=2)
        return
    cb = keras.callbacks.ModelCheckpoint(template, save_weights_only=True, period=2)
    _fit(keras, ["acc"], epochs=4, callbacks=[cb])  # 2 batches/epoch: save_freq=2 would save every epoch
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["e2.weights.h5", "e4.weights.h5"]
