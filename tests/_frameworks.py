"""Which framework this environment has, for skips and tests: ckptcompat's own detection
(:func:`ckptcompat.runtime.detect`, which never imports TensorFlow), never a copy of it."""

from __future__ import annotations

from ckptcompat._compat import PackageNotFoundError, distribution_version
import importlib.util
from types import ModuleType

from ckptcompat import runtime
from ckptcompat.errors import MissingDependencyError

__all__ = ["tf_version", "keras_flavour", "keras_backend", "keras_module", "running_keras30"]


def tf_version() -> tuple[int, ...] | None:
    """(major, minor) of the installed TensorFlow, or None."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    for dist in ("tensorflow-cpu", "tensorflow", "tensorflow-intel"):
        try:
            text = distribution_version(dist)
        except PackageNotFoundError:
            continue
        return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
    return None


def keras_flavour() -> str | None:
    """'keras2' (tf.keras <= 2.15 or tf-keras), 'keras3', or None when no framework is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    try:
        return runtime.detect()
    except MissingDependencyError:
        return None


def keras_backend() -> str | None:
    """The backend of a usable Keras 3 ('tensorflow', 'jax', 'torch'), or None (Keras 2 or no
    Keras): with TensorFlow only when its flavour is keras3, without it when Keras 3 is
    configured for JAX or torch (:func:`ckptcompat.runtime.keras_source`)."""
    flavour = keras_flavour()
    if flavour is not None:
        return "tensorflow" if flavour == "keras3" else None
    try:
        return runtime.keras_backend() if runtime.detect() == "keras3" else None
    except MissingDependencyError:
        return None


def keras_module() -> ModuleType:
    """The Keras that user code gets on this environment (tf.keras, tf_keras or keras 3)."""
    return runtime.keras_module()


def running_keras30() -> bool:
    """Whether the running Keras is a Keras 3.0.x (installed ``keras`` 3.0.x and no
    ``TF_USE_LEGACY_KERAS`` switch): the release without ``fit``'s ``_initial_epoch`` hook."""
    try:
        version = distribution_version("keras")
    except PackageNotFoundError:
        return False
    return version.startswith("3.0.") and not runtime.legacy_keras_requested()


def no_fit_start_hook() -> bool:
    """Whether the running Keras has no hook to start ``fit`` at a later epoch from a callback:
    Keras 3.0.x (no ``_initial_epoch``) or tf.keras before 2.4 (TF <= 2.2: no ``_training_state``)."""
    if running_keras30():
        return True
    if keras_flavour() != "keras2":
        return False
    parts = str(getattr(runtime.keras_module(), "__version__", "9.9")).split(".")[:2]
    return tuple(int(p) for p in parts if p.isdigit()) < (2, 4)


def fresh_graph() -> None:
    """Under TF1 graph execution every model adds to one graph, each table cell slower than the
    last: start the next cell on a new graph and session (nothing under eager execution)."""
    import sys

    tf = sys.modules.get("tensorflow")
    if tf is not None and not tf.executing_eagerly():
        runtime.keras_module().backend.clear_session()
