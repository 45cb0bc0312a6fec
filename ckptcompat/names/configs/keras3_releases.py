"""Constructor arguments and class names later Keras 3 releases write, for a model rebuilt in an older one.

A ``.keras`` written by Keras 3.15 carries arguments that Keras 3.0-3.14 constructors refuse
(``Unrecognized keyword arguments passed to Dense: {'quantization_config': None}``). Which
release added which argument, and its default, comes from ``keras3_releases.json``, generated
by ``tools/keras3_releases.py`` from every Keras 3 release's own sources (never listed by hand).
An argument the target release lacks is dropped at its default, or where default and value are
both off (``None``/``False``): the older release behaves so. Any other value has no equivalent
there and raises :class:`~ckptcompat.errors.UnsupportedFormatError` naming every such argument.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ckptcompat.errors import UnsupportedFormatError
from ckptcompat.names.configs.keras2_releases import release_tuple

__all__ = ["for_keras3_release", "keras3_table", "later_keras3_classes"]

log = logging.getLogger(__name__)

_TABLE = Path(__file__).with_name("keras3_releases.json")
#: serialized class names later Keras 3 releases write -> the name the earlier ones registered
_OLDER_CLASS_NAMES: dict[str, str] = {"Orthogonal": "OrthogonalInitializer"}
#: dtype policies a name says all of (3.4+ write them as objects, 3.0-3.3 as the name)
_PLAIN_POLICIES = ("DTypePolicy", "FloatDTypePolicy")
#: arguments that mean nothing while another one is off: (argument, the one it depends on)
_DEPENDS_ON = {"renorm_clipping": "renorm", "renorm_momentum": "renorm"}
#: newer arguments checked on classes the table does not describe (a user's subclass of a Keras
#: layer or initializer): dropped only where off (None / False), for releases before the latest
#: that added them to any class
_ANY_CLASS_ARGS = ("quantization_config", "lora_rank", "lora_alpha", "optional", "input_axes", "output_axes",
                   "seed", "sliding_window", "use_gate")
#: ``quantization_config`` (Keras 3.13+) as ``quantize(mode)`` writes it by default: what the releases
#: before it quantize with for that mode (int8: per-channel abs-max weights, inputs abs-max on the last
#: axis to [-127, 127]); read in the 3.15 sources. Other modes changed their defaults (int4 went
#: sub-channel) and have no neutral value.
_DEFAULT_QUANTIZATION = {
    "Int8QuantizationConfig": {"weight_quantizer": None, "activation_quantizer": {
        "class_name": "AbsMaxQuantizer", "config": {"value_range": [-127, 127], "epsilon": 1e-07,
                                                     "output_dtype": "int8"}}},
    "Float8QuantizationConfig": {},  # float8 takes no settings (3.4-3.12 have float8)
}


def _plain(obj: Any) -> Any:
    """``obj`` without serialization bookkeeping (module, registered name, shared object ids)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k not in ("module", "registered_name", "shared_object_id")}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


@lru_cache(maxsize=1)
def keras3_table() -> dict[str, Any]:
    """The generated table: ``args_since`` {class: {argument: [first release, default]}},
    ``classes_since`` {class: first release}, ``releases`` measured."""
    table: dict[str, Any] = json.loads(_TABLE.read_text())
    return table


def later_keras3_classes(names: list[str], version: str) -> dict[str, str]:
    """Of ``names``, the Keras classes a release after Keras ``version`` added: {name: first release}."""
    target = release_tuple(version)
    since = keras3_table()["classes_since"]
    return {n: since[n] for n in names if target[0] == 3 and n in since and release_tuple(since[n]) > target}


def _off(value: Any) -> bool:
    return value is None or value is False  # not 0: a seed or a LoRA scale of 0 is a value


def _neutral(value: Any, default: Any, cfg: Mapping[str, Any], arg: str) -> bool:
    """Whether ``value`` of a newer ``arg`` means what releases without the argument do."""
    if (value == default and isinstance(value, bool) == isinstance(default, bool)) or (_off(value) and _off(default)):
        return True
    if arg in _DEPENDS_ON and _off(cfg.get(_DEPENDS_ON[arg])):
        return True
    if arg == "data_format" and default is None and value == "channels_last":
        return True  # get_config writes the resolved default; earlier releases assumed channels_last
    if arg == "quantization_config" and isinstance(value, dict):
        default = _DEFAULT_QUANTIZATION.get(str(value.get("class_name")))
        return default is not None and _plain(value.get("config")) == default
    # LoRA scale alpha / rank == 1 is what releases without lora_alpha merge with
    return arg == "lora_alpha" and value == cfg.get("lora_rank")


