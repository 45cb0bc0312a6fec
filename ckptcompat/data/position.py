"""Framework-free core of :mod:`ckptcompat.data`: permutations, fingerprints, epoch cursor.

Nothing here imports TensorFlow or Keras; the live classes in :mod:`ckptcompat.data` mix
:class:`EpochCursor` into a ``keras.utils.Sequence`` / ``keras.utils.PyDataset``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from ckptcompat.errors import IncompatibleStateError, InvalidArgumentError

__all__ = ["STATE_VERSION", "epoch_permutation", "batch_indices", "array_fingerprint",
           "flatten_arrays", "EpochCursor"]

log = logging.getLogger(__name__)

STATE_VERSION = 1
_SAMPLE_ROWS = 64


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """Sample order of ``epoch``: a pure function of ``(seed, epoch)`` (numpy Generator)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)


def batch_indices(n: int, batch_size: int, seed: int, epoch: int, batch: int,
                  shuffle: bool = True) -> np.ndarray:
    """Sample indices of batch ``batch`` of ``epoch`` (last batch may be partial)."""
    perm = epoch_permutation(n, seed, epoch, shuffle)
    return perm[batch * batch_size:(batch + 1) * batch_size]


def flatten_arrays(obj: Any, prefix: str = "") -> list[tuple[str, np.ndarray]]:
    """``[(path, array)]`` of an array, a list/tuple of arrays or a dict of arrays (or None)."""
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        out: list[tuple[str, np.ndarray]] = []
        for key in sorted(obj):
            out += flatten_arrays(obj[key], f"{prefix}/{key}")
        return out
    if isinstance(obj, (list, tuple)):
        out = []
        for i, item in enumerate(obj):
            out += flatten_arrays(item, f"{prefix}/{i}")
        return out
    return [(prefix or "/", np.asarray(obj))]


