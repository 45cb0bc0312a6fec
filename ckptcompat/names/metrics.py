"""Canonical metric and log-key names across Keras generations.

The rules, in the order :func:`canonical_metric` applies them (``docs/names.md`` has the table):

1. A leading ``val_`` is kept aside and put back at the end.
2. Short spellings become the spelled-out one: ``acc`` -> ``accuracy``, ``ce`` ->
   ``crossentropy``, ``mse``/``mae``/``mape``/``msle`` -> ``mean_squared_error`` ...; ``lr`` ->
   ``learning_rate`` only as the whole key (never as a suffix, never after ``val_``).
3. Keras auto-numbering is dropped: ``auc_1`` -> ``auc``, ``val_precision_2`` ->
   ``val_precision``, ``out1_auc_1`` -> ``out1_auc``. Only ``<base>_<n>`` where ``<base>`` is (or
   ends with ``_`` + ) a metric whose class has no default name and so is numbered by Keras
   (:data:`AUTO_NUMBERED`, the same list on tf.keras 2.12-2.15, tf-keras 2.21 and Keras
   3.0-3.15, checked by instantiating each class twice), and ``<n>`` is ``1``, ``2``, ... without
   a leading zero. ``dense_1``, ``top_5``, ``f1``, ``mean_1`` (``Mean`` is named ``mean`` and never
   numbered), ``recall_at_5``, ``auc_01`` are left alone. A metric the user explicitly named
   ``precision_3`` cannot be told from an auto-numbered one and is treated as numbered.
4. Multi-output prefixes are kept: ``out1_acc`` -> ``out1_accuracy`` (the short-spelling rule
   applied to the part after the last ``_``), except for Keras' own full names such as
   ``categorical_accuracy``.

Pure Python: no framework import.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from ckptcompat._compat import removeprefix
from ckptcompat.errors import InvalidArgumentError, TemplateKeyError

__all__ = [
    "AUTO_NUMBERED",
    "SHORT_SPELLINGS",
    "AUTO_MODE_RULES",
    "canonical_metric",
    "aliases",
    "normalize_logs",
    "metric_direction",
    "native_auto_mode",
    "format_filepath",
]

#: short spelling -> spelled-out canonical name (metric part of a key).
SHORT_SPELLINGS: dict[str, str] = {
    "acc": "accuracy",
    "ce": "crossentropy",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
}
_LOG_ONLY = {"lr": "learning_rate"}  # whole-key aliases that are not metrics
_SHORT_OF = {v: k for k, v in {**SHORT_SPELLINGS, **_LOG_ONLY}.items()}

#: metric names Keras numbers when a second instance is created: ``auc``, ``auc_1``, ...
AUTO_NUMBERED: tuple[str, ...] = (
    "auc", "precision", "recall", "true_positives", "false_positives", "true_negatives",
    "false_negatives", "precision_at_recall", "recall_at_precision", "sensitivity_at_specificity",
    "specificity_at_sensitivity", "io_u", "mean_io_u", "binary_io_u", "one_hot_io_u",
    "one_hot_mean_io_u", "mean_relative_error", "mean_metric_wrapper",
)
_NUMBERED = re.compile(r"^(?P<stem>(?:.+_)?(?:" + "|".join(sorted(AUTO_NUMBERED, key=len, reverse=True))
                       + r"))_(?P<n>[1-9][0-9]*)$")
# Keras' own names that end in a short-spelling's long form: never multi-output prefixes.
_KERAS_FULL_NAMES = frozenset({
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "root_mean_squared_error",
})

_MAX = ("accuracy", "auc", "precision", "recall", "true_positives", "true_negatives",
        "precision_at_recall", "recall_at_precision", "sensitivity_at_specificity",
        "specificity_at_sensitivity", "io_u", "f1_score", "fbeta_score", "r2_score",
        "cosine_similarity", "pearson_correlation", "concordance_correlation", "fmeasure")
_MIN = ("loss", "crossentropy", "mean_squared_error", "mean_absolute_error",
        "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "false_positives",
        "false_negatives", "mean_relative_error", "hinge", "kl_divergence",
        "kullback_leibler_divergence", "kld", "poisson", "logcosh", "log_cosh_error", "error")


def _split_val(name: str) -> tuple[str, str]:
    return ("val_", name[4:]) if name.startswith("val_") and len(name) > 4 else ("", name)


def _auto_number(name: str) -> int:
    """The Keras auto-number of ``name`` (``auc_2`` -> 2), 0 when it is not numbered."""
    match = _NUMBERED.match(_split_val(name)[1])
    return int(match.group("n")) if match else 0


def _canonical_bare(bare: str) -> str:
    if bare in SHORT_SPELLINGS:
        return SHORT_SPELLINGS[bare]
    match = _NUMBERED.match(bare)
    if match:
        return _canonical_bare(match.group("stem"))
    head, sep, tail = bare.rpartition("_")
    if sep and head and tail in SHORT_SPELLINGS:
        return f"{head}_{SHORT_SPELLINGS[tail]}"
    return bare


def canonical_metric(name: str) -> str:
    """Canonical spelling of a logged key (module docstring: the rules); unknown names unchanged."""
    if name in _LOG_ONLY:
        return _LOG_ONLY[name]
    prefix, bare = _split_val(name)
    return prefix + _canonical_bare(bare)


def _short_forms(canonical: str) -> set[str]:
    if canonical in _LOG_ONLY.values():
        return {_SHORT_OF[canonical]}
    prefix, bare = _split_val(canonical)
    if bare in _SHORT_OF:
        return {prefix + _SHORT_OF[bare]}
    out = set()
    for long, short in _SHORT_OF.items():
        if long in _LOG_ONLY.values():
            continue
        head = bare[: -len(long) - 1]
        if bare.endswith("_" + long) and head and bare not in _KERAS_FULL_NAMES:
            out.add(f"{prefix}{head}_{short}")
    return out


def aliases(name: str) -> set[str]:
    """Every spelling under which ``name``'s value may be looked up, ``name`` included.

    ``aliases("val_acc") == {"val_acc", "val_accuracy"}``, ``aliases("auc_1") == {"auc_1", "auc"}``,
    ``aliases("lr") == {"lr", "learning_rate"}``. Numbered spellings are never invented:
    ``aliases("auc") == {"auc"}``.
    """
    canonical = canonical_metric(name)
    return {name, canonical} | _short_forms(canonical)


def normalize_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``logs`` plus every alias spelling of its keys (``logs`` is not changed).

    A key the model really logged is never overwritten. When several logged keys share an
    alias (``auc_1`` and ``auc_2`` both give ``auc``), the alias takes the value of the one
    with the lowest Keras number (an unnumbered key counts as 0), i.e. the metric created
    first; equal numbers go by the order of ``logs``. So with ``auc`` and ``auc_1`` logged
    (two AUC metrics) both keep their own values and ``auc`` is the first metric's.
    """
    out = dict(logs)
    chosen: dict[str, tuple[tuple[int, int], Any]] = {}
    for order, (key, value) in enumerate(logs.items()):
        rank = (_auto_number(key), order)
        for alias in aliases(key):
            if alias in logs:
                continue
            if alias not in chosen or rank < chosen[alias][0]:
                chosen[alias] = (rank, value)
    for alias, (_, value) in chosen.items():
        out[alias] = value
    return out


