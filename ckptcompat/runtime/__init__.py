"""The ONLY flavour detection, and the entry points shared by the live flavours.

* ``keras2``: ``tf.keras`` of TensorFlow <= 2.15, or the ``tf_keras`` package that TensorFlow
  routes ``tf.keras`` to when the legacy-Keras switch (:data:`LEGACY_KERAS_ENV`) is on;
* ``keras3``: ``keras`` >= 3 (TensorFlow >= 2.16 default), or Keras 3 without TensorFlow on
  the JAX or torch backend (:func:`keras_backend`);
* ``keras_standalone``: the multi-backend ``keras`` package <= 2.3 on TensorFlow 1.x, never
  detected (TensorFlow gives user code ``tf.keras``) but chosen for a model of that package
  (:func:`flavour_for`).

:func:`detect` tells which one user code gets and :func:`keras_module` returns that Keras,
by TensorFlow's own rule (:func:`keras_source`); detection never imports TensorFlow. The
flavour modules (:mod:`.keras2`, :mod:`.keras3`) import the framework themselves, are imported
only on demand (:func:`flavour`) and hold every difference between the generations as
attributes and functions of one shape (``NATIVE_FORMAT``, ``dataset_base()``, ...), so the
shared flow never branches on a version. TF1 sessions (:mod:`.tf1`) are chosen by the
caller (a ``session`` is given), never detected. Nothing here imports Keras or a backend.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import json
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ckptcompat._compat import PackageNotFoundError, distribution_version
from ckptcompat.errors import MissingDependencyError

__all__ = ["VIEWS", "FLAVOURS", "LEGACY_KERAS_ENV", "LEGACY_KERAS_ON", "LEGACY_KERAS_HINT",
           "legacy_keras_requested", "choose_keras", "keras_source", "keras_backend",
           "install_hint", "BACKEND_EXTRAS", "detect", "flavour", "flavour_for", "standalone_keras_module",
           "keras_module", "callback_base", "bind", "capture", "apply", "learning_rate",
           "set_learning_rate", "read_variable", "write_variable"]

log = logging.getLogger(__name__)

#: Flavour names, each a module of this package.
FLAVOURS = ("keras2", "keras3", "keras_standalone")

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

#: ``capture(model, into=VIEWS)``: the state's arrays may be views of the live variables
#: (no copy), valid until the next training step; for a save written before training goes on
VIEWS = "views"

_WARNED: list[str] = []  # the missing-tf_keras warning is logged once per process

#: Keras 3 backends ckptcompat runs on -> the extra that installs what that backend needs.
BACKEND_EXTRAS = {"tensorflow": "ckptcompat[tf]", "jax": "ckptcompat[jax]", "torch": "ckptcompat[torch]"}
#: The import name of each backend's framework.
_BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}

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


_DIST_VERSIONS: dict[str, str] = {}


def _dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed), looked up once per
    process: the metadata scan of sys.path costs milliseconds, and resume asks on every call."""
    if dist not in _DIST_VERSIONS:
        try:
            _DIST_VERSIONS[dist] = distribution_version(dist)
        except PackageNotFoundError:
            return None  # not kept: a notebook may pip install it and ask again
    return _DIST_VERSIONS[dist]


def _tf_version() -> tuple[int, int] | None:
    """(major, minor) of the installed TensorFlow, or None; does not import TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    for dist in _TF_DISTRIBUTIONS:
        text = _dist_version(dist)
        if text is None:
            continue
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
        if len(parts) == 2:
            return parts[0], parts[1]
    tf = importlib.import_module("tensorflow")  # installed without metadata: ask it
    major, minor = str(tf.__version__).split(".")[:2]
    return int(major), int(minor)


def _keras3_installed() -> bool:
    """True when the ``keras`` package is Keras >= 3; does not import it."""
    if importlib.util.find_spec("keras") is None:
        return False
    text = _dist_version("keras")
    return text is not None and text.split(".")[0].isdigit() and int(text.split(".")[0]) >= 3


def keras_backend(environ: Mapping[str, str] | None = None) -> str:
    """The backend ``import keras`` (Keras 3) runs on, by Keras' own rule and without
    importing it: the running Keras' when it is imported, else ``$KERAS_BACKEND``, else
    ``"backend"`` of ``$KERAS_HOME/keras.json`` (default ``~/.keras``), else ``"tensorflow"``."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None) if environ is None else None
    if config is not None and callable(getattr(config, "backend", None)):
        return str(config.backend())
    env = os.environ if environ is None else environ
    if env.get("KERAS_BACKEND"):
        return str(env["KERAS_BACKEND"])
    home = env.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as fh:
            backend = json.load(fh).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return str(backend) if backend else "tensorflow"


