"""TF1 graph/session flavour: restore and save the variables of a ``tf.compat.v1`` session.

:func:`restore_session` fills every variable of a session's graph from a TF1 Saver bundle
(written by ckptcompat or by any TensorFlow 0.12+ ``tf.train.Saver``), by variable name with
every shape and dtype checked first; :func:`save_session` writes a TF1 bundle plus
ckptcompat's ``state.json`` (global step, the training loop's own state) as one atomic
checkpoint of a :class:`~ckptcompat.store.CheckpointStore`.

Variables are read with ``session.run`` and written by feeding each variable's initializer
its value (what ``Variable.load`` does, all in one run), so no op is added to the graph.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ckptcompat.errors import (
    CheckpointNotFoundError,
    IncompatibleStateError,
    MissingDependencyError,
)
from ckptcompat.state import Producer, Progress, TrainingState

__all__ = ["LOOP_KEY", "STATE_FILE", "BUNDLE_NAME", "TF1Restore", "tf_compat_v1",
           "require_tf1_layers", "session_variables", "resolve_checkpoint", "restore_session",
           "save_session", "read_session"]

log = logging.getLogger(__name__)

#: ``state.callbacks`` key under which the user's loop state is stored.
LOOP_KEY = "tf1_loop"
#: Name of ckptcompat's sidecar next to the bundle.
STATE_FILE = "state.json"
#: Bundle prefix inside a store checkpoint.
BUNDLE_NAME = "model.ckpt"


@dataclass(frozen=True)
class TF1Restore:
    """What :func:`restore_session` did.

    ``global_step`` is the step to continue after (the step given to :func:`save_session`,
    else the checkpoint's ``global_step`` tensor); ``loop_state`` the dict given to :func:`save_session`
    (empty for foreign checkpoints); ``callbacks`` every callback state from ``state.json``;
    ``restored`` the variable names assigned; ``skipped`` ``(name, reason)`` pairs (only
    with ``partial=True``); ``unused`` checkpoint keys no variable asked for;
    ``global_step_source`` how the step was found: without a ``global_step`` tensor, from the
    Adam power accumulators (``beta1_power = beta1**(step+1)``, warned).
    """

    prefix: Path
    global_step: int | None
    loop_state: Mapping[str, Any] = field(default_factory=dict)
    callbacks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    restored: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    unused: tuple[str, ...] = ()
    global_step_source: str | None = None  # "loop", "global_step", "beta1_power", "beta2_power"


def _adam_betas(session: Any) -> tuple[float, float]:
    """``(beta1, beta2)`` of the graph's Adam update ops when they are constants, else the
    TF1 defaults (0.9, 0.999)."""
    import tensorflow as tf

    def constant(tensor: Any) -> float | None:
        op = tensor.op
        while op.type in ("Identity", "Cast") and op.inputs:
            op = op.inputs[0].op
        if op.type != "Const":
            return None
        return float(np.asarray(tf.make_ndarray(op.get_attr("value"))).reshape(-1)[0])

    try:
        for op in session.graph.get_operations():
            if op.type in ("ApplyAdam", "ResourceApplyAdam") and len(op.inputs) > 7:
                b1, b2 = constant(op.inputs[6]), constant(op.inputs[7])
                if b1 is not None and b2 is not None:
                    return b1, b2
    except (AttributeError, ValueError, TypeError) as exc:
        log.debug("Adam betas not read from the graph: %s", exc)
    return 0.9, 0.999


def _step_from_powers(tensors: Mapping[str, np.ndarray], session: Any,
                      prefix: Path) -> tuple[int | None, str | None]:
    """The step count encoded by TF1 Adam's ``beta1_power`` (= beta1**(t+1) after t steps),
    else ``beta2_power``, with the betas of the graph's Adam ops; None when neither tells."""
    from ckptcompat.formats.tf_bundle._tf1_names import _steps_from_power  # noqa: PLC0415

    beta1, beta2 = _adam_betas(session)
    for suffix, beta, limit in (("beta1_power", beta1, None), ("beta2_power", beta2, 5000)):
        keys = [k for k in tensors if k.rsplit("/", 1)[-1] == suffix and np.asarray(tensors[k]).size == 1]
        if len(keys) != 1:
            continue
        power = float(np.asarray(tensors[keys[0]]).reshape(-1)[0])
        step = _steps_from_power(power, beta, prefix, limit)
        if step is not None:
            log.warning("%s: no global_step tensor; global step %d inferred from %s=%r "
                        "(beta=%s: %s = beta**(step+1))", prefix, step, keys[0], power, beta, suffix)
            return step, suffix
    log.warning("%s: no global_step tensor and no Adam power accumulator that tells the step; "
                "global_step is None", prefix)
    return None, None


def tf_compat_v1() -> Any:
    """``tensorflow.compat.v1`` (:class:`MissingDependencyError` without TensorFlow)."""
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError("TensorFlow is needed to restore a tf.compat.v1 session",
                                     hint="pip install 'ckptcompat[tf]'") from exc
    return tf.compat.v1


def require_tf1_layers() -> Any:
    """``tf.compat.v1.layers``; on TF 2.16+ without tf-keras a :class:`MissingDependencyError`.

    TensorFlow 2.16+ implements ``tf.compat.v1.layers`` with Keras 2 only; with Keras 3 every
    function raises ``AttributeError: `dense` is not available with Keras 3``.
    """
    from ckptcompat.runtime import LEGACY_KERAS_ENV

    v1 = tf_compat_v1()
    try:
        layers = v1.layers
        _ = layers.dense  # the lazy module raises here on Keras 3
    except AttributeError as exc:
        if "Keras 3" not in str(exc):
            raise
        raise MissingDependencyError(
            f"tf.compat.v1.layers is not available on this TensorFlow with Keras 3 ({exc})",
            hint="pip install tf-keras (the version matching TensorFlow) and set "
                 f"{LEGACY_KERAS_ENV}=1 before importing TensorFlow; or build the graph with "
                 "tf.compat.v1.get_variable under tf.compat.v1.variable_scope('layer_x')") from exc
    return layers


def _var_name(var: Any) -> str:
    return str(var.op.name) if hasattr(var, "op") else str(var.name).split(":")[0]


def session_variables(session: Any, var_list: Iterable[Any] | Mapping[str, Any] | None = None
                      ) -> dict[str, Any]:
    """The variables to save/restore by checkpoint name (default: the graph's global variables)."""
    if isinstance(var_list, Mapping):
        return {str(k): v for k, v in var_list.items()}
    if var_list is None:
        v1 = tf_compat_v1()
        with session.graph.as_default():
            var_list = v1.global_variables()
    out: dict[str, Any] = {}
    for var in var_list:
        name = _var_name(var)
        if name in out:
            raise IncompatibleStateError("two variables share one name", [name])
        out[name] = var
    return out


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The bundle prefix for ``path``: a ckptcompat store (newest good checkpoint), a store
    checkpoint folder, a folder with a TF ``checkpoint`` file, a prefix or ``.index`` file."""
    from ckptcompat.formats.tf_bundle._io import resolve_prefix  # noqa: PLC0415

    p = Path(path)
    if p.is_dir() and (p / "ckptcompat.json").is_file():
        from ckptcompat.store import CheckpointStore  # noqa: PLC0415
        entry = CheckpointStore(p).latest_good()
        if entry is None:
            raise CheckpointNotFoundError("the store holds no intact checkpoint", path=p,
                                          hint="start training from scratch")
        p = entry.path
    if p.is_dir() and Path(f"{p / BUNDLE_NAME}.index").is_file():
        return p / BUNDLE_NAME
    if not p.exists() and not Path(f"{p}.index").exists():
        raise CheckpointNotFoundError("no checkpoint here", path=p, hint="check the path")
    return resolve_prefix(p)


def _read_sidecar(prefix: Path) -> TrainingState | None:
    side = prefix.parent / STATE_FILE
    if not side.is_file():
        return None
    from ckptcompat.formats import sidecar  # noqa: PLC0415
    return sidecar.read(side)


def restore_session(path: str | os.PathLike[str], session: Any, *,
                    var_list: Iterable[Any] | Mapping[str, Any] | None = None,
                    name_map: Mapping[str, str] | None = None, partial: bool = False) -> TF1Restore:
    """Assign every variable of ``session``'s graph from the checkpoint at ``path``.

    ``name_map`` maps graph variable names to checkpoint keys where they differ. All
    missing and misshaped variables are collected first and raised in one
    :class:`IncompatibleStateError` (nothing assigned) unless ``partial=True``, in which
    case what fits is assigned and the rest reported in ``skipped``.
    """
    from ckptcompat.formats.tf_bundle import read_tensors  # noqa: PLC0415

    prefix = resolve_checkpoint(path)
    _, tensors = read_tensors(prefix)
    variables = session_variables(session, var_list)
    name_map = dict(name_map or {})
    plan, problems = _plan_session(variables, tensors, name_map)
    if problems and not partial:
        raise IncompatibleStateError(
            "the checkpoint does not fit the session's graph; nothing was assigned",
            [f"{n}: {r}" for n, r in problems], path=prefix,
            hint="pass name_map={graph name: checkpoint name}, var_list=[...], or partial=True")
    _assign(session, [(var, value) for _, var, value in plan])
    if problems:
        log.warning("%s: partial restore, %d variable(s) skipped:\n%s", prefix, len(problems),
                    "\n".join(f"  - {n}: {r}" for n, r in problems))
    used = {name_map.get(n, n) for n in variables}
    unused = tuple(sorted(k for k in tensors if k not in used))
    if unused:
        log.info("%s: %d checkpoint tensor(s) not used by the graph: %s", prefix, len(unused),
                 ", ".join(unused[:20]))
    side = _read_sidecar(prefix)
    step, source = _global_step(tensors, session, prefix, side)
    callbacks = dict(side.callbacks) if side is not None else {}
    return TF1Restore(prefix=prefix, global_step=step, global_step_source=source,
                      loop_state=dict(callbacks.get(LOOP_KEY) or {}),
                      callbacks=callbacks, restored=tuple(n for n, _, _ in plan),
                      skipped=tuple(problems), unused=unused)


def _plan_session(variables: Mapping[str, Any], tensors: Mapping[str, np.ndarray],
                  name_map: Mapping[str, str]
                  ) -> tuple[list[tuple[str, Any, np.ndarray]], list[tuple[str, str]]]:
    """Pair each graph variable with its checkpoint tensor by name, shape and dtype:
    (name, variable, value) triples to assign and (name, reason) misfits."""
    plan: list[tuple[str, Any, np.ndarray]] = []
    problems: list[tuple[str, str]] = []
    for name, var in variables.items():
        key = name_map.get(name, name)
        shape = tuple(var.shape.as_list()) if var.shape.rank is not None else None
        dtype = np.dtype(var.dtype.base_dtype.as_numpy_dtype)
        if key not in tensors:
            problems.append((name, f"missing: the checkpoint has no {key!r} (variable {shape} {dtype})"))
            continue
        value = tensors[key]
        if shape is not None and tuple(value.shape) != shape:
            problems.append((name, f"shape differs: checkpoint {tuple(value.shape)}, graph {shape}"))
        elif value.dtype != dtype:
            problems.append((name, f"dtype differs: checkpoint {value.dtype}, graph {dtype}"))
        else:
            plan.append((name, var, value))
    return plan, problems


def _global_step(tensors: Mapping[str, np.ndarray], session: Any, prefix: Path,
                 side: TrainingState | None) -> tuple[int | None, str | None]:
    """(global step, where it came from): the loop's saved step wins over a ``global_step``
    tensor, which wins over the step recovered from Adam's beta powers."""
    step, source = None, None
    if "global_step" in tensors and np.asarray(tensors["global_step"]).size == 1:
        step, source = int(np.asarray(tensors["global_step"]).reshape(-1)[0]), "global_step"
    elif side is None or side.progress.global_step is None:
        step, source = _step_from_powers(tensors, session, prefix)
    if side is not None and side.progress.global_step is not None:
        if step is not None and step != side.progress.global_step:
            log.warning("%s: the graph's global_step tensor is %d, the loop saved step %d; "
                        "returning the loop's", prefix, step, side.progress.global_step)
        step, source = side.progress.global_step, "loop"
    return step, source


def _assign(session: Any, pairs: list[tuple[Any, np.ndarray]]) -> None:
    """Assign by feeding each variable's initializer input: one run, no op added."""
    if not pairs:
        return
    ops, feed = [], {}
    for var, value in pairs:
        init = var.initializer
        ops.append(init)
        feed[init.inputs[1]] = value
    session.run(ops, feed_dict=feed)


def read_session(session: Any, var_list: Iterable[Any] | Mapping[str, Any] | None = None
                 ) -> dict[str, np.ndarray]:
    """Every variable's current value by checkpoint name (one ``session.run``)."""
    variables = session_variables(session, var_list)
    names = list(variables)
    values = session.run([variables[n] for n in names]) if names else []
    return {n: np.array(v) for n, v in zip(names, values)}


def _producer() -> Producer:
    import tensorflow as tf  # noqa: PLC0415
    return Producer(framework="tensorflow", versions={"tensorflow": str(tf.__version__)},
                    format="tf_bundle")


def save_session(directory_or_store: Any, session: Any, *, global_step: int,
                 loop_state: Mapping[str, Any] | None = None,
                 callbacks: Mapping[str, Mapping[str, Any]] | None = None,
                 metrics: Mapping[str, float] | None = None, epoch: int = 0,
                 tags: Iterable[str] = (),
                 var_list: Iterable[Any] | Mapping[str, Any] | None = None) -> Any:
    """Commit the session's variables (TF1 bundle ``model.ckpt``) + ``state.json`` to a store.

    ``directory_or_store`` is a :class:`~ckptcompat.store.CheckpointStore` opened for writing
    or a directory (opened, written, closed). ``loop_state`` (plain JSON data) comes back as
    :attr:`TF1Restore.loop_state`; ``callbacks`` are stored beside it. The ``global_step``
    tensor is the graph's own when it has one, else ``global_step`` is written. Returns the
    committed :class:`~ckptcompat.store.CheckpointEntry`.
    """
    from ckptcompat.formats import sidecar  # noqa: PLC0415
    from ckptcompat.formats.tf_bundle import _io as _bundle_io  # noqa: PLC0415
    from ckptcompat.formats import _protowire as pw  # noqa: PLC0415
    from ckptcompat.store import CheckpointStore  # noqa: PLC0415

    tensors = read_session(session, var_list)
    if "global_step" not in tensors:
        tensors["global_step"] = np.asarray(int(global_step), dtype=np.int64)
    cb = dict(callbacks or {})
    cb[LOOP_KEY] = dict(loop_state or {})
    producer = _producer()
    state = TrainingState(progress=Progress(epoch=epoch, step=int(global_step), global_step=int(global_step)),
                          callbacks=cb, producer=producer)
    own = not isinstance(directory_or_store, CheckpointStore)
    store = CheckpointStore(directory_or_store, write=True) if own else directory_or_store
    try:
        with store.begin(epoch=epoch, step=int(global_step), global_step=int(global_step),
                         metrics=metrics, format="tf_bundle", producer=producer,
                         tags=tuple(tags)) as pending:
            _bundle_io.write_bundle(pending.path / BUNDLE_NAME, tensors)
            (pending.path / _bundle_io.STATE_FILE).write_text(
                pw.format_checkpoint_state(BUNDLE_NAME, [BUNDLE_NAME]), encoding="utf-8")
            sidecar.write(pending.path / STATE_FILE, state)
        entry = pending.entry
    finally:
        if own:
            store.close()
    log.info("saved %d variable(s) at global step %d to %s", len(tensors), global_step,
             entry.path if entry is not None else store.directory)
    return entry
