"""ckptcompat.runtime: the one flavour detection, held to TensorFlow's own rule.

The switch values are read from the installed TensorFlow's source (no import of TF); the
decision is checked for every switch value, TF release and tf_keras presence; where a
framework is installed, against what ``tf.keras`` really is (a fresh process per switch value).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ckptcompat import runtime
from ckptcompat.errors import MissingDependencyError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ckptcompat"

#: Values a user may plausibly set; TF accepts exactly "1", "true" and "True".
SWITCH_VALUES = [None, "", "0", "1", "true", "True", "TRUE", "false", "False", "yes", "on",
                 " 1", "1 ", "2", "tf_keras"]
TF_ACCEPTS = {"1", "true", "True"}


# --------------------------------------------------------------------- TF's own rule, read
def _tf_source_files() -> list[Path]:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        pytest.skip("TensorFlow is not installed: nothing to compare with")
    root = Path(spec.origin).parent
    return [root / "__init__.py", root / "python" / "util" / "lazy_loader.py"]


@pytest.mark.framework
def test_switch_values_are_tensorflows() -> None:
    """Every place TF reads the switch compares it with the same tuple as ours."""
    pattern = re.compile(r"environ\.get\(\s*\"TF_USE_LEGACY_KERAS\",\s*None\)\s+in\s+(\([^)]*\))")
    found = []
    files = _tf_source_files()
    if "TF_USE_LEGACY_KERAS" not in "".join(p.read_text() for p in files if p.is_file()):
        pytest.skip("this TensorFlow predates TF_USE_LEGACY_KERAS (read from TF 2.15 on): tf.keras is Keras 2")
    for path in files:
        found += [ast.literal_eval(m.group(1)) for m in pattern.finditer(path.read_text())]
    assert len(found) >= 2, "TensorFlow no longer reads TF_USE_LEGACY_KERAS the way it did"
    assert {frozenset(values) for values in found} == {frozenset(runtime.LEGACY_KERAS_ON)}
    assert set(runtime.LEGACY_KERAS_ON) == TF_ACCEPTS


@pytest.mark.parametrize("value", SWITCH_VALUES)
def test_legacy_keras_requested_for_every_value(value: str | None) -> None:
    environ = {} if value is None else {runtime.LEGACY_KERAS_ENV: value}
    assert runtime.legacy_keras_requested(environ) is (value in TF_ACCEPTS)


def test_legacy_keras_requested_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "True")
    assert runtime.legacy_keras_requested() is True
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "TRUE")
    assert runtime.legacy_keras_requested() is False
    monkeypatch.delenv("TF_USE_LEGACY_KERAS")
    assert runtime.legacy_keras_requested() is False


# --------------------------------------------------------------------- the decision, pure
@pytest.mark.parametrize(("tf_version", "legacy", "has_tf_keras", "source"), [
    ((2, 12), False, False, "tf.keras"),
    ((2, 12), True, True, "tf.keras"),     # TF 2.12-2.14 never read the switch
    ((2, 14), True, True, "tf.keras"),
    ((2, 15), False, True, "tf.keras"),
    ((2, 15), True, True, "tf_keras"),     # TF 2.15's KerasLazyLoader routes to tf_keras
    ((2, 15), True, False, "tf.keras"),
    ((2, 16), False, True, "keras"),
    ((2, 16), True, False, "keras"),       # switch on without tf_keras: TF warns; keras is 3
    ((2, 16), True, True, "tf_keras"),
    ((2, 21), True, True, "tf_keras"),
    ((3, 0), False, False, "keras"),
])
def test_choose_keras(tf_version: tuple[int, int], legacy: bool, has_tf_keras: bool,
                      source: str) -> None:
    assert runtime.choose_keras(tf_version, legacy, has_tf_keras) == source


def _fake_env(monkeypatch: pytest.MonkeyPatch, version: tuple[int, int] | None, value: str | None,
              has_tf_keras: bool) -> list[str]:
    """Pretend TF ``version`` (None: absent), the switch ``value`` and tf_keras presence;
    returns the list of modules whose presence was asked."""
    asked: list[str] = []
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        asked.append(name)
        if name == "tf_keras":
            return object() if has_tf_keras else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(runtime, "_tf_version", lambda: version)
    monkeypatch.setattr(runtime.importlib.util, "find_spec", find_spec)
    if value is None:
        monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    else:
        monkeypatch.setenv("TF_USE_LEGACY_KERAS", value)
    return asked


@pytest.mark.parametrize("value", SWITCH_VALUES)
@pytest.mark.parametrize("version", [(2, 12), (2, 15), (2, 16), (2, 21)])
@pytest.mark.parametrize("has_tf_keras", [True, False])
def test_detect_for_every_switch_value(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                       version: tuple[int, int], has_tf_keras: bool) -> None:
    _fake_env(monkeypatch, version, value, has_tf_keras)
    routed_to_tf_keras = value in TF_ACCEPTS and has_tf_keras and version >= (2, 15)
    keras3 = version >= (2, 16) and not routed_to_tf_keras
    assert runtime.detect() == ("keras3" if keras3 else "keras2")
    assert runtime.keras_source() == ("tf_keras" if routed_to_tf_keras
                                      else "keras" if keras3 else "tf.keras")
    assert runtime.flavour().__name__ == f"ckptcompat.runtime.{runtime.detect()}"


def test_detect_does_not_import_tensorflow() -> None:
    code = ("import sys; from ckptcompat import runtime\n"
            "try:\n    runtime.detect(); runtime.keras_source()\nexcept Exception:\n    pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_missing_tf_keras_is_warned_once(monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    _fake_env(monkeypatch, (2, 21), "1", has_tf_keras=False)
    monkeypatch.setattr(runtime, "_WARNED", [])
    with caplog.at_level("WARNING", logger="ckptcompat.runtime"):
        assert runtime.detect() == "keras3"
        assert runtime.detect() == "keras3"
    warned = [r for r in caplog.records if "tf_keras is not installed" in r.getMessage()]
    assert len(warned) == 1 and "tf-keras" in warned[0].getMessage()


def test_without_tensorflow_every_entry_point_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_env(monkeypatch, None, "1", has_tf_keras=True)
    monkeypatch.setattr(runtime, "_keras3_installed", lambda: False)  # no Keras 3 for JAX/torch
    for call in (runtime.detect, runtime.keras_source, runtime.keras_module, runtime.flavour):
        with pytest.raises(MissingDependencyError, match="TensorFlow"):
            call()


# --------------------------------------------------------------------- against real TF
_CHILD = """
import importlib.metadata, json, tensorflow as tf
from ckptcompat import runtime
try:
    model = tf.keras.Model