def install_hint(backend: str | None = None) -> str:
    """How to install what a live model needs here: the extra of ``backend`` (default: the
    configured Keras backend), or of an installed JAX / torch, when that backend cannot run."""
    backend = backend or keras_backend()
    if backend != "tensorflow" and backend in BACKEND_EXTRAS:
        return f"pip install '{BACKEND_EXTRAS[backend]}' (Keras 3 on {backend}, KERAS_BACKEND={backend})"
    for other in ("jax", "torch"):
        if importlib.util.find_spec(_BACKEND_MODULES[other]) is not None:
            return (f"set KERAS_BACKEND={other} ({other} is installed) and pip install "
                    f"'{BACKEND_EXTRAS[other]}', or pip install '{BACKEND_EXTRAS['tensorflow']}'")
    return f"pip install '{BACKEND_EXTRAS['tensorflow']}' (or '{BACKEND_EXTRAS['jax']}' / '{BACKEND_EXTRAS['torch']}')"


def keras_source() -> str:
    """:func:`choose_keras` for this environment; without TensorFlow, ``"keras"`` when Keras 3
    is installed for a backend other than TensorFlow (JAX, torch), else
    :class:`MissingDependencyError` with what that backend needs. Imports neither."""
    version = _tf_version()
    if version is None:
        backend = keras_backend()
        if _keras3_installed() and backend != "tensorflow":
            return "keras"
        what = (f"Keras 3 is configured for the {backend} backend" if _keras3_installed()
                else "neither TensorFlow nor Keras 3 is installed")
        raise MissingDependencyError(
            f"a live model cannot be captured or restored: {what} but TensorFlow is not installed",
            hint=install_hint(backend))
    requested = legacy_keras_requested()
    source = choose_keras(version, requested,
                          requested and importlib.util.find_spec("tf_keras") is not None)
    if requested and source != "tf_keras" and version >= _LEGACY_SWITCH_SINCE and not _WARNED:
        _WARNED.append(LEGACY_KERAS_ENV)
        log.warning("%s is on but tf_keras is not installed: TensorFlow's tf.keras will fail "
                    "(%s)", LEGACY_KERAS_ENV, LEGACY_KERAS_HINT)
    return source


def detect() -> str:
    """``"keras2"`` or ``"keras3"``: the Keras flavour that user code gets (``import tensorflow``,
    or ``import keras`` on the JAX / torch backend without TensorFlow).

    Raises :class:`MissingDependencyError` when no usable Keras is installed.
    """
    return "keras3" if keras_source() == "keras" else "keras2"


def flavour(name: str | None = None) -> ModuleType:
    """The flavour module ``name`` (default: the running one, see :func:`detect`)."""
    name = name or detect()
    if name not in FLAVOURS:
        raise ValueError(f"unknown runtime flavour {name!r}; expected one of {FLAVOURS}")
    return importlib.import_module(f"{__name__}.{name}")


def flavour_for(model: Any) -> ModuleType:
    """The flavour module that handles ``model`` (or an optimizer): standalone Keras <= 2.3 for
    an object of that package or of a subclass of one of its classes, else the running one
    (:func:`detect`)."""
    if model is not None and "keras" in sys.modules and any(
            (getattr(c, "__module__", None) or "").split(".")[0] == "keras" for c in type(model).__mro__):
        from ckptcompat.runtime.keras_standalone import is_standalone_model

        if is_standalone_model(model):
            return flavour("keras_standalone")
    return flavour()


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
    return require("keras", f"use Keras 3 on the {keras_backend()} backend")


def standalone_keras_module() -> ModuleType:
    """The standalone (multi-backend) ``keras`` package <= 2.3, for a model of it (see
    :func:`flavour_for`; imports it)."""
    from ckptcompat._lazy import require

    return require("keras", "use standalone Keras 2.x models")


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
    arrays of, or :data:`VIEWS` for no copy)."""
    return flavour_for(model).capture(model, include_optimizer=include_optimizer, into=into)


def apply(state: Any, model: Any, *, partial: bool = False) -> Any:
    """:func:`apply` of the running flavour."""
    return flavour_for(model).apply(state, model, partial=partial)


def read_variable(var: Any, model: Any = None) -> Any:
    """A copy of a live variable's value as a numpy array, in the flavour of ``model`` (default:
    the running one): eager ``numpy()``, a TF1 graph's session, a JAX/torch buffer."""
    return flavour_for(model).read_variable(var)


def write_variable(var: Any, value: Any, model: Any = None) -> None:
    """Assign ``value`` to a live variable in the flavour of ``model`` (default: the running
    one; TF1 graph: in the session)."""
    flavour_for(model).write_variable(var, value)


def learning_rate(model_or_optimizer: Any) -> float | None:
    """The optimizer's current fixed learning rate; None when it is a schedule."""
    result: float | None = flavour_for(model_or_optimizer).learning_rate(model_or_optimizer)
    return result


def set_learning_rate(model_or_optimizer: Any, value: float) -> float:
    """:func:`set_learning_rate` of the running flavour."""
    result: float = flavour_for(model_or_optimizer).set_learning_rate(model_or_optimizer, value)
    return result
