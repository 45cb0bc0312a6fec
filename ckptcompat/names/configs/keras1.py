"""Keras 1.x layer configs -> Keras 2 spelling (what Keras 2.0-2.3 ``legacy/interfaces.py`` did).

Keras 2.0 converted Keras 1 constructor arguments at call time (``legacy_*_support``
decorators) and Keras 1 configs were read through them. Those converters are gone from
tf.keras and Keras 3; this module is the same conversion as data: class renames, argument
renames (per class and common), value maps and merged arguments (``nb_row``/``nb_col`` ->
``kernel_size``). Pure functions; a Keras 2 config passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckptcompat.errors import UnsupportedFormatError

__all__ = ["CLASS_RENAMES", "ARG_RENAMES", "is_keras1_layer", "keras1_to_keras2_layer", "keras1_to_keras2_model",
           "MERGE_MODES", "keras1_input_dtype"]

#: Keras 1 class name -> Keras 2 class name (and extra config); keras 2.3.1 legacy/layers.py
CLASS_RENAMES: dict[str, tuple[str, dict[str, Any]]] = {
    "Convolution1D": ("Conv1D", {}), "Convolution2D": ("Conv2D", {}), "Convolution3D": ("Conv3D", {}),
    "AtrousConvolution1D": ("Conv1D", {}), "AtrousConvolution2D": ("Conv2D", {}),
    "Deconvolution2D": ("Conv2DTranspose", {}), "SeparableConvolution2D": ("SeparableConv2D", {}),
}

_CONV = {"nb_filter": "filters", "filter_length": "kernel_size", "subsample_length": "strides",
         "subsample": "strides", "border_mode": "padding", "atrous_rate": "dilation_rate",
         "init": "kernel_initializer"}
_POOL = {"pool_length": "pool_size", "stride": "strides", "border_mode": "padding"}
_RNN = {"output_dim": "units", "init": "kernel_initializer", "inner_init": "recurrent_initializer",
        "inner_activation": "recurrent_activation", "U_regularizer": "recurrent_regularizer",
        "U_constraint": "recurrent_constraint", "dropout_W": "dropout", "dropout_U": "recurrent_dropout",
        "consume_less": "implementation"}
_CONV_RNN = {**_CONV, **{k: v for k, v in _RNN.items() if k not in ("output_dim", "consume_less", "init")}}
#: argument renames: common ones ("*") and per Keras 2 class name
ARG_RENAMES: dict[str, dict[str, str]] = {
    "*": {"W_regularizer": "kernel_regularizer", "b_regularizer": "bias_regularizer",
          "W_constraint": "kernel_constraint", "b_constraint": "bias_constraint", "bias": "use_bias",
          "dim_ordering": "data_format", "input_dtype": "dtype"},
    "Dense": {"output_dim": "units", "init": "kernel_initializer"},
    "Dropout": {"p": "rate"}, "SpatialDropout1D": {"p": "rate"}, "SpatialDropout2D": {"p": "rate"},
    "SpatialDropout3D": {"p": "rate"}, "GaussianDropout": {"p": "rate"}, "GaussianNoise": {"sigma": "stddev"},
    "Embedding": {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                  "W_constraint": "embeddings_constraint"},
    "PReLU": {"init": "alpha_initializer"},
    "BatchNormalization": {"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"},
    "Conv1D": _CONV, "Conv2D": _CONV, "Conv3D": _CONV, "Conv2DTranspose": _CONV,
    "SeparableConv2D": {**_CONV, "init": "depthwise_initializer"},
    "LocallyConnected1D": _CONV, "LocallyConnected2D": _CONV, "ConvLSTM2D": _CONV_RNN,
    "MaxPooling1D": _POOL, "AveragePooling1D": _POOL, "MaxPooling2D": _POOL, "AveragePooling2D": _POOL,
    "MaxPooling3D": _POOL, "AveragePooling3D": _POOL,
    "SimpleRNN": _RNN, "GRU": _RNN, "LSTM": _RNN,
}
#: arguments Keras 2 dropped (no effect on the computation or replaced by the layer input)
_DROPPED = ("input_dim", "input_length", "output_shape", "forget_bias_init", "mode", "cache_enabled")
_DATA_FORMAT = {"tf": "channels_last", "th": "channels_first", "default": None}
_INITIALIZERS = {"one": "ones", "zero": "zeros", "uniform": "random_uniform", "normal": "random_normal"}
_IMPLEMENTATION = {"cpu": 1, "mem": 1, "gpu": 2}
#: Keras 1 ``Merge``/``merge`` mode -> Keras 2 merge layer
MERGE_MODES: dict[str, str] = {"sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum",
                               "concat": "Concatenate", "dot": "Dot"}
_KERAS1_MARKERS = frozenset(k for table in ARG_RENAMES.values() for k in table) | {"input_dtype"}


def is_keras1_layer(entry: Mapping[str, Any]) -> bool:
    """True when a layer entry uses Keras 1 class or argument names."""
    cfg = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
    cls = str(entry.get("class_name"))
    renames = ARG_RENAMES.get(CLASS_RENAMES.get(cls, (cls, {}))[0], {})
    return (cls in CLASS_RENAMES or cls == "Merge" or any(k in cfg for k in ARG_RENAMES["*"])
            or any(k in cfg and k not in ("init",) for k in renames) or "init" in cfg
            or (cls == "BatchNormalization" and "mode" in cfg))


def keras1_input_dtype(entry: Any) -> str | None:
    """The dtype of a Keras 1 first layer's input (``input_dtype``: an Embedding's int32), which the
    Keras 2 conversion does not keep on the layer; None for any other entry."""
    cfg = entry.get("config") if isinstance(entry, Mapping) and isinstance(entry.get("config"), Mapping) else {}
    value = cfg.get("input_dtype")
    return value if isinstance(value, str) else None


def _legacy_object(value: Any) -> Any:
    """Keras 1 regularizer/constraint dicts ``{"name": ..., ...}`` and initializer names."""
    if isinstance(value, str):
        return _INITIALIZERS.get(value, value)
    if isinstance(value, Mapping) and "name" in value and "class_name" not in value:
        cfg = {k: v for k, v in value.items() if k != "name"}
        name = str(value["name"])
        if name in ("WeightRegularizer", "ActivityRegularizer", "L1L2Regularizer"):  # Keras 1.0-1.1, 1.2
            name = "L1L2"
        if "m" in cfg:
            cfg["max_value"] = cfg.pop("m")
        return {"class_name": name, "config": cfg}
    return value


def _merge(cfg: dict[str, Any], path: str | None) -> tuple[str, dict[str, Any]]:
    mode = cfg.get("mode")
    if not isinstance(mode, str) or mode not in MERGE_MODES:
        raise UnsupportedFormatError(
            f"layer {cfg.get('name')!r}: Keras 1 Merge with mode {mode!r} has no Keras 2/3 layer "
            "(missing rule: keras1 Merge mode -> merge layer)", path=path,
            hint="build the model yourself and pass resume(path, model=model)")
    cls = MERGE_MODES[mode]
    out = {k: cfg[k] for k in ("name", "trainable") if k in cfg}
    if cls == "Concatenate":
        out["axis"] = cfg.get("concat_axis", -1)
    if cls == "Dot":
        out["axes"] = cfg.get("dot_axes", -1)
    return cls, out


def keras1_to_keras2_layer(entry: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """One layer entry with Keras 1 names -> Keras 2 names (sub-layers are the caller's job)."""
    cls = str(entry.get("class_name"))
    cfg = dict(entry.get("config") or {})
    if cls == "Merge":
        cls, cfg = _merge(cfg, path)
        return {**entry, "class_name": cls, "config": cfg}
    cls, extra = CLASS_RENAMES.get(cls, (cls, {}))
    renames = {**ARG_RENAMES["*"], **ARG_RENAMES.get(cls, {})}
    out: dict[str, Any] = dict(extra)
    for key, value in cfg.items():
        new = renames.get(key, key)
        if (key in _DROPPED or (cls == "Embedding" and key == "dropout")) and key not in renames:
            continue
        if cls == "Embedding" and key == "input_dtype":  # its (integer) input's, not its weights' dtype
            continue
        out[new] = _legacy_object(value) if new.endswith(("initializer", "regularizer", "constraint")) else value
    if "nb_row" in out or "nb_col" in out:
        out["kernel_size"] = [out.pop("nb_row", 1), out.pop("nb_col", 1)]
    if "kernel_dim1" in out:
        out["kernel_size"] = [out.pop("kernel_dim1"), out.pop("kernel_dim2"), out.pop("kernel_dim3")]
    if "data_format" in out and out["data_format"] in _DATA_FORMAT:
        out["data_format"] = _DATA_FORMAT[out["data_format"]]
        if out["data_format"] is None:
            out.pop("data_format")
    if isinstance(out.get("implementation"), str):
        out["implementation"] = _IMPLEMENTATION.get(out["implementation"], 1)
    if cfg.get("forget_bias_init") == "one":
        out["unit_forget_bias"] = True
    if isinstance(out.get("padding"), str) and cls.startswith(("Conv", "Separable", "Max", "Average")):
        out["padding"] = out["padding"].lower()
    if cls in ("Conv1D",) and isinstance(out.get("kernel_size"), int):
        out["kernel_size"] = [out["kernel_size"]]
    if "input_dim" in cfg and "batch_input_shape" not in out and cls != "Embedding":
        length = cfg.get("input_length")
        out["batch_input_shape"] = [None, cfg["input_dim"]] if length is None else [None, length, cfg["input_dim"]]
    if cls == "Embedding":
        for key in ("input_dim",):
            out[key] = cfg[key]
    return {**entry, "class_name": cls, "config": out}


_MODEL_CLASSES = ("Functional", "Model", "Sequential")


def keras1_to_keras2_model(entry: Mapping[str, Any], path: str | None = None) -> dict[str, Any]:
    """A whole model config with Keras 1 spellings -> Keras 2 (bare-list Sequential included).

    Applies to every layer, nested models and wrapped layers; a Keras 2 config comes back equal.
    """
    out = dict(entry)
    if isinstance(out.get("config"), list):  # Keras 1 / 2.0-2.1 Sequential: a bare list of layers
        out["config"] = {"name": out.get("name") or "sequential", "layers": out["config"]}
    if out.get("class_name") not in _MODEL_CLASSES and is_keras1_layer(out):
        out = keras1_to_keras2_layer(out, path)
    cfg = out.get("config")
    if isinstance(cfg, Mapping):
        cfg = dict(cfg)
        if isinstance(cfg.get("layers"), list):
            cfg["layers"] = [keras1_to_keras2_model(e, path) if isinstance(e, Mapping) else e for e in cfg["layers"]]
        for key in ("layer", "backward_layer", "cell"):
            if isinstance(cfg.get(key), Mapping) and "class_name" in cfg[key]:
                cfg[key] = keras1_to_keras2_model(cfg[key], path)
        out["config"] = cfg
    return out
