from __future__ import annotations

import gc
from typing import Any

from ckptcompat.callbacks import _state


class _Model:
    pass


class _Counter:
    def __init__(self, key: str) -> None:
        self.state_key = key
        self.count = 0

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state.get("count", 0)


def test_register_and_collect_by_key() -> None:
    model, a, b = _Model(), _Counter("a"), _Counter("b")
    _state.register(model, a)
    _state.register(model, b)
    _state.register(model, a)  # idempotent
    a.count = 3
    assert _state.collect_states(model) == {"a": {"count": 3}, "b": {"count": 0}}
    assert isinstance(a, _state.StatefulCallback)
    assert _state.registered(_Model()) == {}


def test_offered_state_is_taken_once() -> None:
    model = _Model()
    _state.offer_states(model, {"a": {"count": 7}})
    assert _state.take_state(model, "b") is None
    assert _state.take_state(model, "a") == {"count": 7}
    assert _state.take_state(model, "a") is None


def test_registry_does_not_keep_models_alive() -> None:
    model = _Model()
    _state.register(model, _Counter("a"))
    before = len(_state._CALLBACKS._weak)
    del model
    gc.collect()
    assert len(_state._CALLBACKS._weak) == before - 1
