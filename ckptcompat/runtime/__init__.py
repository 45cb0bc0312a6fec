"""The ONLY flavour detection, and the entry points shared by the live flavours.

* ``keras2``: ``tf.keras`` of TensorFlow <= 2.15, or the ``tf_keras`` package that TensorFlow
  routes ``tf.keras`` to when the legacy-Keras switch (:data:`LEGACY_KERAS_ENV`) is on;
* ``keras3``: ``keras`` >= 3 (TensorFlow >= 2.16 default).

:func:`detect` tells which one user code gets and :func:`keras_module` returns that Keras,
by TensorFlow's own rule (:func:`keras_source`); detection never imports TensorFlow. The
flavour modules (:mod:`.keras2`, :mod:`.keras3`) import the framework themselves, are imported
only on demand (:func:`flavour`) and hold every difference between the generations as
attributes and functions of one shape (``NATIVE_FORMAT``, ``dataset_base()``, ...), so the
shared flow never branches on a version. TF1 sessions (:mod:`.tf1`) are chosen by the
caller (a ``session`` is given), never detected.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ckptcompat.errors import MissingDependencyError

__all__ = ["FLAVOURS", "LEGACY_KERAS_ENV", "LEGACY_KERAS_ON", "LEGACY_KERAS_HINT",
           "legacy_keras_requested", "choose_keras", "keras_source", "detect", "flavour",
           "keras_module", "callback_base", "bind", "capture", "apply", "learning_rate",
           "set_learning_rate"]

log = logging.getLogger(__name__)

#: Flavour names, each a module of this package.
FLAVOURS = ("keras2", "keras3")

#: The environment variable that routes ``tf.keras`` to the ``tf_keras`` package.
LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
#: The values TensorFlow treats as "on" -- exactly the tuple of ``tensorflow/__init__.py`` and
#: ``tensorflow/python/util/lazy_loader.py`` (``KerasLazyLoader``) in TF 2.15 ... 2.21. Every
#: other value (``"TRUE"``, ``"yes"``, ``" 1"``, ``""``) is off.
LEGACY_KERAS_ON = ("true", "True", "1")
#: How to get Keras 2 on TensorFlow >= 2.16 (install hint of errors).
LEGACY_KERAS_HINT = f"pip install 'ckptcompat[tf-keras]' and set {LEGACY_KERAS_ENV}=1"

#: First TensorFlow whose ``tf.keras`` reads the switch (its ``KerasLazyLoader``).
_LEGACY_SWITCH_SINCE = (2, 15)
#: First TensorFlow whose ``tf.keras`` is Keras 3 (it requires ``keras>=3``).
_KERAS3_SINCE = (2, 16)

_WARNED: list[str] = []  # the missing-tf_keras warning is logged once per process

_TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                     "tensorflow-macos", "tf-nightly", "tf-nightly-cpu")


def legacy_keras_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``environ`` (default ``os.environ``) switches ``tf.keras`` to ``tf_keras``,
    by TensorFlow's rule: the value is one of :data:`LEGACY_KERAS_ON`."""
    env = os.environ if environ is None else environ
    return env.get(LEGACY_KERAS_ENV, None) in LEGACY_KERAS_ON


def choose_keras(tf_version: tuple[int, int], legacy_requested: bool, tf_keras_installed: bool) -> str:
    """Where ``tf.keras`` comes from, by TensorFlow's rule: ``"tf_keras"``, ``"tf.keras"``
    (Keras 2 behind TensorFlow) or ``"keras"`` (Keras 3). Pure: no import, no environment.

    TF >= 2.15 with the switch on and ``tf_keras`` importable routes to ``tf_keras``; TF <= 2.15
    is Keras 2 otherwise; TF >= 2.16 is Keras 3 otherwise (with the switch on but no
    ``tf_keras``, TensorFlow warns and ``import keras`` still gives Keras 3).
    """
    if legacy_requested and tf_keras_installed and tf_version >= _LEGACY_SWITCH_SINCE:
        return "tf_keras"
    if tf_version < _KERAS3_SINCE:
        return "tf.keras"
    return "keras"


