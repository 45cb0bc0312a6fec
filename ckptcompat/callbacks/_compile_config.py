"""The loss and metrics a model was compiled with, as plain data for ``state.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["compile_config"]


def compile_config(model: Any) -> dict[str, Any] | None:
    """Loss and metrics the model was compiled with, as plain data (None when unknown)."""
    from ckptcompat.formats.sidecar import to_jsonable

    cfg: dict[str, Any] | None = None
    getter = getattr(model, "get_compile_config", None)
    try:
        if callable(getter):
            cfg = dict(getter() or {})
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        cfg = None
    if not cfg and hasattr(model, "_get_compile_args"):
        try:
            args = model._get_compile_args(user_metrics=True)  # noqa: SLF001
        except TypeError:
            args = model._get_compile_args()  # noqa: SLF001
        except (AttributeError, ValueError):
            args = {}
        cfg = {k: args.get(k) for k in ("loss", "metrics", "weighted_metrics", "loss_weights")}
    if not cfg and getattr(model, "loss", None) is not None:  # tf.keras < 2.2, standalone Keras
        cfg = {"loss": model.loss, "metrics": _user_list(model, "_compile_metrics", "metrics"),
               "weighted_metrics": _user_list(model, "_compile_weighted_metrics", "weighted_metrics"),
               "loss_weights": getattr(model, "loss_weights", None)}
    if not cfg:
        return None
    cfg.pop("optimizer", None)

    def simple(obj: Any) -> Any:
        if obj is None or isinstance(obj, (str, int, float, bool)):
            return obj
        if isinstance(obj, Mapping):
            return {str(k): simple(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [simple(v) for v in obj]
        if callable(obj) and not hasattr(obj, "get_config"):
            return getattr(obj, "__name__", None)
        if hasattr(obj, "get_config"):
            inner = getattr(obj, "_fn", None)
            if type(obj).__name__ == "MeanMetricWrapper" or inner is not None and type(obj).__name__.endswith("Wrapper"):
                return getattr(obj, "name", None)
            return {"class_name": type(obj).__name__, "config": simple(obj.get_config())}
        return None

    problems: list[str] = []
    out = to_jsonable(simple(cfg), "$", problems)
    return None if problems else out


def _user_list(model: Any, private: str, public: str) -> Any:
    """The metrics as given to ``compile``: tf.keras 2.0 / standalone Keras 2.3 keep them in
    ``_compile_metrics``; standalone Keras 2.1/2.2 in ``metrics`` itself (a plain list there)."""
    found = getattr(model, private, None)
    if found is None:
        plain = getattr(model, public, None)
        found = plain if isinstance(plain, (list, dict)) else None
    return found or None
