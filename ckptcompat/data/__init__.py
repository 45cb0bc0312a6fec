"""Replayable training data: the data order is part of the training state.

``ArrayData`` (numpy arrays) and ``GeneratorData`` (a factory of per-epoch iterators) are
real ``keras.utils.Sequence`` (Keras 2) / ``keras.utils.PyDataset`` (Keras 3) objects; the
Keras base class is bound on first instantiation, so importing this module never imports
TensorFlow (on Keras 3 ``PyDataset`` runs on every backend: JAX and torch need no
``tf.data``). The order of epoch ``e`` is a pure function of ``(seed, e)``; ``state_dict()``
says where training stands (epoch, batches trained) and ``load_state_dict()`` continues
exactly there. Position tracking needs the hooks of :meth:`ArrayData.tracker` (see
docs/data.md).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ckptcompat.data.position import (
    EpochCursor,
    array_fingerprint,
    batch_indices,
    epoch_permutation,
    flatten_arrays,
)
from ckptcompat.errors import InvalidArgumentError

__all__ = ["ArrayData", "GeneratorData", "epoch_permutation", "batch_indices"]

log = logging.getLogger(__name__)

def _bind(cls: type) -> type:
    """``cls`` mixed with the running flavour's data base class (Sequence / PyDataset; cached)."""
    from ckptcompat import runtime

    rt = runtime.flavour()
    base = rt.dataset_base()
    return runtime.bind(cls, base, _keras_base=base, _arm_on_load=not rt.DATASET_LEN_READ_ONCE,
                        __reduce__=_reduce)


def _reduce(self: Any) -> tuple[Any, ...]:
    state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
    return (_rebuild, (type(self).__mro__[1], state))


def _rebuild(public: type, state: dict[str, Any]) -> Any:
    import threading

    obj = object.__new__(_bind(public))
    obj.__dict__.update(state)
    obj._lock = threading.Lock()
    return obj


def _step_counters(model: Any) -> list[tuple[Any, Any]]:
    """(variable, value) of what a Keras 3 step advances without data: iterations, RNG states."""
    found = []
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and hasattr(optimizer, "iterations"):
        found.append(optimizer.iterations)
    found += [v for v in getattr(model, "variables", [])
              if "seed_generator" in str(getattr(v, "path", getattr(v, "name", "")))]
    from ckptcompat.runtime import keras_module

    ops = keras_module().ops  # any backend: never a tensor's own .numpy()
    return [(v, np.array(ops.convert_to_numpy(v), copy=True)) for v in found]


class _KerasData(EpochCursor):
    """Base of the public classes: lazy Keras binding and the tracker callback."""

    _keras_base: type | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls._keras_base is None:
            cls = _bind(cls)
        return object.__new__(cls)

    def _init_keras(self, keras_kwargs: dict[str, Any]) -> None:
        base = type(self)._keras_base
        if base is not None and getattr(base, "__name__", "") == "PyDataset":
            base.__init__(self, **keras_kwargs)
        elif keras_kwargs:
            raise InvalidArgumentError(
                f"{sorted(keras_kwargs)} are Keras 3 PyDataset options; on Keras 2 give "
                "workers/use_multiprocessing/max_queue_size to model.fit()")

    def tracker(self) -> Any:
        """A Keras callback that keeps ``epoch``/``position`` in step with training.

        Put it in ``fit(callbacks=[...])`` before any callback that saves
        :meth:`state_dict` (or call :meth:`begin_epoch`/:meth:`end_batch`/:meth:`end_epoch`
        from that callback yourself; they are idempotent).
        """
        from ckptcompat import runtime

        ends_by_exhaustion = runtime.flavour().DATASET_LEN_READ_ONCE
        data = self
        data._driven = True

        class DataTracker(runtime.callback_base()):  # type: ignore[misc]
            """Drives the epoch and counts the batches actually trained."""

            _quiet: Any = None
            _snapshot: list[Any] = []

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                data.begin_epoch(epoch)
                if not ends_by_exhaustion:
                    _match_fit_epoch_length(data, epoch, self.model, getattr(self, "params", None))
                if (ends_by_exhaustion and len(data) < data.batches_per_epoch
                        and not getattr(data, "_quieted", False)):  # one tracker of several
                    # Keras 3 ends the shortened resumed epoch by running out of data.
                    data._quieted = True
                    self._quiet = warnings.catch_warnings()
                    self._quiet.__enter__()
                    warnings.filterwarnings("ignore", message="Your input ran out of data")

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                data.end_batch(batch)
                if self._quiet is not None and data.position >= data.batches_per_epoch:
                    self._snapshot = _step_counters(self.model)

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                data.end_epoch(epoch)
                if self._quiet is not None:
                    self._quiet.__exit__(None, None, None)
                    self._quiet = None
                    data._quieted = False
                    # The step that found no data advanced the data-independent counters.
                    for var, value in self._snapshot:
                        var.assign(value)
                    self._snapshot = []

        return DataTracker()