def _tf_version() -> tuple[int, int] | None:
    """(major, minor) of the installed TensorFlow, or None; does not import TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    for dist in _TF_DISTRIBUTIONS:
        try:
            text = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
        if len(parts) == 2:
            return parts[0], parts[1]
    tf = importlib.import_module("tensorflow")  # installed without metadata: ask it
    major, minor = str(tf.__version__).split(".")[:2]
    return int(major), int(minor)


def keras_source() -> str:
    """:func:`choose_keras` for this environment; :class:`MissingDependencyError` without
    TensorFlow. Does not import TensorFlow."""
    version = _tf_version()
    if version is None:
        raise MissingDependencyError(
            "TensorFlow is needed to capture or restore a live model but is not installed",
            hint="pip install 'ckptcompat[tf]'")
    requested = legacy_keras_requested()
    source = choose_keras(version, requested,
                          requested and importlib.util.find_spec("tf_keras") is not None)
    if requested and source != "tf_keras" and version >= _LEGACY_SWITCH_SINCE and not _WARNED:
        _WARNED.append(LEGACY_KERAS_ENV)
        log.warning("%s is on but tf_keras is not installed: TensorFlow's tf.keras will fail "
                    "(%s)", LEGACY_KERAS_ENV, LEGACY_KERAS_HINT)
    return source


def detect() -> str:
    """``"keras2"`` or ``"keras3"``: the Keras flavour that ``import tensorflow`` user code gets.

    Raises :class:`MissingDependencyError` when TensorFlow is not installed.
    """
    return "keras3" if keras_source() == "keras" else "keras2"


def flavour(name: str | None = None) -> ModuleType:
    """The flavour module ``name`` (default: the running one, see :func:`detect`)."""
    name = name or detect()
    if name not in FLAVOURS:
        raise ValueError(f"unknown runtime flavour {name!r}; expected one of {FLAVOURS}")
    return importlib.import_module(f"{__name__}.{name}")


def keras_module() -> ModuleType:
    """The Keras module user code gets: ``tf_keras``, ``tf.keras`` or ``keras`` (imports it)."""
    from ckptcompat._lazy import require

    source = keras_source()
    if source == "tf_keras":
        return require("tf_keras", "use Keras 2 on TensorFlow >= 2.16")
    if source == "tf.keras":
        tf = require("tensorflow", "use tf.keras")
        try:
            keras: ModuleType = tf.keras
            _ = keras.Model  # a lazy loader: resolve it here, not in the caller
        except (ImportError, RecursionError) as exc:
            # TF 2.15 with the switch on but no tf_keras: ImportError on first access, then
            # RecursionError (its KerasLazyLoader stays half-initialised)
            raise MissingDependencyError(f"tf.keras cannot be imported: {exc}",
                                         hint=LEGACY_KERAS_HINT) from exc
        return keras
    return require("keras", "use Keras 3")


def callback_base() -> type:
    """``keras.callbacks.Callback`` of the running Keras."""
    base: type = keras_module().callbacks.Callback
    return base


_BOUND: dict[tuple[type, type], type] = {}


def bind(cls: type, base: type, **namespace: Any) -> type:
    """A cached subclass of ``cls`` and ``base`` (a class of the running Keras), ``cls`` first
    in the MRO and named like it; ``namespace`` adds class attributes. ``cls`` itself when it
    already derives from ``base``. Lets a light plain class become a real Keras object on
    first instantiation (``isinstance(obj, cls)`` holds)."""
    if issubclass(cls, base):
        return cls
    key = (cls, base)
    if key not in _BOUND:
        _BOUND[key] = type(cls.__name__, (cls, base), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, **namespace})
    return _BOUND[key]


def capture(model: Any, *, include_optimizer: bool = True, into: Any = None) -> Any:
    """:func:`capture` of the running flavour (``into``: an earlier capture to reuse the
    arrays of)."""
    return flavour().capture(model, include_optimizer=include_optimizer, into=into)


def apply(state: Any, model: Any, *, partial: bool = False) -> Any:
    """:func:`apply` of the running flavour."""
    return flavour().apply(state, model, partial=partial)


def learning_rate(model_or_optimizer: Any) -> float | None:
    """The optimizer's current fixed learning rate; None when it is a schedule."""
    result: float | None = flavour().learning_rate(model_or_optimizer)
    return result


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """:func:`set_learning_rate` of the running flavour."""
    result: float = flavour().set_learning_rate(model_or_optimizer, value)
    return result
