"""Pick the checkpoint to resume from, read it and merge its sidecars (used by resume)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat._arrays import shape_fits
from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError, IncompatibleStateError
from ckptcompat.names.variables import respell
from ckptcompat.state import Progress, TrainingState

__all__ = ["LOOKED_FOR", "pick_and_read", "merge", "remap_by_structure", "keras3_file_paths", "through_labels"]

log = logging.getLogger(__name__)

LOOKED_FOR = ("a ckptcompat store (ckptcompat.json), Keras files (.h5 .hdf5 .keras .weights.h5), "
              "TensorFlow bundles (<prefix>.index + .data-*, a 'checkpoint' state file) and "
              "SavedModel folders")


def _verify_store_entry(cand: Any) -> None:
    """Checksum the chosen store checkpoint (and only it: resume time must not grow with the
    number of checkpoints); damage raises so that the caller falls back to the next one."""
    from ckptcompat.errors import CorruptCheckpointError
    from ckptcompat.store import CheckpointStore
    from ckptcompat.store.local_view import materialize

    materialize(cand.path)  # a store at a URL: only the checkpoint picked is downloaded
    store = CheckpointStore(Path(cand.path).parent)
    if not store.is_intact(store.get(cand.store_id), deep=True):
        raise CorruptCheckpointError("files do not match the manifest's sha256", path=cand.path,
                                     hint="run `ckptcompat verify` on the folder")


def _read_unchecked(target: Path, format: str | None, **options: Any) -> TrainingState:
    """The format's reading of ``target`` before :func:`~ckptcompat._plausible.check_state`: a
    store's model file may hold a value that its state.json corrects (earlier ckptcompat wrote a
    scheduled Keras 3 optimizer's rate as NaN into the ``.keras``; state.json holds the schedule)."""
    from ckptcompat import formats
    from ckptcompat.store.local_view import localize

    local = localize(target)
    return formats.get(format or formats.detect(local)).read(local, **options)


#: formats whose reader can leave the optimizer part out (``include_optimizer=False``)
_OPTIMIZER_OPTIONAL = ("keras_h5", "keras_zip")


class _OptimizerMisfit(IncompatibleStateError):
    """A Keras file whose weights read and whose optimizer variables fit no layout: a layout the
    reader does not know far more often than damage, so resume raises it (with the way on) rather
    than fall back to an older checkpoint, which would silently drop the run's latest phase."""


def _read_weights_only(target: Path, format: str | None, exc: IncompatibleStateError,
                       optimizer: str) -> TrainingState:
    """A Keras file whose optimizer variables fit no layout its configs describe: without them
    when ``optimizer="reset"``, else :class:`_OptimizerMisfit` with that way on."""
    from ckptcompat import formats
    from ckptcompat.store.local_view import localize

    name = format or formats.detect(localize(target))
    if name not in _OPTIMIZER_OPTIONAL:
        raise exc
    if optimizer != "reset":
        raise _OptimizerMisfit(
            "the weights can be read, the optimizer variables fit no layout the file's configs describe; "
            "nothing was assigned", exc.mismatches or [exc.message], path=target,
            hint='pass optimizer="reset" to restore the weights and the progress with a fresh optimizer, '
                 "or resume an older checkpoint by its path (`ckptcompat inspect` lists what the file "
                 "holds)") from exc
    log.warning("%s: optimizer=\"reset\": the optimizer variables, which fit no layout the file's configs "
                "describe, are not read (%s)", target, exc.message.splitlines()[0])
    return _read_unchecked(target, name, include_optimizer=False)


def _read_one(cand: Any, optimizer: str = "restore") -> TrainingState:
    from ckptcompat.formats import sidecar

    if cand.store_id is not None:
        _verify_store_entry(cand)
    target = cand.file or cand.path
    try:
        state = _read_unchecked(target, cand.format)  # checked below, once state.json has filled it in
    except IncompatibleStateError as exc:
        state = _read_weights_only(target, cand.format, exc, optimizer)
    if cand.store_id is None:  # a weights-only .h5: the model.to_json() document beside it
        from ckptcompat.formats.keras_h5.architecture_file import with_architecture

        state, _ = with_architecture(state, Path(target))
    if cand.state_json is not None and Path(cand.state_json) != Path(target):
        state = merge(state, sidecar.read(cand.state_json), prefer_extra=True)
    if cand.sidecar is not None:
        try:
            legacy = sidecar.read_legacy_sidecar(cand.sidecar)
        except CkptCompatError as exc:
            log.warning("%s: sidecar not used: %s", cand.sidecar, exc)
        else:
            state = merge(state, legacy, prefer_extra=False)
    from ckptcompat._plausible import check_state

    return check_state(state, target)


