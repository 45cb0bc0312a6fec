"""Epoch, step and metrics from checkpoint file names (used by :mod:`ckptcompat.discovery`).

Two ways: :func:`parse_with_pattern` inverts the ``ModelCheckpoint`` file-path template the
user gave (exact); :func:`parse_generic` recognises common shapes without one (rules in
``docs/discovery.md``; each result says whether it is ambiguous). Pure Python.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from ckptcompat.errors import InvalidArgumentError
from ckptcompat.names.metrics import metric_direction

__all__ = ["NameInfo", "CHECKPOINT_SUFFIXES", "strip_suffix", "parse_with_pattern", "parse_generic",
           "natural_key", "unnamed_values"]

#: file-name endings of checkpoint files, longest first (stripped before parsing the name)
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".weights.h5", ".hdf5", ".keras", ".ckpt", ".h5", ".hdf")
_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_MAX_EPOCH_DIGITS = 5  # a 6+ digit number is more likely a date/time stamp than an epoch


@dataclass(frozen=True)
class NameInfo:
    """What a file name says. ``epoch`` = completed epochs; ``ambiguous`` explains a guess."""

    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ambiguous: str | None = None
    save_counter: bool = False  # "-N" of an object-based bundle (tf.train.Checkpoint.save)


def strip_suffix(name: str) -> str:
    """``name`` without its checkpoint suffix (``model-03.weights.h5`` -> ``model-03``)."""
    lower = name.lower()
    for suffix in CHECKPOINT_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders embedded numbers numerically (``w.9`` < ``w.10``)."""
    return tuple((0, int(tok), "") if tok.isdigit() else (1, 0, tok)
                 for tok in re.split(r"(\d+)", name) if tok)


# ---------------------------------------------------------------- with the user's template
def _field_regex(spec: str, group: str) -> str:
    conv = spec[-1:] if spec[-1:].isalpha() else ""
    if conv in ("d", "n"):
        return rf"(?P<{group}>[-+]?\d+)"
    precision = re.search(r"\.(\d+)", spec)
    if conv in ("f", "F", "%") and precision:
        digits = int(precision.group(1))
        body = rf"[-+]?\d+\.\d{{{digits}}}" if digits else r"[-+]?\d+"
        return rf"(?P<{group}>{body}|[-+]?(?:nan|inf|NAN|INF))%?" if conv == "%" else \
            rf"(?P<{group}>{body}|[-+]?(?:nan|inf|NAN|INF))"
    return rf"(?P<{group}>{_FLOAT})"


def _compile_pattern(pattern: str) -> tuple[re.Pattern[str], dict[str, str]]:
    template = pattern.replace("\\", "/").rsplit("/", 1)[-1]
    parts: list[str] = []
    groups: dict[str, str] = {}
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidArgumentError(f"file-path template {pattern!r} is malformed: {exc}",
                                   hint="give the filepath you passed to ModelCheckpoint") from exc
    for literal, name, spec, _conv in parsed:
        parts.append(re.escape(literal))
        if name is None:
            continue
        key = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not key or key.isdigit():
            raise InvalidArgumentError(f"file-path template {pattern!r} has a positional field",
                                       hint="ModelCheckpoint templates use named fields such as {epoch:02d}")
        if key in groups.values():
            parts.append(f"(?P={next(g for g, k in groups.items() if k == key)})")
            continue
        group = f"g{len(groups)}"
        groups[group] = key
        parts.append(_field_regex(spec or "", group))
    if "epoch" not in groups.values():
        raise InvalidArgumentError(f"file-path template {pattern!r} has no {{epoch}} field",
                                   hint="without {epoch} in the name the epoch cannot come from it")
    return re.compile("".join(parts), re.IGNORECASE), groups


def parse_with_pattern(name: str, pattern: str) -> NameInfo | None:
    """Invert a ModelCheckpoint template; ``None`` when ``name`` does not match it.

    ``{epoch}`` is 1-based in the name (Keras >= 2.0.9 renders ``epoch + 1``), which equals
    completed epochs; with a ``{batch}`` field the save happened inside epoch ``{epoch}``, so
    completed epochs = ``{epoch} - 1`` and step = ``{batch}``.
    """
    regex, groups = _compile_pattern(pattern)
    match = regex.fullmatch(name)
    if match is None:
        return None
    values: dict[str, str] = {key: match.group(g) for g, key in groups.items()}
    epoch = int(values.pop("epoch"))
    step = 0
    if "batch" in values:
        step = int(values.pop("batch"))
        epoch -= 1
    metrics = {key: float(text.rstrip("%")) for key, text in values.items()}
    return NameInfo(epoch=max(epoch, 0), step=step, metrics=metrics)


