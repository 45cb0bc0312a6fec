"""Keras 3 int8-quantized layers (``model.quantize("int8")``) in a Keras v3 weights file.

A quantized layer's config carries a ``QuantizedDTypePolicy`` whose ``mode`` says which variables
its ``save_own_variables`` writes, in order (Keras's ``variable_serialization_spec``): for ``int8``
the int8 kernel (frozen), the bias, then the kernel's scale (frozen); an Embedding its int8
embeddings and their scale. Other modes (``int4``, ``float8``, ``gptq``, ``awq``) are not laid out
here: the reader names their variables ``var_<i>`` and pairs them as Keras loads them, the writer
refuses them with a typed error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.formats.keras_zip._layout import LayerSlot, VarSpec

__all__ = ["quantization_mode", "quantized_specs", "refuse_quantized", "SUPPORTED_MODES"]

#: the modes laid out here
SUPPORTED_MODES = frozenset({"int8"})


def quantization_mode(config: Mapping[str, Any]) -> str | None:
    """The quantization mode of a layer config (``"int8"``), None for a float layer."""
    policy = config.get("dtype")
    inner = policy.get("config") if isinstance(policy, Mapping) else None
    mode = inner.get("mode") if isinstance(inner, Mapping) else None  # QuantizedDTypePolicy, Int4DTypePolicy, ...
    return str(mode).split("/")[0] if mode else None  # "int4/128": int4 in groups of 128


def _frozen(name: str, ndim: tuple[int, ...] | None = None) -> VarSpec:
    return VarSpec(name, False, ndim)


def quantized_specs(class_name: str, config: Mapping[str, Any], mode: str) -> list[VarSpec] | None:
    """The variables an ``int8`` layer of ``class_name`` saves, in order; None where not laid out."""
    if mode not in SUPPORTED_MODES:
        return None
    if class_name == "Dense":
        bias = [VarSpec("bias", True, (1,))] if config.get("use_bias", True) else []
        return [_frozen("kernel", (2,)), *bias, _frozen("kernel_scale")]
    if class_name == "EinsumDense":
        bias = [VarSpec("bias", True, None)] if config.get("bias_axes") else []
        return [_frozen("kernel"), *bias, _frozen("kernel_scale")]
    if class_name in ("Embedding", "ReversibleEmbedding"):
        out = [_frozen("embeddings", (2,)), _frozen("embeddings_scale")]
        if class_name == "ReversibleEmbedding" and not config.get("tie_weights", True):
            out += [_frozen("reverse_embeddings", (2,)), _frozen("reverse_embeddings_scale")]
        return out
    return None


def refuse_quantized(slot: LayerSlot, weights: Mapping[str, Any], path: Path) -> None:
    """For writing: a quantized layer this module does not lay out, or one with LoRA factors
    (Keras saves such a layer's kernel merged with the factors and quantized again, which only
    Keras can compute), raises :class:`UnsupportedFormatError` naming it."""
    mode = quantization_mode(slot.config)
    if mode is None:
        return
    if mode not in SUPPORTED_MODES or quantized_specs(slot.class_name, slot.config, mode) is None:
        raise UnsupportedFormatError(
            f"layer {slot.prefix} ({slot.class_name}) is quantized as {mode!r}; this writer lays out "
            f"{', '.join(sorted(SUPPORTED_MODES))} Dense/EinsumDense/Embedding layers only", path=path,
            hint="save this model with Keras's own model.save; ckptcompat.resume reads such files")
    if any(name.startswith(slot.prefix + "/lora_") for name in weights):
        raise UnsupportedFormatError(
            f"layer {slot.prefix} ({slot.class_name}) trains LoRA factors on a {mode} kernel; Keras saves its "
            "kernel merged with them and quantized again, which only Keras computes", path=path,
            hint="save this model with Keras's own model.save; ckptcompat.resume reads such files "
                 "(the factors restart on the merged kernel)")