def _match_fit_epoch_length(data: _KerasData, epoch: int, model: Any, params: Any) -> None:
    """At each epoch start: make the running Keras 2 ``fit`` run ``len(data)`` batches where it
    read the length once (:mod:`ckptcompat.runtime._fit_loops`), or refuse before a step when it
    cannot (a resumed epoch would train other batches, or every later epoch would run short)."""
    from ckptcompat import runtime
    from ckptcompat.runtime._fit_loops import match_data_handler

    flavour = runtime.flavour_for(model) if model is not None else runtime.flavour()
    policy = getattr(flavour, "data_length_policy", lambda: "every_epoch")()
    if policy == "widen" and match_data_handler(data, len(data)) == "set":
        return
    if policy not in ("widen", "fixed") or len(data) == data.batches_per_epoch:
        return  # widen without a matched handler (graph mode, fit(steps_per_epoch=)): as fixed
    params = params or {}
    steps, epochs = params.get("steps"), int(params.get("epochs") or 0)
    if (steps is not None and int(steps) != len(data)) or epochs > epoch + 1:
        raise InvalidArgumentError(
            f"this Keras's fit() reads len(data) once for all its epochs: it cannot run the rest of "
            f"epoch {epoch + 1} ({len(data)} batches) and full epochs in one fit()",
            hint=f"load the data state before fit and finish that epoch first with model.fit(data, "
                 f"initial_epoch={epoch}, epochs={epoch + 1}, ...), then model.fit(data, "
                 f"initial_epoch={epoch + 1}, epochs={max(epochs, epoch + 2)}, ...)")