def pick_and_read(path: str | os.PathLike[str], which: str, *, monitor: str | None, mode: str | None,
                  pattern: str | None, optimizer: str = "restore") -> tuple[Any, TrainingState]:
    """The selected candidate and its state; falls back past checkpoints that fail to read
    (not past a Keras file whose optimizer part does not fit: :func:`_read_weights_only`)."""
    from ckptcompat.discovery import find_checkpoints, select

    # no store check here: the chosen store checkpoint is checksummed in _read_one, and a
    # damaged one makes the loop below fall back to the next
    candidates = find_checkpoints(path, pattern=pattern, deep=None)
    if not candidates:
        raise CheckpointNotFoundError(f"no checkpoint found; looked for {LOOKED_FOR}", path=path,
                                      hint="check the path; folders are not searched recursively")
    remaining = list(candidates)
    failures: list[str] = []
    while True:
        try:
            cand = select(remaining, which, monitor=monitor, mode=mode, where=path)
        except CheckpointNotFoundError as exc:
            if failures:
                raise CheckpointNotFoundError(
                    f"no readable checkpoint: {exc.message}; unreadable: " + "; ".join(failures),
                    path=path, hint="see the log for every damaged file") from exc
            raise
        try:
            return cand, _read_one(cand, optimizer)
        except _OptimizerMisfit:
            raise
        except CkptCompatError as exc:
            log.warning("%s: cannot be read (%s); falling back to the next checkpoint", cand.path, exc)
            failures.append(f"{cand.path.name}: {exc}")
            remaining = [c for c in remaining if c is not cand]


def merge(main: TrainingState, extra: TrainingState, *, prefer_extra: bool) -> TrainingState:
    """Fill ``main`` with what ``extra`` (state.json or a legacy sidecar) knows.

    Tensors always come from ``main``. Progress, history, callbacks and RNG come from
    ``extra`` when ``prefer_extra`` (ckptcompat's own state.json) or when ``main`` lacks them.
    """
    def pick(a: Any, b: Any) -> Any:
        if prefer_extra:
            return b if b not in (None, {}, ()) else a
        return a if a not in (None, {}, ()) else b

    progress = Progress(epoch=pick(main.progress.epoch, extra.progress.epoch),
                        step=pick(main.progress.step, extra.progress.step),
                        global_step=pick(main.progress.global_step, extra.progress.global_step))
    optimizer = main.optimizer
    if prefer_extra and optimizer is not None and extra.optimizer is not None and extra.optimizer.hyperparameters:
        # the captured config and hyper-parameters: the model file may hold them translated (a
        # Keras 2 .h5: tf.keras 2.11+'s, no `decay`: the rate as a schedule, Nadam's dropped)
        optimizer = dataclasses.replace(optimizer, hyperparameters=dict(extra.optimizer.hyperparameters),
                                        config=extra.optimizer.config or optimizer.config)
    if optimizer is None and extra.optimizer is not None:
        optimizer = extra.optimizer  # class + hyper-parameters only, no slots
    elif optimizer is not None and extra.optimizer is not None and extra.optimizer.extra:
        # what the model file has no place for (a Keras 2 .h5 keeps no loss scale)
        missing = {k: v for k, v in extra.optimizer.extra.items() if k not in optimizer.extra}
        if missing:
            optimizer = dataclasses.replace(optimizer, extra={**optimizer.extra, **missing})
    producer = main.producer
    if prefer_extra and extra.producer.framework:
        producer = dataclasses.replace(extra.producer, format=main.producer.format, path=main.producer.path)
    return main.replace(progress=progress, optimizer=optimizer, producer=producer,
                        history=pick(dict(main.history), dict(extra.history)),
                        callbacks=pick(dict(main.callbacks), dict(extra.callbacks)),
                        rng=pick(dict(main.rng), dict(extra.rng)),
                        metric_names=main.metric_names or extra.metric_names)


