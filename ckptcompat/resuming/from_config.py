"""A model rebuilt from a checkpoint's model config for the running Keras: the config translated
(:mod:`ckptcompat.names.configs`), Keras's own deserializer, and a typed error naming what no rule
covers (classes this Keras lacks, Lambda byte-code, a later Keras 3's quantized layers)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ckptcompat.errors import InvalidArgumentError, UnsupportedFormatError
from ckptcompat.state import TrainingState

__all__ = ["class_names", "config_for_running", "model_from_config", "written_by_keras3"]

log = logging.getLogger(__name__)


def class_names(obj: Any) -> set[str]:
    """Every ``class_name`` mentioned in a (model) config."""
    found: set[str] = set()
    if isinstance(obj, Mapping):
        if isinstance(obj.get("class_name"), str):
            found.add(obj["class_name"])
        for value in obj.values():
            found |= class_names(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            found |= class_names(value)
    return found


def written_by_keras3(state: TrainingState) -> bool | None:
    """True/False when the producer tells whether Keras 3 wrote the file, else None."""
    framework = state.producer.framework
    version = str(state.producer.versions.get("keras") or "")
    if framework in ("tf.keras", "tf-keras") or version.startswith(("1.", "2.")):
        return False
    if version.startswith("3."):
        return True
    return None


def config_for_running(model_config: Mapping[str, Any], flavour: str,
                       keras3: bool | None = None, path: str | None = None) -> dict[str, Any]:
    """A model config of any generation in the spelling of ``flavour`` (the running one);
    :class:`UnsupportedFormatError` naming the layer and the missing rule where none fits."""
    from ckptcompat import runtime

    out: dict[str, Any] = runtime.flavour(flavour).config_for_running(model_config, keras3, path)
    return out


def _unknown_classes(keras: Any, config: Mapping[str, Any], custom: Mapping[str, Any]) -> list[str]:
    known_spaces = [getattr(keras, n, None) for n in ("layers", "models", "mixed_precision", "dtype_policies")]
    known_spaces += _object_spaces(keras)
    out = []
    for name in sorted(class_names(config)):
        short = name.split(">")[-1]
        if name.startswith("__"):  # serialization markers: __keras_tensor__, __lambda__, __tuple__
            continue
        if name in custom or short in custom or name in ("Functional", "Sequential", "Model"):
            continue
        if not any(space is not None and hasattr(space, short) for space in known_spaces) \
                and not _resolvable(_object_spaces(keras), short):
            out.append(name)
    return out


def _resolvable(spaces: list[Any], name: str) -> bool:
    """Whether an initializer/regularizer/constraint/activation module resolves ``name`` although
    it has no attribute of that name (TF 1.15's tf.keras: ``initializers.get("GlorotUniform")``).
    An answer that is the name itself is no resolution (tf-keras ``regularizers.get``)."""
    for space in spaces:
        try:
            found = space.get(name) if space is not None and callable(getattr(space, "get", None)) else None
        except Exception:  # noqa: BLE001 -- Keras raises ValueError/TypeError for unknown names
            continue
        if found is not None and not isinstance(found, str):
            return True
    return False


def _native_rebuild(flavour: str, keras: Any, config: Mapping[str, Any], custom: Mapping[str, Any]) -> Any:
    """Keras's own ``model_from_config``; on Keras 2, when it fails, once more with the running
    Keras's own layer classes the config names and its deserializer misses (:func:`_builtin_layers`;
    never names an initializer or other object resolves). The first error stands if that fails too."""
    from ckptcompat import runtime

    running = runtime.flavour(flavour)
    rebuild = running.model_from_config
    try:
        return rebuild(config, custom)
    except Exception as first:  # noqa: BLE001 -- re-raised below unless the retry fits
        extra = _builtin_layers(keras, config) if getattr(running, "RETRY_WITH_OWN_LAYERS", False) else {}
        extra = {name: cls for name, cls in extra.items()
                 if name not in custom and not _resolvable(_object_spaces(keras), name)}
        if not extra:
            raise
        try:
            model = rebuild(config, {**extra, **custom})
        except Exception:  # noqa: BLE001 -- the first error is the one that explains
            raise first from None
        log.info("rebuilt with this Keras's own %s (its config deserializer does not register them)",
                 ", ".join(sorted(extra)))
        return model


def _object_spaces(keras: Any) -> list[Any]:
    return [getattr(keras, n, None) for n in ("initializers", "regularizers", "constraints", "activations")]


def _builtin_layers(keras: Any, config: Mapping[str, Any]) -> dict[str, type]:
    """The running Keras's own layer classes that ``config`` names, by class name. tf-keras's
    config deserializer does not register every layer it ships (SpectralNormalization: the
    layer came back as its class name); given by name, they rebuild as Keras saved them."""
    layers = getattr(keras, "layers", None)
    base = getattr(layers, "Layer", None)
    if not isinstance(base, type):
        return {}
    found = {name: getattr(layers, name, None) for name in class_names(config)}
    return {name: cls for name, cls in found.items() if isinstance(cls, type) and issubclass(cls, base)}


def model_from_config(model_config: Mapping[str, Any], flavour: str, keras: Any,
                      custom_objects: Mapping[str, Any] | None, path: str | None = None,
                      keras3: bool | None = None) -> Any:
    """A new model from a model config of any generation, translated for the running Keras.
    :class:`UnsupportedFormatError`: Lambda byte-code, a later Keras 3's quantized layers, or no rule
    fits (Keras's message names the layer and argument); :class:`InvalidArgumentError`: classes this
    Keras does not know (pass ``custom_objects``)."""
    custom = dict(custom_objects or {})
    if "Lambda" in class_names(model_config) and "Lambda" not in custom:
        raise UnsupportedFormatError(
            "the model has a Lambda layer whose function is stored as Python byte-code; ckptcompat "
            "never executes code from a checkpoint (missing rule: none possible)", path=path,
            hint="build the model yourself (with its Lambda function) and pass resume(path, model=model)")
    config = config_for_running(model_config, flavour, keras3, path)
    unknown = _unknown_classes(keras, config, custom)
    try:
        model = _native_rebuild(flavour, keras, config, custom)
    except Exception as exc:  # noqa: BLE001 -- Keras raises ValueError/TypeError/KeyError freely
        _refuse_quantized(unknown, path, exc)
        if unknown:
            _refuse_unknown(unknown, keras, path, exc)
        raise UnsupportedFormatError(
            f"cannot rebuild the model from its config (no translation rule covers it): {exc}", path=path,
            hint="build the model yourself and pass resume(path, model=model)") from exc
    return model


def _refuse_unknown(unknown: list[str], keras: Any, path: str | None, exc: Exception) -> None:
    """Classes this Keras does not know: a later Keras 3 release's own (named with the release that
    added them, from the generated release table) or the user's (``custom_objects``)."""
    from ckptcompat.names.configs.keras3_releases import later_keras3_classes

    version = str(getattr(keras, "__version__", ""))
    later = later_keras3_classes(unknown, version)  # none unless a Keras 3 release runs
    custom = "custom_objects={" + ", ".join(f"'{u}': {u}" for u in unknown) + "}"
    if later:
        first = max(later.values(), key=lambda v: tuple(int(p) for p in v.split(".")))
        raise InvalidArgumentError(
            f"the model uses class(es) this Keras does not know: {', '.join(unknown)}. Keras added "
            + ", ".join(f"{n} in {v}" for n, v in sorted(later.items())) + f"; this is Keras {version}",
            path=path, hint=f"resume with Keras {first} or later, or pass {custom} with your own "
            "implementations") from exc
    raise InvalidArgumentError(f"the model uses class(es) this Keras does not know: {', '.join(unknown)}",
                               path=path, hint=f"pass {custom} with your own classes") from exc


#: Keras 3's own quantization classes (not tfmot's QuantizeWrapperV2: custom_objects supplies those)
_KERAS3_QUANTIZATION_NAMES = ("QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "Int4DTypePolicy",
                              "GPTQDTypePolicy", "AWQDTypePolicy", "QuantizationConfig")


def _refuse_quantized(unknown: list[str], path: str | None, exc: Exception) -> None:
    """A model quantized by a later Keras 3 that this Keras cannot rebuild: no custom class helps."""
    quantized = [name for name in unknown if name.split(">")[-1].endswith(_KERAS3_QUANTIZATION_NAMES)]
    if quantized:
        raise UnsupportedFormatError(
            f"the model was quantized by a later Keras 3's model.quantize ({', '.join(quantized)} unknown here); "
            "this Keras cannot rebuild those layers, and a float layer does not compute what a quantized one does "
            "(missing rule: none possible)", path=path,
            hint="resume it with the Keras 3 release that wrote it, or a later one") from exc