def _direction_of_bare(bare: str) -> str | None:
    for names, direction in ((_MAX, "max"), (_MIN, "min")):
        for known in names:
            if bare == known or bare.endswith("_" + known):
                return direction
    return None


def metric_direction(name: str) -> str | None:
    """``"max"`` / ``"min"`` for a logged key (``val_`` / output prefixes and numbers ignored).

    One meaning on every version (what ``mode="auto"`` should pick); ``None`` when unknown
    (``learning_rate``, user metrics): the caller must then ask for an explicit mode.
    """
    canonical = canonical_metric(name)
    if canonical in _LOG_ONLY.values():
        return None
    return _direction_of_bare(_split_val(canonical)[1])


# --- what each native callback picks for mode="auto" -------------------------------------

def _acc_in(monitor: str) -> str | None:
    return "max" if "acc" in monitor else "min"


def _acc_in_or_fmeasure(monitor: str) -> str | None:
    return "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"


def _ends_acc_accuracy_auc(monitor: str) -> str | None:
    return "max" if monitor.endswith(("acc", "accuracy", "auc")) else "min"


def _metric_object(monitor: str) -> str | None:
    # Keras 3 asks the compiled metric object's `_direction` ("loss" -> min); no such
    # metric -> ValueError (returned as None). Approximated by our table for built-in metrics.
    return "min" if removeprefix(monitor, "val_") == "loss" else metric_direction(monitor)


