"""The paired up/down rule table: what one generation spells differently from the other.

Each :class:`Rule` names the release that needs it and its two directions, so the upgrade
(:mod:`ckptcompat.names.config_upgrade`) and the downgrade
(:mod:`ckptcompat.names.config_downgrade`) read one table instead of two copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LOOKUP_CLASSES", "OLD_OUTPUT_MODES", "Rule", "RULES", "INPUT_SHAPE_KEYS", "KERAS2_ONLY_LAYER_ARGS", "KERAS3_ONLY_LAYER_ARGS",
           "KERAS3_RENAMED_OBJECTS", "KERAS2_RENAMED_OBJECTS", "OLD_DEFAULTS", "REMOVED_IN_KERAS3", "KERAS3_ONLY_ARGS_AT", "ANY", "KERAS2_ARG_NAMES", "KERAS2_REQUIRED_ARGS", "decode_json_values", "keras3_policy",
           "keras2_policy", "KERAS2_DTYPE_NOT_POLICY", "CHANGED_ACTIVATIONS", "warn_changed_activations"]


@dataclass(frozen=True)
class Rule:
    """One difference between Keras 2 and Keras 3 configs and the release that introduced it."""

    name: str
    since: str
    keras2: str
    keras3: str


#: the table (documentation and tests read it; the constants below are its machine form)
RULES: tuple[Rule, ...] = (
    Rule("input shape keys", "keras 3.0", "batch_input_shape/input_shape/input_dim on any layer",
         "only InputLayer(batch_shape=...); Sequential gets an explicit InputLayer"),
    Rule("call records", "keras 3.0", "[[name, node, tensor, kwargs], ...]", "{'args': [...], 'kwargs': {...}}"),
    Rule("nested model nodes", "keras 3.0", "a nested model's construction is its node 0", "calls count from 0"),
    Rule("RNN initial_state", "keras 3.0", "extra input tensors of an RNN call", "initial_state= kwarg"),
    Rule("dtype policy", "keras 3.0", "{'class_name': 'Policy'} or a dtype string", "DTypePolicy dict / name"),
    Rule("Orthogonal initializer", "keras 3.0-3.3", "Orthogonal", "OrthogonalInitializer"),
    Rule("Keras 2-only layer args", "keras 3.0", "time_major, implementation, fused, input_length, ...",
         "absent"),
    Rule("Keras 3-only layer args", "keras 3.0+", "absent", "quantization_config, lora_rank, seed, ..."),
    Rule("BatchNormalization axis", "keras 3.0", "[axis]", "axis"),
    Rule("Attention causal", "tf.keras 2.10 / keras 3.0", "Attention(causal=True)",
         "use_causal_mask=True in each call"),
    Rule("null call masks", "keras 3.0", "no mask argument (looked up on the inputs)", "mask: null recorded"),
    Rule("GRU reset_after", "keras 2.3 / tf.keras 2.0", "absent (= False)", "reset_after=True default"),
    Rule("initializer dtype", "keras 3.0", "initializer config with dtype (tf.keras 1.x)", "absent"),
    Rule("MultiHeadAttention build_config", "keras 3.0", "{'input_shape': ...} (tf.keras 2.13+ .keras)",
         "absent (built by its call)"),
    Rule("recurrent build_config with initial_state", "keras 3.0",
         "{'input_shape': [sequences, state, ...]} (tf.keras 2.13+ .keras)", "absent (built by its call)"),
    Rule("TF1 initializer defaults", "keras 3.0", "RandomUniform maxval=None (tf.keras 2.0.8: TF1's 1.0)",
         "maxval=1.0 (RandomNormal/TruncatedNormal stddev 1.0)"),
    Rule("preprocessing arguments of tf.keras 2.4-2.5", "tf.keras 2.6",
         "IntegerLookup max_values/mask_value/oov_value, CategoryEncoding max_tokens, output_mode 'binary'",
         "max_tokens/mask_token/oov_token, num_tokens, 'multi_hot'"),
    Rule("Lambda byte-code", "never", "marshalled Python code", "refused: ckptcompat executes no code"),
)

#: preprocessing layers whose adapted vocabulary lives in a lookup table, not in variables
LOOKUP_CLASSES = frozenset({"StringLookup", "IntegerLookup", "TextVectorization"})
#: ``output_mode`` spellings of tf.keras 2.4-2.5, renamed in 2.6
OLD_OUTPUT_MODES = {"binary": "multi_hot", "tf-idf": "tf_idf"}

#: constructor keys that describe the model input, not the layer (Keras 3 refuses them)
INPUT_SHAPE_KEYS: tuple[str, ...] = ("batch_input_shape", "input_shape", "batch_size", "input_dtype")
_CONV_BASE_ONLY = ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint")
_RNG = ("rng_type",)
#: layer arguments only Keras 2 knows (dropped on upgrade); "*" applies to every class.
#: Found by tests/names/test_names_config_layers.py on configs written by tf-keras 2.21 / tf.keras 2.15.
KERAS2_ONLY_LAYER_ARGS: dict[str, tuple[str, ...]] = {
    "*": ("time_major",),
    "LSTM": ("implementation",), "GRU": ("implementation",),
    "LSTMCell": ("implementation",), "GRUCell": ("implementation",),
    "ConvLSTM2D": ("implementation",), "SimpleRNN": ("implementation",),  # Keras <= 2.1 (tf.keras 2.0.8)
    "Embedding": ("input_length",),
    # tf.keras 2.x: the Conv base writes groups=1 and a kernel_* set these layers do not have
    "DepthwiseConv1D": ("groups",), "DepthwiseConv2D": ("groups",),
    "Conv1DTranspose": ("groups",), "Conv2DTranspose": ("groups",), "Conv3DTranspose": ("groups",),
    "SeparableConv1D": _CONV_BASE_ONLY, "SeparableConv2D": _CONV_BASE_ONLY,
    "BatchNormalization": ("fused", "virtual_batch_size", "adjustment", "renorm", "renorm_clipping",
                           "renorm_momentum", "mode"),
    "MultiHeadAttention": ("query_shape", "key_shape", "value_shape", "softmax_robust_masking"),
    # tf-keras 2.13+ preprocessing layers: the RNG implementation switch
    "RandomBrightness": _RNG, "RandomContrast": _RNG, "RandomCrop": _RNG, "RandomFlip": _RNG,
    "RandomRotation": _RNG, "RandomTranslation": _RNG, "RandomZoom": _RNG, "RandomHeight": _RNG,
    "RandomWidth": _RNG,
    # Keras 3 constructors of these take no **kwargs (no "trainable")
    "SpatialDropout1D": ("trainable", "noise_shape"), "SpatialDropout2D": ("trainable", "noise_shape"),
    "SpatialDropout3D": ("trainable", "noise_shape"), "Discretization": ("trainable",),
}
#: Keras 2 layer classes Keras 3 does not have (no rule can rebuild them): class -> what to do
REMOVED_IN_KERAS3: dict[str, str] = {
    "LocallyConnected1D": "removed in Keras 3 (no equivalent layer)",
    "LocallyConnected2D": "removed in Keras 3 (no equivalent layer)",
    "ThresholdedReLU": "removed in Keras 3; ReLU(threshold=) differs at x == theta",
    "RandomHeight": "removed in Keras 3 (use Resizing / RandomZoom)",
    "RandomWidth": "removed in Keras 3 (use Resizing / RandomZoom)",
    "CuDNNLSTM": "removed in Keras 3 (LSTM uses cuDNN itself; weights differ in layout)",
    "CuDNNGRU": "removed in Keras 3 (GRU uses cuDNN itself; weights differ in layout)",
}
#: activations of one name and another function: name -> (Keras 1/2's, Keras 3's); neither generation
#: has the other's, so a config keeps the name and :func:`warn_changed_activations` says so
CHANGED_ACTIVATIONS: dict[str, tuple[str, str]] = {
    "hard_sigmoid": ("clip(0.2x + 0.5)", "clip(x/6 + 0.5)"),  # standalone Keras LSTM/GRU recurrent default
}


def warn_changed_activations(entry: Mapping[str, Any], to_keras3: bool) -> None:
    """Log a warning for each activation of ``entry`` (a layer config written by the other
    generation) whose function :data:`CHANGED_ACTIVATIONS` says differs in the running one."""
    import logging

    cfg = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
    for key in ("activation", "recurrent_activation"):
        name = cfg.get(key)
        if isinstance(name, str) and name in CHANGED_ACTIVATIONS:
            old, new = CHANGED_ACTIVATIONS[name] if to_keras3 else CHANGED_ACTIVATIONS[name][::-1]
            logging.getLogger(__name__).warning(
                "layer %r (%s): %s=%r is %s where the file was written but %s in this Keras: the weights are "
                "restored exactly, the resumed model computes differently%s; to continue the same function, "
                "build the model with a custom activation and pass resume(path, model=model)",
                cfg.get("name"), entry.get("class_name"), key, name, old, new,
                " (as with Keras 3's own load_model)" if to_keras3 else "")


#: constructor defaults that changed: a Keras 2 config WITHOUT the key meant the old default
OLD_DEFAULTS: dict[str, dict[str, Any]] = {
    "GRU": {"reset_after": False},  # Keras <= 2.2 / tf.keras 1.x wrote no reset_after (default False)
    "GRUCell": {"reset_after": False},
}
#: layer arguments only Keras 3 knows (dropped on downgrade); "*" applies to every class
KERAS3_ONLY_LAYER_ARGS: dict[str, tuple[str, ...]] = {
    "*": ("quantization_config", "lora_rank", "lora_alpha", "optional"),
    "InputLayer": ("optional",),
    "LSTM": ("seed",),
    "GRU": ("seed",),
    "SimpleRNN": ("seed",),
    "ConvLSTM1D": ("seed",), "ConvLSTM2D": ("seed",), "ConvLSTM3D": ("seed",),
}
ANY = "<any value>"
_CL = {"data_format": "channels_last"}
_LOOKUP = {"oov_method": ANY, "salt": None, "vocabulary_size": ANY}
#: Keras 3-only arguments Keras 2 can drop ONLY at the value that means Keras 2's behaviour
#: (``ANY``: metadata that changes nothing); another value refuses with the argument named.
KERAS3_ONLY_ARGS_AT: dict[str, dict[str, Any]] = {
    "CenterCrop": _CL, "RandomBrightness": _CL, "RandomCrop": _CL, "RandomFlip": _CL,
    "RandomRotation": _CL, "RandomTranslation": _CL, "RandomZoom": _CL, "ZeroPadding1D": _CL,
    "RandomContrast": {**_CL, "value_range": [0, 255]},
    "Resizing": {**_CL, "antialias": False, "fill_mode": "constant", "fill_value": 0.0,
                 "pad_to_aspect_ratio": False},
    "IntegerLookup": _LOOKUP, "StringLookup": _LOOKUP,
    "LayerNormalization": {"rms_scaling": False},
    "MultiHeadAttention": {"seed": ANY, "sliding_window": None, "use_gate": False,
                           "softmax_robust_masking": False},  # tf-keras 2.16+ writes it too
}
#: Keras 2 classes whose ``dtype`` is not a compute policy: a lookup's is its output dtype (int64
#: for ``output_mode="int"``), TextVectorization's its input's (string). Keras 3 writes its float
#: policy there, which these Keras 2 layers refuse: dropped, so Keras 2 takes its own default.
KERAS2_DTYPE_NOT_POLICY = frozenset({"IntegerLookup", "StringLookup", "TextVectorization"})
#: Keras 3 argument names -> Keras 2 names (downgrade), per class
KERAS2_ARG_NAMES: dict[str, dict[str, str]] = {"LeakyReLU": {"negative_slope": "alpha"}}
#: arguments a Keras 2 ``from_config`` requires although Keras 3 no longer writes them
KERAS2_REQUIRED_ARGS: dict[str, dict[str, Any]] = {
    "MultiHeadAttention": {"query_shape": None, "key_shape": None, "value_shape": None},
}
#: serialized object class names: Keras 2 -> Keras 3 (and the inverse for the downgrade)
KERAS3_RENAMED_OBJECTS: dict[str, str] = {"Orthogonal": "OrthogonalInitializer"}
KERAS2_RENAMED_OBJECTS: dict[str, str] = {v: k for k, v in KERAS3_RENAMED_OBJECTS.items()}
_FLOAT_POLICIES = frozenset({"float16", "float32", "float64", "bfloat16"})


def decode_json_values(obj: Any) -> Any:
    """Keras 2 ``json_utils`` encodings (``{"type": "ndarray", "value": v}``) -> plain values."""
    if isinstance(obj, dict):
        if set(obj) == {"type", "value"} and obj.get("type") == "ndarray":
            return obj["value"]
        return {k: decode_json_values(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_json_values(v) for v in obj]
    return obj


def keras3_policy(value: Any) -> Any:
    """Keras 2 ``Policy`` dict -> the policy name Keras 3 layers accept."""
    if isinstance(value, Mapping) and value.get("class_name") in ("Policy", "PolicyV1"):
        name = (value.get("config") or {}).get("name", "float32")
        return "float32" if name in ("_infer", "infer") else name
    return value


def keras2_policy(value: Any) -> Any:
    """Keras 3 ``DTypePolicy`` dict -> Keras 2 dtype string / ``Policy`` dict."""
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
        name = (value.get("config") or {}).get("name", "float32")
        return {"class_name": "Policy", "config": {"name": name}} if str(name).startswith("mixed") else name
    return value