# ---------------------------------------------------------------- without a template
_KEYWORD = re.compile(r"(?<![A-Za-z])(?:epochs?|ep)[_\-.=]?(\d+)(?!\d)", re.IGNORECASE)
_STEP_KEYWORD = re.compile(r"(?<![A-Za-z])(?:step|iter|iteration|batch)s?[_\-.=]?(\d+)(?!\d)",
                           re.IGNORECASE)
# numbers are tokens; a word absorbs the digits glued to it (resnet50, v1, hdf5, weights2)
_TOKEN = re.compile(r"(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|[A-Za-z]+\d*|.")
_TRAILING_COUNTER = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")
_NAMED_METRIC = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_]*?)[_\-=:]?(?P<value>[-+]?\d+\.\d+(?:[eE][-+]?\d+)?)")


def _named_metrics(stem: str) -> dict[str, float]:
    """``val_loss_0.25`` / ``val_acc0.94`` / ``loss=1.5`` pieces whose name is a known metric."""
    out: dict[str, float] = {}
    for piece in re.split(r"(?<=\d)[-.](?=[A-Za-z])|(?<=[0-9])_(?=[A-Za-z])|^[^A-Za-z]*", stem):
        for match in _NAMED_METRIC.finditer(piece):
            name = match.group("name").strip("_-")
            tail = re.split(r"[-.]", name)[-1]
            if tail and metric_direction(tail) is not None:
                out[tail] = float(match.group("value"))
    return out


def parse_generic(name: str, *, bundle: str | None = None) -> NameInfo:
    """Recognise common checkpoint name shapes (see ``docs/discovery.md``).

    ``bundle`` is ``"name_based"`` / ``"object_based"`` for TensorFlow bundle prefixes (their
    trailing ``-N`` is the TF1 global step / the tf.train.Checkpoint save counter), else ``None``.
    """
    stem = strip_suffix(name)
    metrics = _named_metrics(stem)
    if bundle is not None:
        counter = _TRAILING_COUNTER.match(name)
        if counter and bundle == "name_based":
            return NameInfo(global_step=int(counter.group("n")), metrics=metrics)
        if counter and bundle == "object_based":
            n = int(counter.group("n"))
            return NameInfo(epoch=n, step=0, metrics=metrics, save_counter=True,
                            ambiguous="'-N' of a tf.train.Checkpoint/CheckpointManager name counts "
                                      "saves, which equals completed epochs only when it saved "
                                      "once per epoch")
    keyword = _KEYWORD.search(stem)
    step_kw = _STEP_KEYWORD.search(stem)
    if keyword:
        step = int(step_kw.group(1)) if step_kw else 0
        return NameInfo(epoch=int(keyword.group(1)), step=step, metrics=metrics)
    if step_kw:
        return NameInfo(global_step=int(step_kw.group(1)), metrics=metrics,
                        ambiguous="only a step/iteration number in the name; the epoch is unknown")
    numbers = [m.group("num") for m in _TOKEN.finditer(stem) if m.group("num")]
    ints = [(i, t) for i, t in enumerate(numbers) if t.isdigit()]
    if not ints:
        return NameInfo(metrics=metrics)
    index, text = ints[0]
    if len(text.lstrip("0") or "0") > _MAX_EPOCH_DIGITS:
        return NameInfo(metrics=metrics, ambiguous=f"{text} looks like a date or time stamp, "
                                                   "not an epoch; the epoch is unknown")
    floats_after = [t for t in numbers[index + 1:] if not t.isdigit()]
    reason = None
    if index > 0:
        reason = f"the first number in the name is not an integer; took {text} as the epoch"
    elif not floats_after:
        others = [t for _, t in ints[1:]]
        reason = (f"a lone number {text} in the name, taken as the epoch" if not others else
                  f"several integers ({', '.join([text, *others])}); took the first as the epoch")
    return NameInfo(epoch=int(text), step=0, metrics=metrics, ambiguous=reason)



def unnamed_values(name: str) -> list[float]:
    """The decimal numbers in ``name`` that no metric name labels, in order: ``0.42`` of
    ``weights-improvement-05-0.42.hdf5`` (the template ``{epoch:02d}-{val_acc:.2f}`` is not in
    the name, so which metric it is stays unknown; ``--pattern`` names it)."""
    stem = strip_suffix(name)
    named = list(_named_metrics(stem).values())
    out = []
    for match in _TOKEN.finditer(stem):
        text = match.group("num")
        if text and not text.isdigit():
            value = float(text)
            if value in named:
                named.remove(value)
            else:
                out.append(value)
    return out