def array_fingerprint(arrays: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Shape/dtype of every array plus a sha256 of up to 64 evenly spaced rows of each."""
    digest = hashlib.sha256()
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    for path, arr in arrays:
        shapes[path] = [int(d) for d in arr.shape]
        dtypes[path] = str(arr.dtype)
        digest.update(f"{path}|{arr.shape}|{arr.dtype}".encode())
        if arr.ndim and arr.shape[0]:
            rows = np.unique(np.linspace(0, arr.shape[0] - 1, _SAMPLE_ROWS).astype(np.int64))
            digest.update(np.ascontiguousarray(arr[rows]).tobytes())
        elif arr.size:
            digest.update(np.ascontiguousarray(arr).tobytes())
    return {"shapes": shapes, "dtypes": dtypes, "sha256": digest.hexdigest()}


class EpochCursor:
    """Epoch / position bookkeeping shared by ArrayData and GeneratorData.

    ``epoch`` is the epoch being served, ``position`` the batches of it already trained,
    ``_offset`` the batches skipped at the start of a resumed epoch (``load_state_dict``).
    The Keras index ``i`` of that epoch maps to batch ``_offset + i`` while the offset is
    armed. Hooks (``begin_epoch``, ``end_batch``, ``end_epoch``) are idempotent.
    """

    #: True: the offset (and shorter len) applies from load_state_dict on (Keras 2 reads
    #: len before on_epoch_begin); False: only once begin_epoch(resumed epoch) ran (Keras 3
    #: reads len once at fit start and must see the full length then).
    _arm_on_load: bool = True

    def _init_cursor(self, seed: int, batches: int) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise InvalidArgumentError(f"seed must be a non-negative int, got {seed!r}")
        if batches <= 0:
            raise InvalidArgumentError("the data yields no batch (empty data or steps_per_epoch <= 0)")
        self.seed = int(seed)
        self._batches = int(batches)
        self.epoch = 0
        self.position = 0
        self._offset = 0           # batches skipped at the start of the resumed epoch
        self._pending: tuple[int, int] | None = None  # (epoch, offset) waiting for begin_epoch
        self._armed = False
        self._absolute = False     # Keras counts the resumed epoch's batches from its start
        self._driven = False       # a tracker drives the epoch; ignore Keras' on_epoch_end
        self._requested: set[int] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Keras protocol
    def __len__(self) -> int:
        if self._absolute:
            return self._batches
        return self._batches - (self._offset if self._armed else 0)

    @property
    def batches_per_epoch(self) -> int:
        """Full number of batches of one epoch (``len()`` may be shorter after a resume)."""
        return self._batches

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        length = len(self)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"batch index {index} out of range for {length} batches")
        self._requested.add(index)
        offset = self._offset if self._armed else 0
        # absolute: fit trains only the rest of the epoch; what a prefetch reads past it is unused
        return self._batch(self.epoch, min(offset + index, self._batches - 1))

    def _batch(self, epoch: int, batch: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Keras' hook; used only when no tracker drives the epoch (see docs/data.md)."""
        if self._driven:
            return
        if len(self._requested) >= len(self):  # a whole epoch was served, not a fit-start call
            self.end_epoch(self.epoch)

    def count_batches_from_epoch_start(self) -> None:
        """For a ``fit`` that reads the length once and starts a resumed epoch at the saved
        step itself (Keras 2 under a ``tf.distribute`` strategy): the full length is reported,
        Keras' batch indices count from the epoch's start; the i-th batch asked for is still the
        i-th one not yet trained."""
        self._absolute = True

    # ------------------------------------------------------------------ explicit hooks
    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch`` from now on (alias of :meth:`begin_epoch`)."""
        self.begin_epoch(epoch)

    def begin_epoch(self, epoch: int) -> None:
        """Training epoch ``epoch`` starts: select its permutation, arm a resumed offset."""
        epoch = int(epoch)
        with self._lock:
            if self._pending is not None:
                pend_epoch, pend_offset = self._pending
                if epoch != pend_epoch:
                    raise IncompatibleStateError(
                        f"data state was loaded at epoch {pend_epoch} batch {pend_offset}, "
                        f"but training starts epoch {epoch}",
                        hint=f"call fit(..., initial_epoch={pend_epoch}) with this data object")
                self._pending = None
                self._offset, self._armed = pend_offset, pend_offset > 0
                self.epoch, self.position = epoch, pend_offset
            elif epoch == self.epoch and self._armed and self.position == self._offset:
                return  # a second tracker: the resumed epoch has just begun (idempotent)
            else:
                self.epoch, self.position, self._offset, self._armed = epoch, 0, 0, False
            self._requested = set()

    def end_batch(self, batch: int) -> None:
        """Batch ``batch`` (Keras' 0-based step index in this epoch) was trained."""
        if batch == 0 and self._requested and 0 not in self._requested:
            raise InvalidArgumentError(
                "Keras asked for the batches of this epoch out of order",
                hint="call model.fit(data, shuffle=False, ...) (the data object shuffles itself) "
                     "and give steps_per_epoch to the data object, not to fit()")
        base = self._offset if self._armed and not self._absolute else 0
        self.position = base + int(batch) + 1

    def end_epoch(self, epoch: int) -> None:
        """Keras ended epoch ``epoch``: if all its batches were trained, the next one starts.

        An epoch cut short (``model.stop_training`` mid-epoch) keeps ``(epoch, position)``
        so that :meth:`state_dict` resumes inside it.
        """
        with self._lock:
            self._pending = None
            if int(epoch) == self.epoch and self.position < self._batches:
                log.debug("epoch %d ended after %d of %d batches", epoch, self.position,
                          self._batches)
                return
            self.epoch, self.position, self._offset, self._armed = int(epoch) + 1, 0, 0, False
            self._requested = set()

    # ------------------------------------------------------------------ state
    def _fingerprint(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe state: where the data order stands and what data it is."""
        return {"version": STATE_VERSION, "kind": type(self)._state_kind, "seed": self.seed,
                "epoch": int(self.epoch), "position": int(self.position),
                "batches_per_epoch": self._batches, **self._config(),
                "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``: the rest of its epoch, then the following epochs."""
        problems = []
        if state.get("kind") != type(self)._state_kind:
            problems.append(f"kind: saved {state.get('kind')!r}, this object {type(self)._state_kind!r}")
        mine = self.state_dict()
        for key in ("seed", "batches_per_epoch", *self._config(), "fingerprint"):
            if key in state and state[key] != mine[key]:
                problems.append(f"{key}: saved {state[key]!r}, this object {mine[key]!r}")
        if problems:
            raise IncompatibleStateError("the data differs from the data of the saved state",
                                         problems, hint="resume with the same data and settings")
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleStateError(f"data state lacks a valid epoch/position: {exc}") from exc
        if epoch < 0 or not 0 <= position <= self._batches:
            raise IncompatibleStateError(f"data state epoch {epoch} position {position} is out of "
                                         f"range (0..{self._batches} batches per epoch)")
        if position == self._batches:  # saved at an epoch end before the tracker advanced
            epoch, position = epoch + 1, 0
        with self._lock:
            self.epoch, self.position = epoch, position
            self._pending = (epoch, position)
            self._offset, self._armed = position, position > 0 and self._arm_on_load
            self._requested = set()
        log.debug("data state loaded: epoch %d, batch %d", epoch, position)

    _state_kind = "abstract"
