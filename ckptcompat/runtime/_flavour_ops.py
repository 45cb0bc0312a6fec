"""The interface a live flavour implements (:class:`FlavourOps`) and what
:func:`ckptcompat.runtime._engine.apply` reports (:class:`ApplyReport`).

keras2.py / keras3.py subclass :class:`FlavourOps` with the operations that differ between
framework generations; the shared logic in ``_engine`` only calls these. This module never
imports TensorFlow or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ckptcompat.errors import IncompatibleStateError
from ckptcompat.names.variables import canonical_optimizer_class
from ckptcompat.state import Producer

__all__ = ["ApplyReport", "FlavourOps", "raise_misfits", "session_assign_all", "session_read_all"]


@dataclass(frozen=True)
class ApplyReport:
    """What :func:`~ckptcompat.runtime._engine.apply` restored and what it skipped (``(name, reason)`` pairs)."""

    restored_weights: tuple[str, ...] = ()
    restored_slots: tuple[str, ...] = ()       # "<canonical var>/<canonical slot>"
    skipped: tuple[tuple[str, str], ...] = ()
    iterations: int | None = None              # value set on the optimizer, if any
    learning_rate: float | None = None         # value set on the optimizer, if any
    translated: tuple[str, ...] = ()           # slots dropped/created by meaning (zeros = absent)
    matching: str = "name"                     # "name" or "structure" (see resuming.match)
    by_structure: tuple[tuple[str, str], ...] = ()  # (checkpoint name, model name) renamed by structure
    optimizer_reset: bool = False              # resume(optimizer="reset"): optimizer state not restored
    lora_restarted: tuple[str, ...] = ()       # LoRA factors the file does not hold (see resuming.lora)


class FlavourOps:
    """Operations one framework flavour provides; see keras2.py / keras3.py."""

    def variables(self, model: Any) -> dict[str, Any]:
        raise NotImplementedError

    def to_numpy(self, var: Any) -> np.ndarray:
        raise NotImplementedError

    def read_view(self, var: Any) -> np.ndarray:
        """The variable's current value, possibly a read-only view of the framework's buffer:
        copy it before training goes on. Default: :meth:`to_numpy` (a copy)."""
        return self.to_numpy(var)

    def assign(self, var: Any, value: np.ndarray) -> None:
        raise NotImplementedError

    def assign_all(self, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
        """Assign each ``(variable, value)`` pair; a flavour running a TF1 session does all in one run."""
        for var, value in pairs:
            self.assign(var, value)

    def read_all(self, variables: Sequence[Any]) -> list[np.ndarray] | None:
        """Fresh copies of the variables' values read together (one TF1 session run), or None
        where each is read on its own (eager execution: no gain)."""
        return None

    def shape(self, var: Any) -> tuple[int, ...]:
        """The variable's shape; ``-1`` for a dimension it leaves open (see ``_arrays.shape_fits``)."""
        return tuple(-1 if d is None else int(d) for d in var.shape)

    def optimizer_of(self, model: Any) -> Any | None:
        opt = getattr(model, "optimizer", None)
        inner = getattr(opt, "inner_optimizer", None)  # loss-scale wrappers
        return inner if inner is not None else opt

    def optimizer_class(self, opt: Any) -> str:
        return canonical_optimizer_class(type(opt).__name__)

    def live_slots(self, opt: Any, named: dict[str, Any]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def build_optimizer(self, opt: Any, model: Any) -> None:
        raise NotImplementedError

    def ordered_optimizer_variables(self, opt: Any) -> list[Any] | None:
        """The optimizer's variables in the order its own weights files store them
        (``optimizer/vars/<i>``), or None when this flavour cannot say."""
        return None

    def optimizer_config(self, opt: Any) -> dict[str, Any]:
        """``opt.get_config()`` (raises what it raises)."""
        config: dict[str, Any] = opt.get_config()
        return config

    def read_iterations(self, opt: Any) -> int:
        raise NotImplementedError

    def write_iterations(self, opt: Any, value: int) -> None:
        raise NotImplementedError

    def stored_learning_rate(self, opt: Any) -> Any:
        """What the optimizer stores as its learning rate: a variable, a Python number, a
        schedule or a callable."""
        raise NotImplementedError

    def is_variable(self, obj: Any) -> bool:
        """True for a framework variable (readable with :meth:`to_numpy`, set with :meth:`assign`)."""
        raise NotImplementedError

    def set_plain_learning_rate(self, opt: Any, value: float) -> None:
        """Store a number where the optimizer has no learning-rate variable (yet)."""
        opt.learning_rate = value

    def write_learning_rate(self, opt: Any, value: float) -> None:
        """Set the learning rate in place: assign its variable, else store the number."""
        stored = self.stored_learning_rate(opt)
        if self.is_variable(stored):
            self.assign(stored, np.asarray(value))
        else:
            self.set_plain_learning_rate(opt, float(value))

    def is_schedule(self, obj: Any) -> bool:
        raise NotImplementedError

    def serialize_schedule(self, obj: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def producer(self) -> Producer:
        raise NotImplementedError


def session_assign_all(backend: Any, pairs: Sequence[tuple[Any, np.ndarray]]) -> None:
    """Assign every pair in one Keras-session run (``backend.batch_set_value``), each value cast to its
    variable's dtype: one run instead of one per variable, each new assign op extending the session."""
    if pairs:
        backend.batch_set_value([(var, np.asarray(value, dtype=var.dtype.as_numpy_dtype)) for var, value in pairs])


def session_read_all(backend: Any, variables: Sequence[Any]) -> list[np.ndarray] | None:
    """The variables' values read in one Keras-session run (fresh arrays); None for no variable."""
    return [np.asarray(value) for value in backend.batch_get_value(list(variables))] if variables else None


def raise_misfits(problems: list[str], *, weights_fit: bool) -> None:
    """Raise the :class:`IncompatibleStateError` of a refused apply, its hint chosen by
    whether only the optimizer state misfits."""
    if weights_fit:
        raise IncompatibleStateError(
            "the weights fit the model but the optimizer state does not; nothing was assigned",
            problems, hint='pass optimizer="reset" to restore the weights and the progress with '
                           "a fresh optimizer, or partial=True to restore what fits (every slot "
                           "left out is reported)")
    raise IncompatibleStateError(
        "the checkpoint does not fit the model; nothing was assigned", problems,
        hint="build the model with the architecture that wrote the checkpoint (or resume "
             "without model= to rebuild it from the file), or pass partial=True to restore "
             "what fits")


def dtype_name(var: Any) -> str:
    """A live variable's dtype as numpy names it (``"int8"``), ``""`` when it cannot be told."""
    dtype = getattr(var, "dtype", None)
    name = getattr(dtype, "name", dtype)  # tf.DType / numpy dtype -> "int8"; Keras 3: already a str
    return str(name).replace("torch.", "") if name is not None else ""


def codes_and_floats(value: np.ndarray, var: Any) -> bool:
    """A checkpoint value and a live variable of which one holds 8-bit integer codes (a quantized
    kernel) and the other floats: equal shapes, other meanings."""
    live = dtype_name(var)
    try:
        kinds = {np.dtype(value.dtype), np.dtype(live)}
    except TypeError:
        return False
    return any(d.kind in "iu" and d.itemsize == 1 for d in kinds) and any(d.kind == "f" for d in kinds)

