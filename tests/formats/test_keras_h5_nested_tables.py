"""What a legacy ``.h5``'s model config says about the weights of models nested in models: which
layer a weight belongs to, whether it trains, and its place in model order (no framework)."""

from __future__ import annotations

from typing import Any

from ckptcompat.formats.keras_h5._layer_configs import (layer_chains, layer_configs, layer_order, place, trainable,
                                                       with_inner_path)


def _layer(cls: str, name: str, *inner: dict[str, Any], trainable: bool = True) -> dict[str, Any]:
    config: dict[str, Any] = {"name": name, "trainable": trainable}
    if inner:
        config["layers"] = list(inner)
    return {"class_name": cls, "config": config}


#: backbone (a model) holds two blocks whose layers share the name proj (block_a frozen), a Dense,
#: and a Sequential whose only layer is frozen; then a head
TABLE = layer_configs({"class_name": "Functional", "config": {"layers": [
    _layer("Functional", "backbone",
           _layer("Functional", "block_a", _layer("Dense", "proj"), trainable=False),
           _layer("Functional", "block_b", _layer("Dense", "proj")),
           _layer("Dense", "dense"),
           _layer("Sequential", "inner", _layer("Dense", "deep", trainable=False))),
    _layer("Dense", "head")]}})


def test_a_weight_belongs_to_the_layer_its_own_path_names() -> None:
    assert trainable("backbone", "block_b/proj/kernel:0", TABLE)  # not block_a's proj, which is frozen
    assert not trainable("backbone", "block_a/proj/kernel:0", TABLE)
    assert not trainable("backbone", "backbone/inner/deep/kernel:0", TABLE)  # the writer's full names
    assert trainable("backbone", "dense/kernel:0", TABLE) and trainable("head", "head/kernel:0", TABLE)


def test_a_weight_named_after_its_layer_alone_is_found_at_any_depth() -> None:
    assert not trainable("backbone", "deep/kernel:0", TABLE)  # two models deep: frozen
    nested = layer_chains(TABLE["backbone"][2])
    assert with_inner_path("backbone", "deep/kernel:0", nested) == "inner/deep/kernel:0"
    assert with_inner_path("backbone", "dense/kernel:0", nested) == "dense/kernel:0"  # a direct layer
    assert with_inner_path("backbone", "backbone/inner/deep/kernel:0", nested) == "backbone/inner/deep/kernel:0"


def test_model_order_is_depth_first() -> None:
    order = layer_order(TABLE)
    names = ["head/kernel", "backbone/inner/deep/kernel", "backbone/dense/kernel", "backbone/block_b/proj/kernel",
             "backbone/block_a/proj/bias", "unknown/kernel"]
    assert sorted(names, key=lambda n: place(n, order)) == [
        "backbone/block_a/proj/bias", "backbone/block_b/proj/kernel", "backbone/dense/kernel",
        "backbone/inner/deep/kernel", "head/kernel", "unknown/kernel"]