@lru_cache(maxsize=1)
def _any_class_args() -> dict[str, list[Any]]:
    """:data:`_ANY_CLASS_ARGS` with the latest release that added each to a Keras class."""
    latest: dict[str, str] = {}
    for args in keras3_table()["args_since"].values():
        for arg, (first, _) in args.items():
            if arg in _ANY_CLASS_ARGS and release_tuple(first) > release_tuple(latest.get(arg, "3.0")):
                latest[arg] = first
    return {arg: [first, None] for arg, first in latest.items()}


def _older_layout(cfg: dict[str, Any], keras_class: str | None, target: tuple[int, int]) -> None:
    """``cfg`` (one object's config) in the layout release ``target`` writes, in place."""
    if "layers" in cfg and target < (3, 4):
        for key in ("input_layers", "output_layers"):  # 3.0-3.3 want a list of [name, node, tensor]
            value = cfg.get(key)
            if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                cfg[key] = [value]
    dtype = cfg.get("dtype")
    if target < (3, 4) and isinstance(dtype, dict) and dtype.get("class_name") in _PLAIN_POLICIES \
            and str(dtype.get("module") or "keras").startswith("keras") and dtype.get("registered_name") is None \
            and isinstance(dtype.get("config"), dict) and set(dtype["config"]) == {"name"}:
        cfg["dtype"] = dtype["config"]["name"]  # 3.0-3.3 write the policy's name (Hashing checks it)
    if keras_class == "Bidirectional" and target < (3, 3) and isinstance(cfg.get("layer"), dict):
        # 3.0-3.2's Bidirectional also tracks the layer it is given: built from its build_config,
        # that copy adds unused weights beside forward_layer's (the file has none for them)
        cfg["layer"].pop("build_config", None)
    if keras_class == "Discretization" and target < (3, 9) and cfg.get("bin_boundaries") is not None \
            and cfg.get("num_bins") is not None:
        # an adapted layer writes its bins beside num_bins; 3.0-3.8's from_config refuses the two
        # together (their own files too): the bins are the layer
        cfg["num_bins"] = None


def for_keras3_release(model_cfg: Mapping[str, Any], version: str, path: str | None = None) -> dict[str, Any]:
    """A copy of a Keras 3 ``model_cfg`` that Keras ``version`` rebuilds: arguments it lacks
    dropped where neutral (logged), class names it registered under another name renamed;
    a non-neutral argument it lacks raises, naming each (``path`` in the message)."""
    target = release_tuple(version)
    out = copy.deepcopy(dict(model_cfg))
    if target[0] != 3:
        return out
    table = keras3_table()
    since, classes_since = table["args_since"], table["classes_since"]
    any_class = _any_class_args()
    dropped: set[str] = set()
    misfits: list[str] = []

    def visit(obj: Any) -> None:
        if isinstance(obj, list):
            for value in obj:
                visit(value)
            return
        if not isinstance(obj, dict):
            return
        cfg, cls = obj.get("config"), obj.get("class_name")
        keras_owned = (str(obj.get("module") or "keras").startswith("keras")
                       and obj.get("registered_name") in (None, cls))  # a user's class: "package>Name"
        if isinstance(cfg, dict):
            _older_layout(cfg, cls if keras_owned else None, target)
        if isinstance(cfg, dict) and isinstance(cls, str):
            known = keras_owned and cls in since  # else a class of the user's: only what is off is dropped
            for arg, (first, default) in (since[cls] if known else any_class).items():
                if arg in cfg and release_tuple(first) > target:
                    if _neutral(cfg[arg], default, cfg, arg) if known else _off(cfg[arg]):
                        cfg.pop(arg)
                        dropped.add(f"{cls}.{arg}")
                    elif known:
                        misfits.append(f"{cfg.get('name', cls)} ({cls}): {arg}={cfg[arg]!r} (Keras {first}+)")
        if keras_owned and cls in _OLDER_CLASS_NAMES and release_tuple(classes_since.get(cls, "3.0")) > target:
            obj["class_name"] = _OLDER_CLASS_NAMES[cls]
        for value in obj.values():
            visit(value)

    visit(out)
    if dropped:
        log.info("config for Keras %s: dropped newer arguments at their neutral values: %s", version,
                 ", ".join(sorted(dropped)))
    if misfits:
        raise UnsupportedFormatError(
            f"written by a later Keras 3 with arguments Keras {version} does not have, at values it cannot "
            f"express: {'; '.join(misfits)}", path=path,
            hint="resume in that Keras release or a later one, or build the model in code and pass "
                 "resume(path, model=model)")
    return out
