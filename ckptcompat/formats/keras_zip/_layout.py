"""Where each layer's variables live in a Keras v3 weights file, and what they are called.

Keras (tf.keras 2.12+ and Keras 3) stores variables by position: a layer's variables go to
``layers/<snake_case class name>[_<n>]/vars/<i>`` (nested models add
``layers/<class>/layers/...``, RNN cells ``.../cell/vars``, wrappers ``.../layer/vars``,
``.../forward_layer/...``). The group name comes from the *class*, deduplicated per
container, never from the layer name. This module walks a model config the way the saving
code walks the model and names each index from a small per-class table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ckptcompat.names.configs.table import LOOKUP_CLASSES

__all__ = ["VarSpec", "LayerSlot", "snake_case", "walk_model_config", "var_specs",
           "infer_specs_from_shapes", "lora_factors", "lora_frozen", "MODEL_CLASSES"]

log = logging.getLogger(__name__)

MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})


@dataclass(frozen=True)
class VarSpec:
    """One expected variable: short name, trainable flag and expected rank (None = any)."""

    name: str
    trainable: bool = True
    ndim: tuple[int, ...] | None = None


#: a VarSpec name starting with this is a second reference to a variable read elsewhere (skipped)
ALIAS = "="


@dataclass(frozen=True)
class LayerSlot:
    """A group of variables in the file: h5 group path, canonical prefix and layer class."""

    h5_path: str            # e.g. "layers/dense_1" (the variables are at h5_path + "/vars")
    prefix: str             # canonical prefix, e.g. "outer/d1"
    class_name: str
    config: Mapping[str, Any]
    trainable: bool


def snake_case(name: str) -> str:
    """Class name -> the group name Keras derives from it (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _bias(cfg: Mapping[str, Any], key: str = "use_bias") -> list[VarSpec]:
    return [VarSpec("bias", True, (1,))] if cfg.get(key, True) else []


def _dense(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("kernel", True, (2,)), *_bias(cfg)]


def _conv(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("kernel", True, (3, 4, 5)), *_bias(cfg)]


def _depthwise(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("depthwise_kernel", True, (3, 4, 5)), *_bias(cfg)]


def _depthwise_keras3(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("kernel", True, (3, 4, 5)), *_bias(cfg)]  # Keras 3 names it "kernel"


def _separable(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("depthwise_kernel", True, (3, 4, 5)),
            VarSpec("pointwise_kernel", True, (3, 4, 5)), *_bias(cfg)]


def _batchnorm(cfg: Mapping[str, Any]) -> list[VarSpec]:
    out = []
    if cfg.get("scale", True):
        out.append(VarSpec("gamma", True, (1,)))
    if cfg.get("center", True):
        out.append(VarSpec("beta", True, (1,)))
    out += [VarSpec("moving_mean", False, (1,)), VarSpec("moving_variance", False, (1,))]
    if cfg.get("renorm"):  # batch renormalization's statistics, after the moving ones (Keras 3, tf-keras)
        out += [VarSpec(name, False, (1,)) for name in ("moving_stddev", "renorm_mean", "renorm_stddev")]
    return out


def _layernorm(cfg: Mapping[str, Any]) -> list[VarSpec]:
    out = []
    if cfg.get("scale", True):
        out.append(VarSpec("gamma", True, None))
    if cfg.get("center", True):
        out.append(VarSpec("beta", True, None))
    return out


def _rnn_cell(cfg: Mapping[str, Any]) -> list[VarSpec]:
    bias = [VarSpec("bias", True, (1, 2))] if cfg.get("use_bias", True) else []
    return [VarSpec("kernel", True, (2,)), VarSpec("recurrent_kernel", True, (2,)), *bias]


def _conv_lstm_cell(cfg: Mapping[str, Any]) -> list[VarSpec]:
    bias = [VarSpec("bias", True, (1,))] if cfg.get("use_bias", True) else []
    return [VarSpec("kernel", True, (3, 4, 5)), VarSpec("recurrent_kernel", True, (3, 4, 5)), *bias]


def _normalization(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("mean", False, None), VarSpec("variance", False, None), VarSpec("count", False, (0,))]


def _einsum(cfg: Mapping[str, Any]) -> list[VarSpec]:
    return [VarSpec("kernel", True, None), *([VarSpec("bias", True, None)] if cfg.get("bias_axes") else [])]


#: layer class -> variables it creates, in creation order, from its config.
LAYER_VARS: dict[str, Callable[[Mapping[str, Any]], list[VarSpec]]] = {
    "Dense": _dense,
    "EinsumDense": _einsum,
    **{c: _conv for c in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                          "Conv3DTranspose", "Convolution1D", "Convolution2D", "Convolution3D")},
    "DepthwiseConv1D": _depthwise, "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm, "GroupNormalization": _layernorm,
    "Embedding": lambda cfg: [VarSpec("embeddings", True, (2,))],
    "PReLU": lambda cfg: [VarSpec("alpha", True, None)],
    "LSTMCell": _rnn_cell, "GRUCell": _rnn_cell, "SimpleRNNCell": _rnn_cell,
    "ConvLSTMCell": _conv_lstm_cell,
    "Attention": lambda cfg: [VarSpec("scale", True, (0,))] if cfg.get("use_scale") else [],
    "AdditiveAttention": lambda cfg: [VarSpec("scale", True, (1,))] if cfg.get("use_scale", True) else [],
    "RMSNormalization": lambda cfg: [VarSpec("scale", True, None)],
    "ReversibleEmbedding": lambda cfg: [VarSpec("embeddings", True, (2,))] + (
        [] if cfg.get("tie_weights", True) else [VarSpec("reverse_embeddings", True, (2,))]),
    "Normalization": _normalization,
    # Keras 2 keeps what adapt saw in a (2, n) summary unless the bins are given; Keras 3 keeps none
    "Discretization": lambda cfg: [VarSpec("summary", False, (2,))] if cfg.get("bin_boundaries") is None else [],
    # its own vars: the wrapped kernel a second time (ALIAS: already read under layer/) and u
    "SpectralNormalization": lambda cfg: [VarSpec(ALIAS + "kernel", False, None), VarSpec("vector_u", False, (2,))],
    # Keras 2 only; the kernel's rank depends on ``implementation``
    **{c: (lambda cfg: [VarSpec("kernel", True, None), *([VarSpec("bias", True, None)]
                                                         if cfg.get("use_bias", True) else [])])
       for c in ("LocallyConnected1D", "LocallyConnected2D")},
}
#: Keras 3 spellings where they differ (``var_specs(..., generation="keras3")``)
LAYER_VARS_KERAS3: dict[str, Callable[[Mapping[str, Any]], list[VarSpec]]] = {
    "DepthwiseConv1D": _depthwise_keras3, "DepthwiseConv2D": _depthwise_keras3,
    "Discretization": lambda cfg: [],
}
#: attention layers: (attribute holding an EinsumDense in the file, its layer name) per class
_ATTENTION_DENSE = {
    "MultiHeadAttention": (("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value"),
                           ("output_dense", "attention_output")),
    "GroupedQueryAttention": (("_query_dense", "query"), ("_key_dense", "key"), ("_value_dense", "value"),
                              ("_output_dense", "attention_output")),
}
_ATTENTION_DENSE["GroupQueryAttention"] = _ATTENTION_DENSE["GroupedQueryAttention"]
#: config class names (registered aliases) whose group name comes from the actual class;
#: tf.keras < 2.4 calls a functional model "Model" (saved as "functional")
_SAVED_CLASS = {"GroupQueryAttention": "GroupedQueryAttention", "Model": "Functional"}
_CONV_LSTM = frozenset({"ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})

#: layers that own no variables
NO_VARS = frozenset({
    "InputLayer", "Dropout", "Flatten", "Activation", "ReLU", "LeakyReLU", "Softmax", "ELU",
    "Reshape", "Permute", "RepeatVector", "Lambda", "MaxPooling1D", "MaxPooling2D",
    "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Masking",
    "Rescaling", "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
    "RandomContrast", "RandomTranslation", "RandomCrop", "ActivityRegularization",
    "TFOpLambda", "SlicingOpLambda", "Identity",
    # a vocabulary lives in the archive's assets; a tf_idf layer stores its idf_weights by name
    "StringLookup", "IntegerLookup", "TextVectorization",
})

_RNN_CELLS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}


#: a flag that adds variables, left out of a config that does not say it (a bare ``.weights.h5``): the count tells
TOLD_BY_COUNT = {"BatchNormalization": "renorm"}


def var_specs(class_name: str, config: Mapping[str, Any], generation: str | None = None) -> list[VarSpec] | None:
    """Expected variables of one layer class, or ``None`` when the class is not in the table;
    ``generation`` (``"keras3"``) picks the names that generation gives where they differ.
    A LoRA-enabled layer's frozen variable is not trainable (:func:`lora_factors`)."""
    if class_name in NO_VARS:
        return []
    fn = (LAYER_VARS_KERAS3.get(class_name) if generation == "keras3" else None) or LAYER_VARS.get(class_name)
    if fn is None:
        return None
    specs = fn(config)
    from ckptcompat.formats.keras_zip._quantized import quantization_mode, quantized_specs

    mode = quantization_mode(config)
    if mode is not None:  # model.quantize(mode): other variables, in Keras's serialization order
        found = quantized_specs(class_name, config, mode)
        if found is None:
            return None
        specs = found
    frozen = _LORA.get(class_name, ("",))[0] if _lora_rank(config) else ""
    return [VarSpec(s.name, False, s.ndim) if s.name == frozen else s for s in specs]


#: Keras 3 layers with ``lora_rank``: the variable LoRA freezes and its factors' name stem
#: (``enable_lora`` adds ``<stem>_a`` of shape ``frozen[:-1] + (rank,)`` and ``<stem>_b`` of
#: shape ``(rank, frozen[-1])``, trained in its place; saving stores the frozen variable merged
#: with the factors' product, never the factors)
_LORA: dict[str, tuple[str, str]] = {
    **{c: ("kernel", "lora_kernel") for c in ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D")},
    "Embedding": ("embeddings", "lora_embeddings"), "ReversibleEmbedding": ("embeddings", "lora_embeddings"),
}


def _lora_rank(config: Mapping[str, Any]) -> int:
    rank = config.get("lora_rank")
    return rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else 0


def lora_frozen(class_name: str) -> str:
    """The variable LoRA freezes in a layer of ``class_name`` (``kernel``), ``""`` when it has no LoRA."""
    return _LORA.get(class_name, ("", ""))[0]


def lora_factors(class_name: str, config: Mapping[str, Any],
                 shapes: Mapping[str, tuple[int, ...]]) -> list[tuple[str, tuple[int, ...]]]:
    """The LoRA factors a layer of ``class_name`` trains (``[("lora_kernel_a", shape), ...]``),
    from its config's ``lora_rank`` and its frozen variable's shape in ``shapes`` (short
    names); ``[]`` when LoRA is off or the class has none."""
    rank = _lora_rank(config)
    frozen, stem = _LORA.get(class_name, ("", ""))
    shape = tuple(shapes.get(frozen, ()))
    if not rank or not shape:
        return []
    return [(f"{stem}_a", (*shape[:-1], rank)), (f"{stem}_b", (rank, shape[-1]))]


def _layer_entries(model_cfg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    layers = (model_cfg.get("config") or {}).get("layers")
    entries = [e for e in layers if isinstance(e, Mapping)] if isinstance(layers, list) else []
    if model_cfg.get("class_name") == "Sequential" and entries and entries[0].get("class_name") == "InputLayer":
        entries = entries[1:]  # Sequential.layers omits the auto-generated InputLayer
    return entries


def _has_weights(entry: Mapping[str, Any]) -> bool:
    cls = str(entry.get("class_name", ""))
    cfg = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
    if cls in MODEL_CLASSES or isinstance(cfg.get("layers"), list):
        return any(_has_weights(e) for e in _layer_entries(entry))
    if cls in LOOKUP_CLASSES:  # tf-keras lists an adaptable one's table handler (a tf_idf one's idf) as weights
        return cfg.get("vocabulary") is None or cfg.get("output_mode") == "tf_idf"
    specs = var_specs(cls, cfg)
    return specs is None or bool(specs)


def _walk(entry: Mapping[str, Any], h5_path: str, prefix: list[str], trainable: bool,
          out: list[LayerSlot], depth: int, legacy: bool | str = False) -> None:
    if depth > 32:
        raise ValueError("model config nested deeper than 32 levels")
    cls = str(entry.get("class_name", ""))
    cfg = entry.get("config") or {}
    if not isinstance(cfg, Mapping):
        cfg = {}
    name = str(cfg.get("name") or entry.get("name") or snake_case(cls))
    trainable = trainable and bool(cfg.get("trainable", True))
    if cls in MODEL_CLASSES or isinstance(cfg.get("layers"), list):
        _walk_container(_layer_entries(entry), h5_path + ("/_layer_checkpoint_dependencies" if legacy else "/layers"),
                        [*prefix, name], trainable, out, depth + 1, legacy)
        return
    if cls in _CONV_LSTM:
        out.append(LayerSlot(h5_path + "/cell", "/".join([*prefix, name]), "ConvLSTMCell", cfg, trainable))
        return
    if cls in _ATTENTION_DENSE:
        dense_cfg = {"bias_axes": "x" if cfg.get("use_bias", True) else None}
        for attr, sub_name in _ATTENTION_DENSE[cls]:
            out.append(LayerSlot(f"{h5_path}/{attr}", "/".join([*prefix, name, sub_name]), "EinsumDense",
                                 dense_cfg, trainable))
        return
    if cls in _RNN_CELLS or (cls == "RNN" and isinstance(cfg.get("cell"), Mapping)):
        cell = cfg.get("cell") if cls == "RNN" else None
        cell_cls = str(cell.get("class_name")) if isinstance(cell, Mapping) else _RNN_CELLS[cls]
        cell_cfg = (cell.get("config") or {}) if isinstance(cell, Mapping) else cfg
        if cell_cls == "StackedRNNCells" and isinstance(cell_cfg.get("cells"), list):
            _stacked_cells(cell_cfg, f"{h5_path}/cell", [*prefix, name], trainable, out)
            return
        out.append(LayerSlot(h5_path + "/cell", "/".join([*prefix, name]), cell_cls, cell_cfg, trainable))
        return
    if cls == "Bidirectional" and isinstance(cfg.get("layer"), Mapping):
        inner = cfg["layer"]
        inner_name = str((inner.get("config") or {}).get("name", "rnn"))
        back = cfg.get("backward_layer") if isinstance(cfg.get("backward_layer"), Mapping) else inner
        back_name = str((back.get("config") or {}).get("name", inner_name))
        # Keras 3 serialises the forward layer itself (already named "forward_<rnn>")
        fwd_name = inner_name if inner_name.startswith("forward_") else "forward_" + inner_name
        for attr, sub, sub_name in (("forward_layer", inner, fwd_name),
                                    ("backward_layer", back, "backward_" + back_name)):
            if back is not inner and attr == "backward_layer":
                sub_name = back_name
            _walk({**sub, "config": {**(sub.get("config") or {}), "name": sub_name}},
                  f"{h5_path}/{attr}", [*prefix, name], trainable, out, depth + 1)
        return
    if cls == "SpectralNormalization" and isinstance(cfg.get("layer"), Mapping):
        inner = cfg["layer"]  # the wrapped layer's variables under layer/, named as the wrapper's
        _walk({**inner, "config": {**(inner.get("config") or {}), "name": name}}, h5_path + "/layer",
              prefix, trainable, out, depth + 1)
        out.append(LayerSlot(h5_path, "/".join([*prefix, name]), cls, cfg, trainable))
        return
    if cls == "TimeDistributed" and isinstance(cfg.get("layer"), Mapping):
        inner = cfg["layer"]
        inner_cfg = {**(inner.get("config") or {}), "name": name}
        _walk({**inner, "config": inner_cfg}, h5_path + "/layer", prefix, trainable, out, depth + 1)
        return
    out.append(LayerSlot(h5_path, "/".join([*prefix, name]), cls, cfg, trainable))


def _stacked_cells(cfg: Mapping[str, Any], h5_path: str, prefix: list[str], trainable: bool,
                   out: list[LayerSlot]) -> None:
    """``StackedRNNCells``: each cell under ``cell/cells/<class>[_n]``; the live walk names
    its weights through the stack and the cell (every cell has a ``kernel``)."""
    cells = [c for c in cfg["cells"] if isinstance(c, Mapping)]
    stack = [str(cfg.get("name") or "stacked_rnn_cells")] if len(cells) > 1 else []
    used: dict[str, int] = {}
    for i, cell in enumerate(cells):
        cls = str(cell.get("class_name", ""))
        cell_cfg = cell.get("config") if isinstance(cell.get("config"), Mapping) else {}
        base = snake_case(cls)
        group = base if base not in used else f"{base}_{used[base]}"
        used[base] = used.get(base, 0) + 1
        names = [str(cell_cfg.get("name") or f"{base}_{i}")] if stack else []
        out.append(LayerSlot(f"{h5_path}/cells/{group}", "/".join([*prefix, *stack, *names]), cls,
                             cell_cfg, trainable and bool(cell_cfg.get("trainable", True))))


def _walk_container(entries: list[Mapping[str, Any]], base: str, prefix: list[str], trainable: bool,
                    out: list[LayerSlot], depth: int, legacy: bool | str = False) -> None:
    used: dict[str, int] = {}
    for entry in entries:
        cls = str(entry.get("class_name", ""))
        cls = snake_case(_SAVED_CLASS.get(cls, cls))
        group = cls
        if cls in used:
            used[cls] += 1
            group = f"{cls}_{used[cls]}"
        else:
            used[cls] = 0
        if legacy and legacy != "single" and _has_weights(entry):
            # tf.keras 2.12/2.13 list a weighted layer twice ("layer_with_weights-k" and
            # "layer-n"); the second visit is skipped but still consumes a name.
            used[cls] += 1
        _walk(entry, f"{base}/{group}", prefix, trainable, out, depth, legacy)


def walk_model_config(model_cfg: Mapping[str, Any], legacy: bool | str = False) -> list[LayerSlot]:
    """All variable groups of a model config (``{"class_name", "config"}``), in save order.

    ``legacy``: the tf.keras 2.12-2.15 layout rooted at ``_layer_checkpoint_dependencies``;
    ``True`` when a weighted layer consumes two group names (seen from 2.12/2.13),
    ``"single"`` when every layer consumes one (seen in real 2.13.1-2.15 files).
    """
    out: list[LayerSlot] = []
    root = "_layer_checkpoint_dependencies" if legacy else "layers"
    _walk_container(_layer_entries(model_cfg), root, [],
                    bool((model_cfg.get("config") or {}).get("trainable", True)), out, 0, legacy)
    return out


def infer_specs_from_shapes(group_name: str, shapes: list[tuple[int, ...]]) -> list[VarSpec] | None:
    """Names for a bare ``.weights.h5`` group (no config) where the shapes leave no doubt."""
    cls_guess = re.sub(r"_\d+$", "", group_name)
    ranks = [len(s) for s in shapes]
    if cls_guess == "dense" and ranks in ([2, 1], [2]):
        return _dense({"use_bias": len(ranks) == 2})
    if cls_guess == "batch_normalization" and ranks in ([1] * 4, [1] * 7):  # 7: renorm's three statistics too
        return _batchnorm({"renorm": len(ranks) == 7})
    if cls_guess == "embedding" and ranks == [2]:
        return [VarSpec("embeddings", True, (2,))]
    if cls_guess in ("lstm_cell", "gru_cell", "simple_rnn_cell") and ranks in ([2, 2, 1], [2, 2, 2], [2, 2]):
        return _rnn_cell({"use_bias": len(ranks) == 3})
    if cls_guess.startswith("conv") and len(ranks) == 2 and ranks[0] >= 3 and ranks[1] == 1:
        return _conv({})
    return None
