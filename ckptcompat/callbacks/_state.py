"""How stateful callbacks find each other and get their state back after a resume.

Every ckptcompat callback with state has a stable ``state_key`` and ``state_dict()`` /
``load_state_dict(state)`` (JSON-safe dicts; new fields read with ``.get(key, default)`` so
older checkpoints still load). In ``set_model`` it calls :func:`register`, so the
``Checkpoint`` callback can collect every registered state at save time without the user
wiring callbacks together. ``resume()`` hands the restored states to :func:`offer_states`;
each callback takes its own in ``on_train_begin`` with :func:`take_state` instead of
resetting -- the behaviour native Keras callbacks lack.

The registry is keyed by the model object (weakly, so models are not kept alive).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from .._compat import Protocol, runtime_checkable

__all__ = ["StatefulCallback", "register", "registered", "collect_states", "offer_states", "take_state",
           "is_offered"]


@runtime_checkable
class StatefulCallback(Protocol):
    """What a callback provides to have its state saved and restored."""

    state_key: str

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class _PerModel:
    """Weak per-model storage; falls back to ``id()`` for objects that refuse weak references."""

    def __init__(self) -> None:
        self._weak: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._by_id: dict[int, Any] = {}

    def get(self, model: Any, default: Any) -> Any:
        try:
            return self._weak.get(model, default)
        except TypeError:
            return self._by_id.get(id(model), default)

    def set(self, model: Any, value: Any) -> None:
        try:
            self._weak[model] = value
        except TypeError:
            self._by_id[id(model)] = value


_CALLBACKS = _PerModel()
_OFFERED = _PerModel()


def register(model: Any, callback: StatefulCallback) -> None:
    """Register ``callback`` as stateful for ``model`` (idempotent; a key is unique per model)."""
    current: dict[str, StatefulCallback] = _CALLBACKS.get(model, {})
    current = {**current, callback.state_key: callback}
    _CALLBACKS.set(model, current)


def registered(model: Any) -> dict[str, StatefulCallback]:
    """The stateful callbacks registered for ``model``, by state key."""
    return dict(_CALLBACKS.get(model, {}))


def collect_states(model: Any) -> dict[str, dict[str, Any]]:
    """``state_dict()`` of every callback registered for ``model``, by state key."""
    return {key: cb.state_dict() for key, cb in registered(model).items()}


def offer_states(model: Any, states: Mapping[str, Mapping[str, Any]]) -> None:
    """Make restored callback states available to the callbacks that will train ``model``."""
    _OFFERED.set(model, {key: dict(value) for key, value in states.items()})


def take_state(model: Any, state_key: str) -> dict[str, Any] | None:
    """The restored state offered for ``state_key`` on ``model`` (removed once taken), or None."""
    offered: dict[str, dict[str, Any]] = _OFFERED.get(model, {})
    if state_key not in offered:
        return None
    remaining = {k: v for k, v in offered.items() if k != state_key}
    _OFFERED.set(model, remaining)
    return offered[state_key]


def is_offered(model: Any, state_key: str) -> bool:
    """True when a restored state for ``state_key`` waits for ``model`` (not taken yet)."""
    return state_key in _OFFERED.get(model, {})