def keras3_file_paths(model: Any, twice: bool = False) -> dict[str, str]:
    """Layer path a Keras 3 ``.weights.h5`` may use -> live layer path.

    Keras 3 names each layer of a container by its snake-cased class name plus a counter in
    layer order (``conv2d``, ``batch_normalization``, ``dense_1``), nested models likewise;
    RNN layers keep their weights under the cell (``lstm_cell``, counted per cell class).
    ``twice``: the tf.keras 2.12/2.13 ``_layer_checkpoint_dependencies`` layout, where a layer
    with weights consumes two counter values (``dense``, ``batch_normalization``, ``dense_2``).
    """
    from ckptcompat.formats.keras_zip._layout import snake_case as _snake

    out: dict[str, str] = {}

    def walk(container: Any, live_prefix: str, file_prefix: str) -> None:
        used: dict[str, int] = {}

        def counted(base: str, weighted: bool = False) -> str:
            count = used.get(base, 0)
            used[base] = count + (2 if twice and weighted else 1)
            return base if count == 0 else f"{base}_{count}"

        for layer in getattr(container, "layers", None) or []:
            base = _snake(type(layer).__name__)
            if base == "input_layer":
                continue
            weighted = bool(getattr(layer, "weights", None))
            live_path, file_path = live_prefix + layer.name, file_prefix + counted(base, weighted)
            out.setdefault(file_path, live_path)
            cell = getattr(layer, "cell", None)
            if cell is not None:
                out.setdefault(file_prefix + counted(_snake(type(cell).__name__)), live_path)
            if getattr(layer, "layers", None):
                walk(layer, live_path + "/", file_path + "/")

    walk(model, "", "")
    return out


def through_labels(file_paths: Mapping[str, str], path: str | None, labelled_only: bool = False) -> dict[str, str]:
    """``file_paths`` keyed the way the reader names a config-less ``.weights.h5``'s layers.

    Without a config the reader names each layer by the ``name`` attribute Keras stored
    (the producer's generated name, ``dense_24``), not by its position path (``dense_1``),
    which is what Keras matches on; translate through the file's own groups. ``labelled_only``:
    where the file labels its groups, only the labels' keys (a label is never read as another
    layer's position).
    """
    if not path or not str(path).endswith(".h5"):
        return dict(file_paths)
    from ckptcompat.formats.keras_zip._io import open_h5_path
    from ckptcompat.formats.keras_zip._weights import all_var_groups, group_name_parts, var_group_prefixes

    out, labels = dict(file_paths), {}
    try:
        h5 = open_h5_path(Path(path))
    except (CkptCompatError, OSError) as exc:
        log.debug("%s: layer labels not read (%s)", path, exc)
        return out
    try:
        groups = all_var_groups(h5)
        holds_vars = var_group_prefixes(groups)
        for group in groups:
            parts = group_name_parts(group, holds_vars)
            label = h5[group].attrs.get("name")
            if isinstance(label, bytes):
                label = label.decode("utf-8", "replace")
            if not parts or not isinstance(label, str):
                continue
            file_prefix = "/".join(parts)
            labelled = "/".join([*parts[:-1], label])
            if file_prefix in file_paths:
                out[labelled] = labels[labelled] = file_paths[file_prefix]
    finally:
        h5.close()
    return labels if labelled_only and labels else out


def _by_file_paths(leftover: list[str], free: list[str], state: TrainingState,
                   live: Mapping[str, tuple[int, ...]], paths: Mapping[str, str]) -> dict[str, str]:
    """Pair Keras 3 ``.weights.h5`` layer paths with live layers the way Keras 3 loads them."""
    by_file = paths
    out = {}
    for name in leftover:
        head, _, short = name.rpartition("/")
        dst = f"{by_file[head]}/{short}" if head in by_file else None
        if dst is None or dst not in free or tuple(np.shape(state.weights[name])) != tuple(live[dst]):
            return {}
        out[name] = dst
    return out