except ImportError:  # TF: switch on but tf_keras missing -> tf.keras cannot be imported
    model = None
gen = None
if model is not None:
    top = model.__module__.split(".")[0]
    keras3 = top != "tf_keras" and importlib.metadata.version(top).startswith("3.")
    gen = "keras3" if keras3 else "keras2"
try:
    module_model = runtime.keras_module().Model
except Exception as exc:
    module_model = type(exc).__name__
if model is not None or not isinstance(module_model, str):
    module_model = module_model is model
print(json.dumps({"tf": gen, "detect": runtime.detect(), "same_model": module_model}))
"""


def _child(value: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update({"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    if value is not None:
        env["TF_USE_LEGACY_KERAS"] = value
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.framework
@pytest.mark.slow
@pytest.mark.parametrize("value", [None, "True", "TRUE"])
def test_detect_agrees_with_tensorflow(value: str | None) -> None:
    """In a fresh process per value: detect() names the generation tf.keras really is, and
    keras_module() is the module tf.keras routes to. Where TF cannot give tf.keras (switch on,
    tf_keras missing), Keras 3 of ``import keras`` on TF >= 2.16, a typed error on TF 2.15."""
    result = _child(value)
    if result["tf"] is not None:
        assert result == {"tf": result["tf"], "detect": result["tf"], "same_model": True}
        return
    assert value in TF_ACCEPTS and importlib.util.find_spec("tf_keras") is None
    version = runtime._tf_version()
    assert version is not None
    if version >= (2, 16):
        assert (result["detect"], result["same_model"]) == ("keras3", False)  # keras, not tf.keras
    else:
        assert (result["detect"], result["same_model"]) == ("keras2", "MissingDependencyError")


@pytest.mark.framework
def test_keras_module_is_what_tf_keras_routes_to() -> None:
    import tensorflow as tf

    keras = runtime.keras_module()
    assert keras.Model is tf.keras.Model
    assert keras.callbacks.Callback is tf.keras.callbacks.Callback
    assert runtime.callback_base() is tf.keras.callbacks.Callback


# --------------------------------------------------------------------- one place only
def _sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_exactly_one_module_reads_the_switch() -> None:
    assert [p for p, text in _sources().items() if "TF_USE_LEGACY_KERAS" in text] == [
        "ckptcompat/runtime/__init__.py"]


def test_exactly_one_module_defines_keras_module() -> None:
    assert [p for p, text in _sources().items() if re.search(r"def keras_module\b", text)] == [
        "ckptcompat/runtime/__init__.py"]


def test_exactly_one_module_binds_classes_to_keras_bases() -> None:
    """Binding a light class to a Keras base class (``type(cls.__name__, (cls, base), ...)``)."""
    pattern = re.compile(r"type\(\s*cls\.__name__\s*,\s*\(\s*cls\s*,")
    assert [p for p, text in _sources().items() if pattern.search(text)] == [
        "ckptcompat/runtime/__init__.py"]


def test_no_version_checks_of_the_flavour_outside_runtime() -> None:
    """The shared flow asks the flavour module instead of comparing flavour names."""
    allowed = {"ckptcompat/runtime/__init__.py"}
    pattern = re.compile(r"(detect\(\)|flavour)\s*[!=]=\s*\"keras[23]\"")
    offenders = [p for p, text in _sources().items() if pattern.search(text) and p not in allowed]
    assert offenders == []


# --------------------------------------------------------------------- bind and flavour shape
def test_bind_makes_a_cached_subclass_with_cls_first() -> None:
    class Light:
        def who(self) -> str:
            return "light"

    class Base:
        def who(self) -> str:
            return "base"

        def base_only(self) -> int:
            return 7

    bound = runtime.bind(Light, Base, marker=1)
    assert runtime.bind(Light, Base, marker=1) is bound
    obj = bound()
    assert isinstance(obj, Light) and isinstance(obj, Base)
    assert obj.who() == "light" and obj.base_only() == 7 and bound.marker == 1
    assert (bound.__name__, bound.__qualname__, bound.__module__) == (
        "Light", Light.__qualname__, Light.__module__)
    assert bound.__mro__[1:3] == (Light, Base)
    assert runtime.bind(bound, Base) is bound  # already a subclass: itself


def test_flavours_have_one_shape() -> None:
    """Both flavour modules offer the same names (importing them does not import TF)."""
    from ckptcompat.runtime import keras2, keras3

    assert sorted(keras2.__all__) == sorted(keras3.__all__)
    for module in (keras2, keras3):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
    assert (keras2.NAME, keras2.KERAS_MAJOR, keras2.NATIVE_FORMAT, keras2.NATIVE_FILE) == (
        "keras2", 2, "keras_h5", "model.h5")
    assert (keras3.NAME, keras3.KERAS_MAJOR, keras3.NATIVE_FORMAT, keras3.NATIVE_FILE) == (
        "keras3", 3, "keras_zip", "model.keras")
    assert (keras2.DATASET_LEN_READ_ONCE, keras3.DATASET_LEN_READ_ONCE) == (False, True)
    assert (keras2.RETRY_WITH_OWN_LAYERS, keras3.RETRY_WITH_OWN_LAYERS) == (True, False)
    assert keras2.keras_module is keras3.keras_module is runtime.keras_module


# --------------------------------------------------------------------- flavour methods for resume
def _saved_states() -> list[tuple[str, Any]]:
    """Model configs (and the Keras version that wrote them) as real releases wrote them:
    legacy .h5 (TF 2.12, TF 2.15, tf-keras 2.21, Keras 3.15) and .keras (Keras 3.0, 3.15)."""
    import zipfile

    from ckptcompat.state import Producer, TrainingState

    h5py = pytest.importorskip("h5py")

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    found = []
    for env in ("tf212", "tf215", "tf221-keras3", "tf221-tfkeras"):
        with h5py.File(ROOT / "fixtures" / env / "nested_sgd" / "model.h5", "r") as f:
            found.append((f"{env}/model.h5", json.loads(text(f.attrs["model_config"])),
                          text(f.attrs["keras_version"])))
    for env in ("tf216-keras30", "tf221-keras3"):
        with zipfile.ZipFile(ROOT / "fixtures" / env / "nested_sgd" / "model.keras") as z:
            found.append((f"{env}/model.keras", json.loads(z.read("config.json")),
                          json.loads(z.read("metadata.json"))["keras_version"]))
    return [(name, TrainingState(model_config=config,
                                 producer=Producer(framework="keras", versions={"keras": version})))
            for name, config, version in found]


@pytest.mark.framework
def test_flavour_config_and_model_building_match_resume() -> None:
    """The flavour methods the resume flow is to call give what it computes today, on configs
    written by real releases."""
    from ckptcompat.resuming import build

    rt = runtime.flavour()
    keras = runtime.keras_module()
    for name, state in _saved_states():
        by_keras3 = build.written_by_keras3(state)
        assert by_keras3 is (not name.startswith(("tf212", "tf215", "tf221-tfkeras"))), name
        translated = rt.config_for_running(state.model_config, by_keras3)
        assert translated == build.config_for_running(state.model_config, rt.NAME, by_keras3), name
        model = rt.model_from_config(translated, {})
        rebuilt = build.build_model(state, rt.NAME, keras, None, name)
        assert isinstance(model, keras.Model), name
        assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in rebuilt.weights]
        assert len(model.weights) == 4, name


@pytest.mark.framework
def test_find_optimizer_class() -> None:
    rt = runtime.flavour()
    keras = runtime.keras_module()
    assert rt.find_optimizer_class("Adam") is keras.optimizers.Adam
    assert rt.find_optimizer_class("NoSuchOptimizer") is None
    legacy = getattr(keras.optimizers, "legacy", None)
    expected = getattr(legacy, "SGD", None) if rt.NAME == "keras2" and legacy else None
    assert rt.find_optimizer_class("SGD", legacy=True) is (expected or keras.optimizers.SGD)


@pytest.mark.framework
def test_variables_and_shapes_of_a_live_model() -> None:
    keras = runtime.keras_module()
    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    rt = runtime.flavour()
    assert list(rt.variables(model)) == ["d/kernel", "d/bias"]
    assert rt.variable_shapes(model) == {"d/kernel": (3, 2), "d/bias": (2,)}
