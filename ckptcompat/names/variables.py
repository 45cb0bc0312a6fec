"""Canonical variable, optimizer-class and optimizer-slot names across TF1 / Keras 2 / Keras 3.

Pure data plus small pure functions. Format modules parse their own on-disk spelling
(``training/Adam/m_0:0``, ``Adam/m/dense/kernel:0``, ``adam/dense_kernel_momentum``,
``dense/kernel/Adam_1``) and use these tables to turn the pieces into canonical names.
"""

from __future__ import annotations

import re

__all__ = [
    "CANONICAL_SLOTS",
    "canonical_optimizer_class",
    "canonical_slot",
    "strip_tensor_suffix",
    "canonical_weight_name",
    "split_keras3_slot",
    "LEAF_ALIASES",
    "other_spellings",
    "respell",
]

#: Canonical slot names per canonical optimizer class, in the order Keras 2 creates them.
CANONICAL_SLOTS: dict[str, tuple[str, ...]] = {
    "Adam": ("m", "v", "vhat"),
    "AdamW": ("m", "v", "vhat"),
    "Adamax": ("m", "v"),
    "Nadam": ("m", "v"),
    "SGD": ("momentum",),
    "RMSprop": ("rms", "momentum", "mg"),
    "Adagrad": ("accumulator",),
    "Adadelta": ("accum_grad", "accum_var"),
    "Ftrl": ("accumulator", "linear"),
    "Lion": ("momentum",),
    "Adafactor": ("r", "c", "v"),
    "Lamb": ("m", "v"),
    # Keras 3 only (no other generation to translate to): their own slot names
    "Muon": ("momentum", "velocity"),  # velocity: the Adam fallback of variables Muon does not handle
    "ScheduleFreeAdamW": ("momentum", "velocity"),
}

_CLASS_ALIASES: dict[str, str] = {
    # TF1 tf.train optimizers
    "AdamOptimizer": "Adam",
    "MomentumOptimizer": "SGD",
    "GradientDescentOptimizer": "SGD",
    "RMSPropOptimizer": "RMSprop",
    "AdagradOptimizer": "Adagrad",
    "AdadeltaOptimizer": "Adadelta",
    "FtrlOptimizer": "Ftrl",
    # spellings seen in configs and variable scopes
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "rm_sprop": "RMSprop",  # Keras 3 optimizer name scope for RMSprop
    "RMSProp": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "lamb": "Lamb",
    "muon": "Muon",
    "schedulefreeadamw": "ScheduleFreeAdamW",
    "Momentum": "SGD",
    "GradientDescent": "SGD",
}

#: (canonical class, raw slot name as some generation spells it) -> canonical slot name.
#: Raw names come from Keras 2 ``get_slot_names()``, TF 2.11–2.15 ``Adam/m/...`` scopes,
#: Keras 3 ``add_variable_from_reference`` names and TF1 slot suffixes.
_SLOT_ALIASES: dict[tuple[str, str], str] = {
    ("Adam", "momentum"): "m", ("Adam", "velocity"): "v", ("Adam", "velocity_hat"): "vhat",
    ("Adam", "Adam"): "m", ("Adam", "Adam_1"): "v",
    ("AdamW", "momentum"): "m", ("AdamW", "velocity"): "v", ("AdamW", "velocity_hat"): "vhat",
    ("Adamax", "u"): "v", ("Adamax", "norm"): "v", ("Adamax", "momentum"): "m",
    ("Nadam", "momentum"): "m", ("Nadam", "velocity"): "v",
    ("SGD", "m"): "momentum", ("SGD", "Momentum"): "momentum",
    ("RMSprop", "velocity"): "rms", ("RMSprop", "average_gradient"): "mg",
    ("RMSprop", "RMSProp"): "rms", ("RMSprop", "RMSProp_1"): "momentum",
    ("Adagrad", "Adagrad"): "accumulator", ("Adagrad", "accumulators"): "accumulator",  # Keras 3.0.x
    ("Ftrl", "accumulators"): "accumulator", ("Ftrl", "linears"): "linear",  # Keras 3.0.x
    ("Adadelta", "accumulated_grad"): "accum_grad",
    ("Adadelta", "accumulated_delta_var"): "accum_var",
    ("Ftrl", "Ftrl"): "accumulator", ("Ftrl", "Ftrl_1"): "linear",
    ("Lion", "m"): "momentum",
    ("Adafactor", "velocity"): "v",
    ("Lamb", "momentum"): "m", ("Lamb", "velocity"): "v",
    # standalone Keras 2.3 (``training/SGD/moment_0``; names/optimizer_layouts/standalone-keras-2.3.1.json)
    ("SGD", "moment"): "momentum", ("RMSprop", "accumulator"): "rms",
    ("Adadelta", "accumulator"): "accum_grad", ("Adadelta", "delta_accumulator"): "accum_var",
}

_SUFFIX = re.compile(r":\d+$")
_NUMBERED_NAME = re.compile(r"_\d+$")