def remap_by_structure(state: TrainingState, live: Mapping[str, tuple[int, ...]],
                       file_paths: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None
                       ) -> TrainingState:
    """Rename checkpoint variables that match a live variable only by path suffix.

    Nested models in TF bundles lack the outer layer name (``dense_2/bias`` for the live
    ``inner/dense_2/bias``); a wrapper's inner scope is one the live walk leaves out
    (``td/dense/kernel`` for the live ``td/kernel``). A name is renamed only when exactly one
    unclaimed live variable fits that way and has the same shape; anything else is left for
    :func:`ckptcompat.runtime.apply` to report.
    """
    unmatched_live = {n for n in live if n not in state.weights}
    renames: dict[str, str] = {}
    for name, value in state.weights.items():
        if name in live:
            continue
        shape = tuple(np.shape(value))
        hits = [n for n in unmatched_live if n.endswith("/" + name) and shape_fits(shape, live[n])]
        if not hits:  # a wrapper's inner scope the live walk leaves out (TimeDistributed: td/dense/kernel)
            parts = name.split("/")
            hits = [n for n in {"/".join(parts[:i] + parts[i + 1:]) for i in range(1, len(parts) - 1)}
                    if n in unmatched_live and shape_fits(shape, live[n])]
        if len(hits) == 1 and hits[0] not in renames.values():
            renames[name] = hits[0]
    leftover = [n for n in state.weights if n not in live and n not in renames]
    free = [n for n in live if n not in state.weights and n not in renames.values()]
    if leftover and state.model_config is None and state.producer.format == "keras_zip":
        # a Keras 3 .weights.h5: Keras itself matches by class counters in layer order
        full = [n for n in state.weights if n not in live]
        free_all = [n for n in live if n not in state.weights]
        schemes = [file_paths] if isinstance(file_paths, Mapping) else list(file_paths or [{}])
        by_paths: dict[str, str] = {}
        for scheme in schemes:  # the first naming scheme that places every layer wins
            by_paths = _by_file_paths(full, free_all, state, live, through_labels(scheme, state.producer.path))
            if by_paths:
                break
        if by_paths:
            renames = by_paths
        else:
            renames.update(_by_layer_order(leftover, free, state, live))
    if not renames:
        return state
    log.info("matched %d variable(s) by structure (suffix + shape): %s", len(renames),
             ", ".join(f"{a} -> {b}" for a, b in renames.items()))
    weights = {renames.get(k, k): v for k, v in state.weights.items()}
    optimizer = state.optimizer
    if optimizer is not None:
        slots = {renames.get(k, k): v for k, v in optimizer.slots.items()}
        optimizer = dataclasses.replace(optimizer, slots=slots)
    return state.replace(weights=weights, optimizer=optimizer)


def through_model_config(state: TrainingState, model: Any, live: Mapping[str, tuple[int, ...]]
                         ) -> tuple[TrainingState, dict[str, str]] | None:
    """A Keras v3 ``.weights.h5`` that records no config, read again through the config of the
    model it is loaded into, as Keras's own ``load_weights`` does (the live layers' classes
    and order name the file's groups): (that state, file name -> live name by content) when
    it names every live variable with the right shape, else None (the other matchers try)."""
    path = state.producer.path
    if state.model_config is not None or state.producer.format != "keras_zip" or not path \
            or not str(path).endswith(".h5"):
        return None
    try:
        config = {"class_name": type(model).__name__, "config": model.get_config()}
    except Exception as exc:  # noqa: BLE001 -- a subclassed model without get_config
        log.debug("no config of the live model (%s); matching by file paths", exc)
        return None
    from ckptcompat.formats import keras_zip

    try:
        again = keras_zip.read(path, model_config=config)
    except CkptCompatError as exc:
        log.debug("%s: not readable through the live model's config: %s", path, exc)
        return None
    again = again.replace(weights={respell(n, live, taken=again.weights): v for n, v in again.weights.items()})
    if set(again.weights) != set(live) or not all(shape_fits(np.shape(v), live[n]) for n, v in again.weights.items()):
        return None
    optimizer = state.optimizer if again.optimizer is None or not again.optimizer.slots else again.optimizer
    return (state.replace(weights=dict(again.weights), optimizer=optimizer),
            _pair_by_content(state.weights, again.weights))


def _pair_by_content(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """old name -> new name of the same array (equal values paired in order)."""
    import hashlib

    def key(value: Any) -> tuple[Any, ...]:
        arr = np.ascontiguousarray(np.asarray(value))
        return arr.shape, str(arr.dtype), hashlib.sha256(arr.tobytes()).hexdigest()

    waiting: dict[tuple[Any, ...], list[str]] = {}
    for name, value in new.items():
        waiting.setdefault(key(value), []).append(name)
    out = {}
    for name, value in old.items():
        names = waiting.get(key(value))
        if names:
            out[name] = names.pop(0)
    return {a: b for a, b in out.items() if a != b}


def _groups(names: list[str]) -> list[tuple[str, list[str]]]:
    out: dict[str, list[str]] = {}
    for n in names:
        head, _, short = n.rpartition("/")
        out.setdefault(head, []).append(short)
    return list(out.items())


def _by_layer_order(leftover: list[str], free: list[str], state: TrainingState,
                    live: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Keras 3 ``.weights.h5`` names layers by class counters and Keras loads them by layer order:
    pair layers in order when every layer's weight names and shapes agree."""
    a, b = _groups(leftover), _groups(free)
    if len(a) != len(b):
        return {}
    out = {}
    for (ha, sa), (hb, sb) in zip(a, b):
        if sorted(sa) != sorted(sb):
            return {}
        for short in sa:
            src, dst = f"{ha}/{short}" if ha else short, f"{hb}/{short}" if hb else short
            if tuple(np.shape(state.weights[src])) != tuple(live[dst]):
                return {}
            out[src] = dst
    return out