class ArrayData(_KerasData):
    """Batches of in-memory arrays, reshuffled per epoch from ``(seed, epoch)``.

    ``x``/``y``/``sample_weight``: an array, a list/tuple or a dict of arrays with the same
    first dimension. ``steps_per_epoch`` (optional) uses only the first that many batches
    of every epoch's permutation; give it here, not to ``fit()``. Keras 3 PyDataset
    options (``workers``, ``use_multiprocessing``, ``max_queue_size``) pass through.
    """

    _state_kind = "array"

    def __init__(self, x: Any, y: Any = None, batch_size: int = 32, *, shuffle: bool = True,
                 seed: int = 0, sample_weight: Any = None, steps_per_epoch: int | None = None,
                 **keras_kwargs: Any) -> None:
        self.x, self.y, self.sample_weight = x, y, sample_weight
        arrays = flatten_arrays(x, "x") + flatten_arrays(y, "y") + flatten_arrays(
            sample_weight, "sample_weight")
        if not flatten_arrays(x, "x"):
            raise InvalidArgumentError("x must be an array or a list/dict of arrays, got None")
        lengths = {path: (int(a.shape[0]) if a.ndim else -1) for path, a in arrays}
        if len(set(lengths.values())) != 1 or -1 in lengths.values():
            raise InvalidArgumentError(f"all arrays need the same first dimension, got {lengths}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        self.n = next(iter(lengths.values()))
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        full = -(-self.n // self.batch_size)
        if steps_per_epoch is not None and not 0 < int(steps_per_epoch) <= full:
            raise InvalidArgumentError(
                f"steps_per_epoch={steps_per_epoch} must be in 1..{full} for {self.n} samples")
        self.steps_per_epoch = None if steps_per_epoch is None else int(steps_per_epoch)
        self._arrays = arrays
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()
        self._init_cursor(seed, self.steps_per_epoch or full)
        self._init_keras(keras_kwargs)

    def permutation(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch`` (cached for the last few epochs)."""
        perm = self._perms.get(epoch)
        if perm is None:
            perm = epoch_permutation(self.n, self.seed, epoch, self.shuffle)
            self._perms[epoch] = perm
            while len(self._perms) > 3:
                self._perms.popitem(last=False)
        return perm

    def indices(self, epoch: int, batch: int) -> np.ndarray:
        """Sample indices of batch ``batch`` of ``epoch``."""
        return self.permutation(epoch)[batch * self.batch_size:(batch + 1) * self.batch_size]

    def _batch(self, epoch: int, batch: int) -> Any:
        idx = self.indices(epoch, batch)
        take = _slicer(idx, self.shuffle)
        x = _map(self.x, take)
        if self.y is None:
            return (x,)
        if self.sample_weight is None:
            return x, _map(self.y, take)
        return x, _map(self.y, take), _map(self.sample_weight, take)

    def _config(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "n": self.n, "shuffle": self.shuffle}

    def _fingerprint(self) -> dict[str, Any]:
        return array_fingerprint(self._arrays)


def _slicer(idx: np.ndarray, shuffled: bool) -> Callable[[np.ndarray], np.ndarray]:
    if not shuffled and len(idx):
        window = slice(int(idx[0]), int(idx[-1]) + 1)
        return lambda a: a[window]
    return lambda a: a[idx]


def _map(obj: Any, take: Callable[[np.ndarray], np.ndarray]) -> Any:
    if isinstance(obj, dict):
        return {k: _map(v, take) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(v, take) for v in obj)
    return take(np.asarray(obj))


class GeneratorData(_KerasData):
    """Batches from ``factory(epoch, seed)``, an iterator of exactly ``steps_per_epoch`` batches.

    The factory must be a pure function of ``(epoch, seed)``. Batches are pulled in order;
    a Keras request out of order (fit-start peeks, worker threads) replays the epoch's
    iterator from its start, so keep ``workers=1``. Resuming at batch ``p`` skips the
    first ``p`` batches of that epoch's iterator.
    """

    _state_kind = "generator"

    def __init__(self, factory: Callable[[int, int], Any], steps_per_epoch: int, *,
                 seed: int = 0, fingerprint: Any = None, cache: int = 4,
                 **keras_kwargs: Any) -> None:
        if not callable(factory):
            raise InvalidArgumentError(f"factory must be callable, got {factory!r}")
        if not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch <= 0:
            raise InvalidArgumentError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        self.factory = factory
        self.user_fingerprint = fingerprint
        self._cache_size = max(2, int(cache))
        self._it: Iterator[Any] | None = None
        self._it_epoch = -1
        self._next = 0
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._init_cursor(seed, int(steps_per_epoch))
        self._init_keras(keras_kwargs)

    def _restart(self, epoch: int) -> None:
        self._it = iter(self.factory(epoch, self.seed))
        self._it_epoch, self._next = epoch, 0
        self._cache.clear()

    def _batch(self, epoch: int, batch: int) -> Any:
        with self._lock:
            if epoch != self._it_epoch or (batch < self._next and batch not in self._cache):
                self._restart(epoch)
            if batch in self._cache:
                return self._cache[batch]
            assert self._it is not None
            while self._next <= batch:
                try:
                    item = next(self._it)
                except StopIteration:
                    raise InvalidArgumentError(
                        f"factory(epoch={epoch}, seed={self.seed}) stopped after {self._next} "
                        f"batches; steps_per_epoch is {self._batches}") from None
                self._cache[self._next] = item
                self._next += 1
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return self._cache[batch]

    def _config(self) -> dict[str, Any]:
        return {}

    def _fingerprint(self) -> dict[str, Any]:
        name = f"{getattr(self.factory, '__module__', '?')}.{getattr(self.factory, '__qualname__', '?')}"
        fp: dict[str, Any] = {"factory": name}
        if self.user_fingerprint is not None:
            fp["user"] = self.user_fingerprint
        return fp
