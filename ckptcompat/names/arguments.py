"""Callback, optimizer and ``fit`` arguments translated between Keras generations.

Each translation is an ordered table (:data:`RULES`) of small pure functions; each row says
which argument it handles and in which versions the old spelling lives. A translation returns
a :class:`Translation`: the new keyword arguments, keyword arguments that moved to another
object (``fit(workers=...)`` -> ``keras.utils.PyDataset(workers=...)`` on Keras 3) and one
:class:`Note` per change, which :func:`log_notes` writes to the log (INFO or WARNING).

Choices (``docs/names.md``):

- ``ModelCheckpoint(period=N)`` becomes ``save_every_epochs=N``, never ``save_freq=N``:
  Keras (TF 1.14+, tf.keras, Keras 3) counts an integer ``save_freq`` in *batches*, so
  ``save_freq=N`` would save every N batches. ``save_every_epochs`` is ckptcompat's own
  checkpoint-callback argument; native Keras 3 has none.
- ``decay=d`` (Keras 2 / legacy optimizers: ``lr / (1 + d * iterations)``) becomes a
  ``learning_rate`` schedule description ``InverseTimeDecay(lr, decay_steps=1, decay_rate=d)``,
  the same formula; build it with ``keras.optimizers.schedules.deserialize(description)``.
  Refused when no explicit learning rate is given (defaults differ between versions) or when
  the learning rate is already a schedule. Keras 3 would warn and *ignore* ``decay``, TF
  2.11-2.15 new optimizers raise ``ValueError``.

Without ``keras_major`` the translations target the running Keras
(:func:`running_keras_major`, through :mod:`ckptcompat.runtime`). Pure Python: no framework import.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, NamedTuple

from ckptcompat.errors import InvalidArgumentError

__all__ = [
    "Note",
    "Translation",
    "Rule",
    "RULES",
    "EPOCH_IN_FILEPATH",
    "METHOD_RENAMES",
    "checkpoint_kwargs",
    "optimizer_kwargs",
    "fit_kwargs",
    "method_name",
    "running_keras_major",
    "lr_ignored_by",
    "filepath_epoch_base",
    "log_notes",
]

logger = logging.getLogger(__name__)

_Kw = Dict[str, Any]


class Note(NamedTuple):
    """One change made by a translation: ``level`` is ``"info"`` or ``"warning"``."""

    level: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Translation:
    """Translated keyword arguments, the ones moved elsewhere, and what was done."""

    kwargs: _Kw
    moved: _Kw = field(default_factory=dict)
    notes: tuple[Note, ...] = ()


class _Step(NamedTuple):
    kwargs: _Kw
    moved: _Kw
    notes: list[Note]


RuleFn = Callable[[_Kw, _Kw, int], _Step]


@dataclass(frozen=True)
class Rule:
    """One row: ``target`` (what is called), ``argument``, ``versions`` (prose), ``apply``."""

    target: str
    argument: str
    versions: str
    apply: RuleFn


def _without(kwargs: Mapping[str, Any], *keys: str) -> _Kw:
    return {k: v for k, v in kwargs.items() if k not in keys}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name}={value!r} is not a positive whole number",
                                   hint=f"pass {name} as an int >= 1")
    return value


# --- ModelCheckpoint ------------------------------------------------------------------------

def _ckpt_period(kw: _Kw, moved: _Kw, major: int) -> _Step:
    if "period" not in kw:
        return _Step(kw, moved, [])
    n = _positive_int("period", kw["period"])
    if kw.get("save_freq", "epoch") != "epoch":
        raise InvalidArgumentError(
            f"period={n} (every {n} epochs) and save_freq={kw['save_freq']!r} (batches) conflict",
            hint="keep one: save_every_epochs=N for epochs, or save_freq=N for batches")
    note = Note("warning", f"ModelCheckpoint(period={n}) -> save_every_epochs={n}: every {n} epochs "
                           "(not save_freq, which counts batches)"
                + ("; Keras 3 has no period and raises TypeError" if major >= 3 else ""))
    return _Step({**_without(kw, "period"), "save_every_epochs": n}, moved, [note])


def _ckpt_save_freq(kw: _Kw, moved: _Kw, major: int) -> _Step:
    value = kw.get("save_freq", "epoch")
    if value != "epoch":
        _positive_int("save_freq", value)
        return _Step(kw, moved, [Note("info", f"save_freq={value} kept: a save every {value} batches")])
    return _Step(kw, moved, [])


def _drop_on_keras3(name: str, why: str) -> RuleFn:
    def rule(kw: _Kw, moved: _Kw, major: int) -> _Step:
        if name not in kw or major < 3:
            return _Step(kw, moved, [])
        return _Step(_without(kw, name), moved, [Note("warning", f"ModelCheckpoint({name}=...) dropped: {why}")])
    return rule


# --- optimizers -----------------------------------------------------------------------------

def _opt_lr(kw: _Kw, moved: _Kw, major: int) -> _Step:
    if "lr" not in kw:
        return _Step(kw, moved, [])
    lr = kw["lr"]
    if "learning_rate" in kw and kw["learning_rate"] != lr:
        raise InvalidArgumentError(f"both lr={lr!r} and learning_rate={kw['learning_rate']!r} given",
                                   hint="pass only learning_rate")
    note = Note("warning", f"lr={lr!r} -> learning_rate={lr!r} (TF 2.11-2.15 and tf-keras new optimizers "
                           "ignore lr= silently; Keras 3 raises ValueError)")
    return _Step({**_without(kw, "lr"), "learning_rate": lr}, moved, [note])


def _opt_decay(kw: _Kw, moved: _Kw, major: int) -> _Step:
    if "decay" not in kw:
        return _Step(kw, moved, [])
    decay = kw["decay"]
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay < 0:
        raise InvalidArgumentError(f"decay={decay!r} is not a number >= 0", hint="pass decay as a float")
    rest = _without(kw, "decay")
    if decay == 0:
        return _Step(rest, moved, [Note("info", "decay=0 dropped (no decay)")])
    lr = kw.get("learning_rate")
    if lr is None:
        raise InvalidArgumentError(
            f"decay={decay!r} needs an explicit learning rate (the default differs between versions)",
            hint="pass learning_rate= (or lr=) with decay=")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise InvalidArgumentError(f"decay={decay!r} cannot be combined with the schedule {lr!r}",
                                   hint="fold the decay into the schedule yourself")
    schedule = {"class_name": "InverseTimeDecay",
                "config": {"initial_learning_rate": float(lr), "decay_steps": 1,
                           "decay_rate": float(decay), "staircase": False}}
    note = Note("warning", f"decay={decay!r} -> learning_rate=InverseTimeDecay(initial_learning_rate={lr!r}, "
                           f"decay_steps=1, decay_rate={decay!r}): lr / (1 + decay * iterations) as in Keras 2; "
                           "build it with keras.optimizers.schedules.deserialize")
    return _Step({**rest, "learning_rate": schedule}, moved, [note])


def _opt_epsilon_none(kw: _Kw, moved: _Kw, major: int) -> _Step:
    if "epsilon" not in kw or kw["epsilon"] is not None:
        return _Step(kw, moved, [])
    return _Step({**kw, "epsilon": 1e-7}, moved,
                 [Note("info", "epsilon=None -> epsilon=1e-07 (Keras 2 used K.epsilon(), 1e-07 by default)")])


# --- fit ------------------------------------------------------------------------------------

_DATASET_ARGS = ("workers", "use_multiprocessing", "max_queue_size")


def _fit_dataset_args(kw: _Kw, moved: _Kw, major: int) -> _Step:
    present = [k for k in _DATASET_ARGS if k in kw]
    if major < 3 or not present:
        return _Step(kw, moved, [])
    taken = {k: kw[k] for k in present}
    listed = ", ".join(f"{k}={v!r}" for k, v in taken.items())
    note = Note("warning", f"fit({listed}) moved to keras.utils.PyDataset({listed}): Keras 3 fit() raises "
                           "TypeError on them; they only act when x is a PyDataset")
    return _Step(_without(kw, *present), {**moved, **taken}, [note])


def _fit_nb_epoch(kw: _Kw, moved: _Kw, major: int) -> _Step:
    if "nb_epoch" not in kw:
        return _Step(kw, moved, [])
    if "epochs" in kw and kw["epochs"] != kw["nb_epoch"]:
        raise InvalidArgumentError(f"both nb_epoch={kw['nb_epoch']!r} and epochs={kw['epochs']!r} given",
                                   hint="pass only epochs")
    return _Step({**_without(kw, "nb_epoch"), "epochs": kw["nb_epoch"]}, moved,
                 [Note("info", f"nb_epoch={kw['nb_epoch']!r} -> epochs={kw['nb_epoch']!r}")])


def _refuse_samples(name: str, new: str) -> RuleFn:
    def rule(kw: _Kw, moved: _Kw, major: int) -> _Step:
        if name in kw:
            raise InvalidArgumentError(
                f"{name}={kw[name]!r} counts samples; Keras 2+ counts steps ({new}) and the batch "
                "size needed to convert is not known here",
                hint=f"pass {new}=ceil({name} / batch_size) instead")
        return _Step(kw, moved, [])
    return rule


_K3_GONE = "Keras 3 ModelCheckpoint has no such argument (TypeError)"

#: The ordered table. ``target``: ModelCheckpoint | optimizer | fit.
RULES: tuple[Rule, ...] = (
    Rule("ModelCheckpoint", "period", "real in Keras <= 2.3 / TF <= 1.13; deprecated but works in tf.keras "
         "2.x and tf-keras; TypeError in Keras 3", _ckpt_period),
    Rule("ModelCheckpoint", "save_freq", "'epoch' or int batches: TF 1.14+, tf.keras 2.x, tf-keras, Keras 3",
         _ckpt_save_freq),
    Rule("ModelCheckpoint", "options", "tf.keras 2.3+ / tf-keras; absent in Keras 3",
         _drop_on_keras3("options", _K3_GONE)),
    Rule("ModelCheckpoint", "load_weights_on_restart", "tf.keras 1.15-2.x keyword; absent in Keras 3 "
         "(ckptcompat.resume restores instead)", _drop_on_keras3("load_weights_on_restart", _K3_GONE)),
    Rule("optimizer", "lr", "the only name in Keras <= 2.2; warning in OptimizerV2 / legacy; silently "
         "ignored by TF 2.11-2.15 and tf-keras new optimizers; ValueError in Keras 3", _opt_lr),
    Rule("optimizer", "decay", "Keras <= 2.x and legacy optimizers; ValueError in TF 2.11-2.15 new "
         "optimizers; warned and ignored in Keras 3", _opt_decay),
    Rule("optimizer", "epsilon", "None meant K.epsilon() in Keras <= 2.3", _opt_epsilon_none),
    Rule("fit", "workers/use_multiprocessing/max_queue_size", "fit() keywords in Keras 2 / tf.keras / "
         "tf-keras; Keras 3: keras.utils.PyDataset keywords, TypeError in fit()", _fit_dataset_args),
    Rule("fit", "nb_epoch", "Keras 1 name of epochs", _fit_nb_epoch),
    Rule("fit", "samples_per_epoch", "Keras 1 fit_generator, counted samples",
         _refuse_samples("samples_per_epoch", "steps_per_epoch")),
    Rule("fit", "nb_val_samples", "Keras 1 fit_generator, counted samples",
         _refuse_samples("nb_val_samples", "validation_steps")),
)


def _translate(target: str, kwargs: Mapping[str, Any], keras_major: int) -> Translation:
    kw, moved, notes = dict(kwargs), {}, []
    for rule in RULES:
        if rule.target == target:
            kw, moved, new = rule.apply(kw, moved, keras_major)
            notes.extend(new)
    return Translation(kw, moved, tuple(notes))


def running_keras_major() -> int:
    """The major version of the Keras that user code gets here (2 or 3), by
    :func:`ckptcompat.runtime.detect` (no framework import); 3 when TensorFlow is not installed
    (what ``pip install tensorflow`` gives today), logged at DEBUG."""
    from ckptcompat import runtime
    from ckptcompat.errors import MissingDependencyError

    try:
        major: int = runtime.flavour().KERAS_MAJOR  # the flavour module, not Keras itself
        return major
    except MissingDependencyError:
        logger.debug("no TensorFlow installed: translating arguments for Keras 3")
        return 3


def _major(keras_major: int | None) -> int:
    return running_keras_major() if keras_major is None else int(keras_major)


def checkpoint_kwargs(*, keras_major: int | None = None, **kwargs: Any) -> Translation:
    """ModelCheckpoint keywords for Keras ``keras_major`` (``period`` -> ``save_every_epochs``);
    ``keras_major=None``: the running Keras (:func:`running_keras_major`)."""
    return _translate("ModelCheckpoint", kwargs, _major(keras_major))


def optimizer_kwargs(*, keras_major: int | None = None, **kwargs: Any) -> Translation:
    """Optimizer keywords: ``lr`` -> ``learning_rate``, ``decay`` -> InverseTimeDecay description;
    ``keras_major=None``: the running Keras."""
    return _translate("optimizer", kwargs, _major(keras_major))


def fit_kwargs(*, keras_major: int | None = None, **kwargs: Any) -> Translation:
    """``fit`` keywords; on Keras 3 ``workers``/... go to ``moved`` (for ``keras.utils.PyDataset``),
    on Keras 2 they stay. ``keras_major=None``: the running Keras (:func:`running_keras_major`)."""
    return _translate("fit", kwargs, _major(keras_major))


#: old Model method -> Keras 2.1+/3 one (deprecated in tf.keras 2.1-2.15 and tf-keras; gone in Keras 3)
METHOD_RENAMES: dict[str, str] = {
    "fit_generator": "fit", "evaluate_generator": "evaluate", "predict_generator": "predict",
}


def method_name(name: str, keras_major: int | None = None) -> tuple[str, list[Note]]:
    """``fit_generator`` -> ``fit`` (and the other ``*_generator`` methods), with a note
    (``keras_major=None``: the running Keras)."""
    new = METHOD_RENAMES.get(name)
    if new is None:
        return name, []
    gone = "removed in Keras 3" if _major(keras_major) >= 3 else "deprecated since tf.keras 2.1"
    return new, [Note("info", f"model.{name}(...) -> model.{new}(...), which takes generators ({gone})")]


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)", text)
    if not match:
        raise InvalidArgumentError(f"cannot read a version from {text!r}", hint="pass e.g. '2.15.1'")
    return int(match.group(1)), int(match.group(2))


def lr_ignored_by(tf_version: str, *, tf_keras: bool = False) -> bool:
    """Whether ``tf.keras.optimizers.Adam(lr=x)`` (any new optimizer) silently keeps the default.

    True for TF 2.11-2.15 (new optimizers: ``lr`` popped, an absl log warning, value ignored;
    run on 2.12.1 and 2.15.1) and for TF 2.16+ with ``tf_keras=True`` (tf-keras, run on 2.21).
    False before 2.11 (OptimizerV2 honours it with a warning) and on Keras 3 (``ValueError``).
    """
    version = _version(tf_version)
    if (2, 11) <= version < (2, 16):
        return True
    return version >= (2, 16) and tf_keras


#: ``{epoch}`` in ModelCheckpoint file paths: (first Keras version, last or None, rendered value)
EPOCH_IN_FILEPATH: tuple[tuple[tuple[int, int, int], tuple[int, int, int] | None, str], ...] = (
    ((0, 0, 0), (2, 0, 8), "epoch index, 0-based (filepath.format(epoch=epoch))"),
    ((2, 0, 9), None, "epoch number, 1-based (filepath.format(epoch=epoch + 1)); {batch} too"),
)


def filepath_epoch_base(keras_version: str) -> int:
    """0 when ``keras_version`` renders ``{epoch}`` 0-based (Keras <= 2.0.8), else 1."""
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", keras_version)
    if not match:
        raise InvalidArgumentError(f"cannot read a Keras version from {keras_version!r}",
                                   hint="pass e.g. '2.0.8'")
    version = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    return 0 if version <= EPOCH_IN_FILEPATH[0][1] else 1  # type: ignore[operator]


def log_notes(translation: Translation | list[Note] | tuple[Note, ...], log: logging.Logger | None = None) -> None:
    """Write each note as one log line, at WARNING or INFO."""
    notes = translation.notes if isinstance(translation, Translation) else translation
    for note in notes:
        (log or logger).log(logging.WARNING if note.level == "warning" else logging.INFO, "%s", note.text)
