"""Private helpers of the resumable callbacks: the running Keras ``Callback`` base, bound lazily.

A public callback class derives from :class:`LazyCallback` (or calls :func:`bind_callback`
in its ``__new__``). Each instantiation binds it (and any user subclass) to
``keras.callbacks.Callback`` of the running Keras -- tf.keras, tf_keras or Keras 3 --
through :func:`ckptcompat.runtime.bind` (a cached subclass, ``cls`` first in the MRO). So
``import ckptcompat.callbacks`` never imports TensorFlow,
``isinstance(cb, ckptcompat.callbacks.EarlyStopping)`` holds and Keras accepts the object as
a real callback on every version.
"""

from __future__ import annotations

import logging
from typing import Any

from ckptcompat import runtime
from ckptcompat.callbacks import _state

__all__ = ["LazyCallback", "bind_callback", "as_float"]


def bind_callback(cls: type) -> type:
    """``cls`` bound to the running Keras ``Callback`` (cached; instances refuse pickling)."""
    return runtime.bind(cls, runtime.callback_base(), __reduce__=_no_pickle)


def _no_pickle(self: Any) -> Any:  # pragma: no cover - callbacks are not pickled by Keras
    raise TypeError(f"{type(self).__name__} callbacks cannot be pickled")


def as_float(value: Any) -> float | None:
    """A logged value as a Python float (numpy / tensor scalars too); None when not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            import numpy as np

            return float(np.asarray(value))
        except (TypeError, ValueError):
            return None


class LazyCallback:
    """Mixin: bound to the running Keras ``Callback`` on first instantiation; registers state.

    Subclasses set ``state_key`` (stable, unique per model) and implement ``state_dict`` /
    ``load_state_dict``; ``set_model`` registers them with :mod:`ckptcompat.callbacks._state`.
    """

    state_key: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(bind_callback(cls))

    def _init_keras(self) -> None:
        runtime.callback_base().__init__(self)
        self._warned: set[str] = set()
        self._log = logging.getLogger(type(self).__module__)

    def _warn_once(self, tag: str, message: str, *args: Any) -> None:
        if tag not in self._warned:
            self._warned.add(tag)
            self._log.warning(message, *args)

    def _info_once(self, tag: str, message: str, *args: Any) -> None:
        if tag not in self._warned:
            self._warned.add(tag)
            self._log.info(message, *args)

    def _say(self, epoch: int | None, message: str, *args: Any) -> None:
        """A message of a ``verbose`` option: with ``verbose >= 1`` printed to stdout as Keras
        prints its callbacks' messages (``"\\nEpoch 00005: ..."``, ``epoch`` 0-based; ``None``:
        no epoch prefix) and logged at INFO; with ``verbose=0`` logged at DEBUG only."""
        text = message % args if args else message
        if getattr(self, "verbose", 0):
            print(text if epoch is None else f"\nEpoch {epoch + 1:05d}: {text}", flush=True)
            self._log.info(text if epoch is None else f"epoch {epoch + 1}: {text}")
        else:
            self._log.debug(text if epoch is None else f"epoch {epoch + 1}: {text}")

    def set_model(self, model: Any) -> None:
        super().set_model(model)  # type: ignore[misc]
        if self.state_key:
            _state.register(model, self)  # type: ignore[arg-type]

    def _take_state(self) -> dict[str, Any] | None:
        """The state offered for this callback after a resume (None when fresh)."""
        model = getattr(self, "model", None)
        if model is None or not self.state_key:
            return None
        return _state.take_state(model, self.state_key)

    def on_train_begin(self, logs: Any = None) -> None:
        """Load the state offered after a resume; otherwise reset, unless ``load_state_dict``
        was called directly before this ``fit`` (then that state is kept for it)."""
        offered = self._take_state()
        if offered is not None:
            self.load_state_dict(offered)  # type: ignore[attr-defined]
        elif not getattr(self, "_loaded", False):
            self._reset()  # type: ignore[attr-defined]
        self._loaded = False