#: (callback, first Keras version, first version no longer concerned or None, rule, rule text)
AUTO_MODE_RULES: tuple[tuple[str, tuple[int, int], tuple[int, int] | None, Any, str], ...] = (
    ("ModelCheckpoint", (1, 0), (3, 11), _acc_in_or_fmeasure, "'acc' in monitor or starts 'fmeasure' -> max"),
    ("ModelCheckpoint", (3, 11), None, _metric_object, "compiled metric's direction; unknown -> ValueError"),
    ("EarlyStopping", (1, 0), (2, 7), _acc_in, "'acc' in monitor -> max"),
    ("EarlyStopping", (2, 7), (3, 0), _ends_acc_accuracy_auc, "ends with acc/accuracy/auc -> max"),
    ("EarlyStopping", (3, 0), None, _metric_object, "compiled metric's direction; unknown -> ValueError"),
    ("ReduceLROnPlateau", (1, 0), (3, 11), _acc_in, "'acc' in monitor -> max"),
    ("ReduceLROnPlateau", (3, 11), None, _metric_object, "compiled metric's direction; unknown -> ValueError"),
)


def _major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    if not match:
        raise InvalidArgumentError(f"cannot read a Keras version from {version!r}",
                                   hint="pass a version such as '2.15.0' or '3.6.0'")
    return int(match.group(1)), int(match.group(2))


def native_auto_mode(callback: str, monitor: str, keras_version: str) -> str | None:
    """The direction Keras ``keras_version``'s own ``callback`` picks for ``mode="auto"``.

    ``None`` means that version raises ``ValueError`` (Keras 3 with an unknown metric). Versions
    are Keras versions (standalone 1.x/2.x, tf.keras = TF version from 2.6, tf-keras, Keras 3).
    """
    version = _major_minor(keras_version)
    for name, first, stop, rule, _ in AUTO_MODE_RULES:
        if name == callback and first <= version and (stop is None or version < stop):
            return rule(monitor)  # type: ignore[no-any-return]
    raise InvalidArgumentError(f"no auto-mode rule for callback {callback!r}",
                               hint="one of ModelCheckpoint, EarlyStopping, ReduceLROnPlateau")


# --- ModelCheckpoint-style file names ------------------------------------------------------

def format_filepath(template: str, epoch: int, logs: Mapping[str, Any], *,
                    batch: int | None = None) -> str:
    """Render a ModelCheckpoint file-path template the way Keras 2.0.9+ and 3 do, any spelling.

    ``epoch`` (and ``batch``) are the 0-based indices Keras passes to ``on_epoch_end`` /
    ``on_train_batch_end``; ``{epoch}`` (``{batch}``) render them 1-based. Every field may use
    any alias of a logged key (:func:`normalize_logs`): ``{val_acc:.2f}`` works when only
    ``val_accuracy`` was logged. A field nothing satisfies raises :class:`TemplateKeyError`
    listing the logged keys; a bad format spec raises :class:`InvalidArgumentError`.
    """
    values = normalize_logs(logs)
    values["epoch"] = epoch + 1
    if batch is not None:
        values["batch"] = batch + 1
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InvalidArgumentError(f"file-path template {template!r} is malformed: {exc}",
                                   hint="check the braces; write a literal brace as '{{' or '}}'") from exc
    available = sorted(set(logs) | {"epoch"} | ({"batch"} if batch is not None else set()))
    for field in fields:
        key = re.split(r"[.\[]", field, maxsplit=1)[0]
        if key not in values:
            what = "a positional field" if key == "" or key.isdigit() else f"key {key!r}"
            raise TemplateKeyError(
                f"file-path template {template!r} uses {what}, which no logged key or alias "
                f"provides; available: {', '.join(available)}",
                key=key, available=available,
                hint="use one of the available names (val_ keys exist only with validation data)")
    try:
        return template.format(**values)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidArgumentError(f"cannot render file-path template {template!r}: {exc}",
                                   hint="check each field's format spec against its value") from exc
