"""The running Keras ``Callback`` base class, resolved lazily.

ckptcompat callbacks must subclass the Callback of the Keras that trains the model
(``tf.keras`` <= 2.15, ``tf_keras`` with ``TF_USE_LEGACY_KERAS=1``, or Keras 3), but
``import ckptcompat.callbacks`` must not import TensorFlow. Pattern for callback modules::

    from ckptcompat.callbacks._base import bind

    class MyCallback:                     # plain class: importing the module stays light
        def __new__(cls, *args, **kwargs):
            return object.__new__(bind(cls))   # an instance of MyCallback + keras Callback
        def __init__(self, ...):
            super().__init__()                 # reaches keras' Callback.__init__

``isinstance(obj, MyCallback)`` holds; Keras sees a real ``Callback``. ``keras_callback_base()``
returns the base class itself and ``keras_module()`` the running Keras module.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["keras_module", "keras_callback_base", "bind"]

_BOUND: dict[tuple[type, type], type] = {}


def keras_module() -> ModuleType:
    """The Keras module of the running flavour (imports the framework)."""
    from ckptcompat import runtime

    module: ModuleType = runtime.flavour().keras_module()
    return module


def keras_callback_base() -> type:
    """``keras.callbacks.Callback`` of the running Keras (tf.keras, tf_keras or keras 3)."""
    base: type = keras_module().callbacks.Callback
    return base


def bind(cls: type) -> type:
    """A cached subclass of ``cls`` and the running Keras ``Callback`` (``cls`` first in the MRO)."""
    base = keras_callback_base()
    if issubclass(cls, base):
        return cls
    key = (cls, base)
    if key not in _BOUND:
        bound = type(cls.__name__, (cls, base), {"__module__": cls.__module__,
                                                  "__qualname__": cls.__qualname__,
                                                  "__reduce__": _no_pickle})
        _BOUND[key] = bound
    return _BOUND[key]


def _no_pickle(self: Any) -> Any:  # pragma: no cover - callbacks are not pickled by Keras
    raise TypeError(f"{type(self).__name__} callbacks cannot be pickled")
