"""Layers by canonical path, in a model config and in a live model.

A layer's canonical path is its name, prefixed by the names of the models that hold it
(``outer/inner/dense``), as the state names its weights. Both walks go depth first in model
order and stop at depth 64.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["config_entries", "live_layers"]

_MAX_DEPTH = 64


def config_entries(config: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every layer entry (``{"class_name", "config"}``, the config's own dict: changes stay) of a
    model config with its canonical path; nested models walked."""
    inner = config.get("config") if isinstance(config, dict) else None
    entries = inner.get("layers") if isinstance(inner, dict) else None
    for entry in entries if isinstance(entries, list) and depth <= _MAX_DEPTH else []:
        cfg = entry.get("config") if isinstance(entry, dict) else None
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
            yield prefix + cfg["name"], entry
            yield from config_entries(entry, prefix + cfg["name"] + "/", depth + 1)


def live_layers(container: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every layer of a live model with its canonical path; nested models walked."""
    for layer in list(getattr(container, "layers", None) or []) if depth <= _MAX_DEPTH else []:
        path = prefix + str(layer.name)
        yield path, layer
        yield from live_layers(layer, path + "/", depth + 1)
