"""Rebuild and compile a model from a checkpoint's config for the running Keras (used by resume)."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ckptcompat.errors import CkptCompatError, IncompatibleStateError, InvalidArgumentError, UnsupportedFormatError
from ckptcompat.names.lr_decay import PRODUCT_DECAY_NAME
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.names.optimizer_layouts import is_optimizer_v2_config
from ckptcompat.resuming.from_config import class_names, config_for_running, model_from_config, written_by_keras3
from ckptcompat.state import OptimizerState, TrainingState

__all__ = ["build_model", "compile_model", "config_for_running", "class_names", "model_from_config",
           "typed_rebuild_errors", "written_by_keras3"]

log = logging.getLogger(__name__)
_SKIP_HYPER = {"name", "is_legacy_optimizer", "jit_compile", "learning_rate_schedule"}


def build_model(state: TrainingState, flavour: str, keras: Any,
                custom_objects: Mapping[str, Any] | None, path: str | None) -> Any:
    """A new model built from ``state.model_config`` for the running Keras (weights not set)."""
    if not state.model_config:
        raise InvalidArgumentError(
            "the checkpoint holds no model config (weights-only file, TF bundle or subclassed model)",
            path=path, hint="build the model yourself and pass it: resume(path, model=model)")
    from ckptcompat.resuming.adapted_bins import config_with_bins
    from ckptcompat.resuming.adapted_vocab import lost_vocabularies

    lost = lost_vocabularies(state.model_config)
    if lost:  # rebuilt, they would fail at the first call ("Table not initialized")
        raise UnsupportedFormatError(
            f"the checkpoint records no vocabulary of its adapted lookup layer(s) {', '.join(lost)} "
            "(a legacy .h5 keeps none; a SavedModel of TF 2.6+ keeps it outside its variables)", path=path,
            hint="build the model with those layers adapted (or set_vocabulary) and pass resume(path, model=model), "
                 "or resume from a .keras file or a ckptcompat store, which keep it")
    config = config_with_bins(state.model_config, state)
    model = model_from_config(config, flavour, keras, custom_objects, path, written_by_keras3(state))
    # a Sequential config without any input shape (size-0 tensors hold nothing: an unadapted
    # tf-keras Discretization's (2, 0) summary, a layer Keras 3 builds without variables)
    if any(np.size(w) for w in state.weights.values()) and not _weights_of(model):
        raise UnsupportedFormatError(
            "the model config records no input shape, so the model rebuilt from it has no weights "
            "(standalone Keras 2.x leaves an explicit InputLayer of a Sequential out of its config)",
            path=path, hint="build the model in code (input_shape= on its first layer, or model.build(...)) "
            "and pass resume(path, model=model)")
    return model


def _weights_of(model: Any) -> list[Any]:
    try:
        return list(model.weights)
    except ValueError:  # tf.keras / tf-keras: "Weights for model ... have not yet been created"
        return []



def make_optimizer(keras: Any, opt: OptimizerState, flavour: str) -> Any:
    """An optimizer of the saved class with the saved hyper-parameters."""
    cls_name = canonical_optimizer_class(opt.class_name)
    raw = dict(opt.config.get("config", opt.config)) if isinstance(opt.config, Mapping) else {}
    from ckptcompat import runtime

    # a legacy (OptimizerV2) optimizer comes back as one where the flavour still has them
    cls = runtime.flavour(flavour).find_optimizer_class(
        cls_name, legacy=is_optimizer_v2_config(raw, opt.hyperparameters))
    if not isinstance(cls, type):
        raise IncompatibleStateError(f"optimizer class {opt.class_name!r} does not exist in this Keras",
                                     hint="compile the model yourself and pass it as model=")
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    dropped = []
    for key, value in opt.hyperparameters.items():
        if key in _SKIP_HYPER:
            continue
        if key in params and params[key].kind in (params[key].POSITIONAL_OR_KEYWORD, params[key].KEYWORD_ONLY):
            kwargs[key] = value
        else:
            dropped.append(key)
    for key, value in raw.items():  # list arguments (Muon's exclude_layers): no hyper-parameter holds them
        if isinstance(value, (list, tuple)) and key not in kwargs and key in params:
            kwargs[key] = list(value)
    schedule = opt.hyperparameters.get("learning_rate_schedule")
    if isinstance(kwargs.get("learning_rate"), Mapping):  # a schedule in place of the rate
        schedule = kwargs.pop("learning_rate")
    if kwargs.get("learning_rate") is None and isinstance(schedule, Mapping):
        from ckptcompat.names.lr_decay import rate_and_schedule

        schedule = rate_and_schedule({"learning_rate_schedule": schedule})["learning_rate_schedule"]
        kwargs["learning_rate"] = _schedule(keras, schedule)
    elif kwargs.get("learning_rate") is None:
        kwargs.pop("learning_rate", None)
    _decay_arguments(keras, cls, cls_name, opt, kwargs)
    dropped = [d for d in dropped if d not in kwargs and d not in ("decay", "schedule_decay")]  # told above
    slot_names = {n for per in opt.slots.values() for n in per}
    if cls_name == "SGD" and "momentum" in slot_names and "momentum" not in opt.hyperparameters:
        log.warning("the checkpoint has SGD momentum slots but does not record the momentum value "
                    "(Keras 3 .keras without an optimizer config); compile the model yourself and "
                    "pass it as model=")
    if dropped:
        log.info("optimizer %s: hyper-parameters %s do not exist in this Keras and were left out",
                 cls_name, sorted(dropped))
    return cls(**kwargs)


def _schedule(keras: Any, schedule: Mapping[str, Any]) -> Any:
    """A serialized learning-rate schedule as this Keras's object. Arguments this Keras's class does
    not take are left out where they keep their default (Keras 3's ``CosineDecay(warmup_target=None,
    warmup_steps=0)`` on TF 2.4, logged), else refused: the rate would differ."""
    cfg = dict(schedule.get("config") or {})
    name = str(schedule.get("class_name"))  # tf.keras <= 2.4 has CosineDecay in keras.experimental only
    cls = getattr(keras.optimizers.schedules, name, None) or getattr(getattr(keras, "experimental", None), name, None)
    params = inspect.signature(cls.__init__).parameters if isinstance(cls, type) else {}
    if params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        extra = {k: v for k, v in cfg.items() if k not in params}
        changing = sorted(k for k, v in extra.items() if not (v is None or (isinstance(v, (int, float)) and not v)))
        if changing:
            raise IncompatibleStateError(
                f"the learning-rate schedule {cls.__name__} of the checkpoint uses {', '.join(changing)}, which "
                f"this Keras's {cls.__name__} does not have: the rate would differ",
                hint="resume with a Keras whose schedule takes them, or compile the model with an equivalent "
                     "schedule yourself and pass it as model=")
        if extra:
            log.info("learning-rate schedule %s: %s left out (this Keras has no such argument; the saved "
                     "values are the defaults)", cls.__name__, ", ".join(sorted(extra)))
        cfg = {k: v for k, v in cfg.items() if k in params}
    if name == "InverseTimeDecay" and cfg.get("name") == PRODUCT_DECAY_NAME and cfg.get("decay_steps") == 1 \
            and not cfg.get("staircase"):  # standalone Keras's decay, continued as it was
        from ckptcompat.runtime.product_decay import product_decay

        return product_decay(keras, cfg["initial_learning_rate"], cfg["decay_rate"])
    return keras.optimizers.schedules.deserialize({**schedule, "config": cfg})


def _decay_arguments(keras: Any, cls: type, cls_name: str, opt: OptimizerState, kwargs: dict[str, Any]) -> None:
    """The saved ``decay`` for this Keras's optimizer class (:mod:`ckptcompat.names.lr_decay`):
    passed on where the class takes it, else the rate decayed by an equal ``InverseTimeDecay``;
    the multi-backend API's product (``lr * (1 / (1 + decay t))``) as
    :func:`ckptcompat.runtime.product_decay.product_decay`, also for an OptimizerV2 (whose ``decay=``
    divides); an OptimizerV2 Nadam gets the saved momentum schedule's scale (1.0 for Keras 3's)."""
    from ckptcompat.names.lr_decay import decay_schedule_config, decays_by_product, saved_decay, takes_decay
    from ckptcompat.names.slot_meaning import nadam_schedule

    if cls_name == "Nadam":
        if hasattr(cls, "_decayed_lr"):  # OptimizerV2: decay = schedule_decay=, its schedule's scale
            kwargs["schedule_decay"] = nadam_schedule(opt.config, opt.hyperparameters)[0]
        return
    decay = saved_decay(cls_name, opt.config, opt.hyperparameters)
    if not decay:
        return
    lr = kwargs.get("learning_rate")
    rate_is_number = isinstance(lr, (int, float)) and not isinstance(lr, bool)
    product = decays_by_product(opt.config)  # lr * (1 / (1 + decay t))
    divides = hasattr(cls, "_decayed_lr")  # OptimizerV2's decay=: lr / (1 + decay t); standalone Keras's: the product
    if takes_decay(cls) and not (product and divides and rate_is_number):
        kwargs["decay"] = decay
        return
    if not rate_is_number:
        log.warning("%s: decay=%s cannot be combined with the learning-rate schedule %r in this Keras "
                    "(no decay argument); the rate follows the schedule only", cls_name, decay, lr)
        return
    if product:
        from ckptcompat.runtime.product_decay import product_decay

        kwargs["learning_rate"] = product_decay(keras, lr, decay)
        log.warning("%s: decay=%s of the multi-backend Keras API is continued as learning_rate="
                    "InverseTimeDecay(%s, decay_steps=1, decay_rate=%s) computing its rate lr * (1 / (1 + decay * "
                    "iterations)) (named %r; Keras alone reads it as lr / (1 + decay * iterations), at most 1 float32 "
                    "ulp apart). A schedule: learning_rate= and ReduceLROnPlateau cannot change it; for a plain rate "
                    "compile the model with decay= (OptimizerV2) yourself and pass it as model=",
                    cls_name, decay, lr, decay, kwargs["learning_rate"].name)
        return
    kwargs["learning_rate"] = keras.optimizers.schedules.deserialize(decay_schedule_config(lr, decay))
    log.warning("%s: this Keras's optimizers have no decay; decay=%s is continued as learning_rate="
                "InverseTimeDecay(%s, decay_steps=1, decay_rate=%s), the same rate lr / (1 + decay * iterations)",
                cls_name, decay, lr, decay)


def _metric(keras: Any, entry: Any) -> Any:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and entry.get("class_name") == "MeanMetricWrapper":
        cfg = entry.get("config", {})
        return cfg.get("name") or cfg.get("fn")
    if isinstance(entry, Mapping) and isinstance(entry.get("class_name"), str):
        cls = getattr(keras.metrics, entry["class_name"], None)
        if cls is not None:
            return cls.from_config(dict(entry.get("config", {})))
    raise ValueError(f"unknown metric entry {entry!r}")


def _metrics(keras: Any, value: Any) -> Any:
    if value is None:
        return None
    flat: list[Any] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):  # Keras 2 h5: one list per output
            flat.extend(item)
        else:
            flat.append(item)
    out = []
    for entry in flat:
        try:
            out.append(_metric(keras, entry))
        except (ValueError, TypeError) as exc:
            log.warning("metric %r from the checkpoint cannot be rebuilt and is left out: %s", entry, exc)
    return out


def _loss(keras: Any, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "class_name" in value:
        if not isinstance(value.get("config"), Mapping):  # Keras 3: {"class_name": "function", "config": "mse"}
            return value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        cfg = dict(value.get("config", {}))
        cls = getattr(keras.losses, value["class_name"], None)
        if cls is not None:
            cfg.pop("fn", None)
            if cfg.get("reduction") == "auto" and flavour_is_keras3(keras):
                cfg["reduction"] = "sum_over_batch_size"  # Keras 2 "auto" = Keras 3's default
            return cls.from_config(cfg)
        return cfg.get("fn") or cfg.get("name")
    if isinstance(value, Mapping):
        return {k: _loss(keras, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loss(keras, v) for v in value]
    return value


def flavour_is_keras3(keras: Any) -> bool:
    """True when ``keras`` is Keras 3 (its version string starts with 3)."""
    return str(getattr(keras, "__version__", "")).startswith("3")


def compile_model(model: Any, state: TrainingState, keras: Any, flavour: str, path: str | None) -> None:
    """Compile ``model`` with the saved optimizer and the saved loss/metrics (training_config)."""
    if state.optimizer is None or state.optimizer.class_name == "Unknown":
        log.info("%s: no optimizer in the checkpoint; the rebuilt model is not compiled", path)
        return
    from ckptcompat._plausible import check_optimizer_config

    check_optimizer_config(state.optimizer, path)  # no deserialize()/builtin/foreign schedule
    from ckptcompat.names.configs.keras2_releases import for_keras2_release

    tc = for_keras2_release(state.training_config or {}, str(getattr(keras, "__version__", "")), path)
    if "loss" not in tc:
        raise InvalidArgumentError("the checkpoint records no loss to compile with", path=path,
                                   hint="compile the model yourself and pass it as model=, "
                                        "or use compile=False")
    from ckptcompat import runtime
    from ckptcompat.runtime import _loss_scale

    optimizer = _loss_scale.wrap(keras, make_optimizer(keras, state.optimizer, flavour),
                                 runtime.flavour(flavour).KERAS_MAJOR, state.optimizer.extra)
    kwargs: dict[str, Any] = {"optimizer": optimizer, "loss": _loss(keras, tc.get("loss"))}
    metrics = _metrics(keras, tc.get("metrics"))
    if metrics:
        kwargs["metrics"] = metrics
    weighted = _metrics(keras, tc.get("weighted_metrics"))
    if weighted:
        kwargs["weighted_metrics"] = weighted
    if tc.get("loss_weights") is not None:
        kwargs["loss_weights"] = tc["loss_weights"]
    model.compile(**kwargs)


@contextlib.contextmanager
def typed_rebuild_errors(what: str, where: str, hint: str) -> Iterator[None]:
    """Framework errors from rebuilding a model out of a foreign config (Keras raises
    ValueError / TypeError / AttributeError on configs it does not know) as one typed
    :class:`UnsupportedFormatError` naming the path and the way on."""
    try:
        yield
    except CkptCompatError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
        raise UnsupportedFormatError(f"cannot {what}: {type(exc).__name__}: {exc}", path=where,
                                     hint=hint) from exc