def canonical_optimizer_class(name: str) -> str:
    """``"Custom>Adam"``, ``"adam"``, ``"adam_7"``, ``"AdamOptimizer"``, ``"keras.optimizers.legacy.Adam"`` -> ``"Adam"``."""
    bare = name.split(">")[-1].rsplit(".", 1)[-1]
    found = _known_class(bare)
    if found is None:
        # Keras 3 optimizer *names* are uniquified per process: "adam", "adam_1", "adam_7"
        found = _known_class(_NUMBERED_NAME.sub("", bare))
    if found is None:  # Keras 3 snake-cases the class for its name scope: "adam_w", "rm_sprop"
        found = _known_class(_NUMBERED_NAME.sub("", bare).replace("_", ""))
    return found or bare


def _known_class(bare: str) -> str | None:
    if bare in CANONICAL_SLOTS:
        return bare
    return _CLASS_ALIASES.get(bare, _CLASS_ALIASES.get(bare.lower()))


def canonical_slot(optimizer_class: str, raw_slot: str) -> str:
    """Canonical slot name for ``raw_slot`` of an optimizer (class given in any spelling)."""
    cls = canonical_optimizer_class(optimizer_class)
    if raw_slot in CANONICAL_SLOTS.get(cls, ()):
        return raw_slot
    return _SLOT_ALIASES.get((cls, raw_slot), raw_slot)


def split_keras3_slot(optimizer_class: str, name: str) -> tuple[str, str] | None:
    """Split a Keras 3 slot variable name ``dense_kernel_momentum`` into
    (``dense_kernel``, canonical slot), or ``None`` when no known slot suffix matches.

    The first part is the variable path with ``/`` replaced by ``_`` as Keras 3 spells it;
    callers match it against the model's variables (and check shapes).
    """
    cls = canonical_optimizer_class(optimizer_class)
    raws = [raw for (c, raw) in _SLOT_ALIASES if c == cls] + list(CANONICAL_SLOTS.get(cls, ()))
    for raw in sorted(set(raws), key=len, reverse=True):  # longest first: velocity_hat before velocity
        if name.endswith("_" + raw):
            return name[: -len(raw) - 1], canonical_slot(cls, raw)
    return None


def strip_tensor_suffix(name: str) -> str:
    """``dense/kernel:0`` -> ``dense/kernel``."""
    return _SUFFIX.sub("", name)


def canonical_weight_name(layer_path: list[str] | tuple[str, ...], raw_weight_name: str) -> str:
    """Canonical name of one weight: the layer path plus the weight's own last name component.

    ``(["lstm"], "lstm/lstm_cell/kernel:0")`` -> ``lstm/kernel``;
    ``(["inner", "dense_2"], "dense_2/bias:0")`` -> ``inner/dense_2/bias``.
    """
    short = strip_tensor_suffix(raw_weight_name).rsplit("/", 1)[-1]
    return "/".join([*layer_path, short])


def distinct_paths(paths: list[list[str]]) -> list[str]:
    """Names for weights given by their path inside one layer, the way the live walk names them:
    short names when they are distinct, else each named through its first component (the
    sub-layer that owns it), recursively: ``[[cells, c2, kernel], [cells, c3, kernel]]`` ->
    ``cells/c2/kernel``, ``cells/c3/kernel``."""
    shorts = [p[-1] for p in paths]
    if len(set(shorts)) == len(shorts) or all(len(p) == 1 for p in paths):
        return shorts
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(p[0] if len(p) > 1 else "", []).append(i)
    out = list(shorts)
    for head, members in groups.items():
        if head:
            for i, rel in zip(members, distinct_paths([paths[i][1:] for i in members])):
                out[i] = f"{head}/{rel}"
    return out


#: ``OptimizerState.extra`` keys of a loss-scale wrapper's state (mixed precision): the dynamic
#: scale, the good steps since it last changed, and its settings (``LOSS_SCALE_CONFIG + key``)
LOSS_SCALE_CURRENT = "loss_scale/current_loss_scale"
LOSS_SCALE_GOOD_STEPS = "loss_scale/good_steps"
LOSS_SCALE_CONFIG = "loss_scale_config/"


#: one variable, two spellings: the generations name it differently (Keras 3 DepthwiseConv's
#: ``kernel`` is Keras 2's ``depthwise_kernel``), by layer class
LEAF_ALIASES: dict[str, frozenset[str]] = {
    "DepthwiseConv1D": frozenset({"kernel", "depthwise_kernel"}),
    "DepthwiseConv2D": frozenset({"kernel", "depthwise_kernel"}),
}


def other_spellings(leaf: str) -> frozenset[str]:
    """The other generation's names of a variable leaf, whatever the layer's class
    (:data:`LEAF_ALIASES`; for files that name no classes)."""
    return frozenset().union(*(group - {leaf} for group in LEAF_ALIASES.values() if leaf in group))


def respell(name: str, known: object, taken: object = ()) -> str:
    """``name`` as ``known`` (a collection of names) spells it where the generations name one
    variable twice; ``name`` itself when it is known or no other spelling is (or when that
    spelling is in ``taken``, a name of its own there)."""
    if name in known:  # type: ignore[operator]
        return name
    head, _, leaf = name.rpartition("/")
    for other in sorted(other_spellings(leaf)):
        candidate = f"{head}/{other}" if head else other
        if candidate in known and candidate not in taken:  # type: ignore[operator]
            return candidate
    return name
