"""Cheap per-file checks for :mod:`ckptcompat.discovery`: format, damage, own attributes.

Nothing here loads tensors: every check is the format's
:meth:`~ckptcompat.formats.Format.peek` (HDF5 attributes and headers, a zip's metadata
members, a bundle's ``.index`` with each data shard's size compared with what the index
needs). A file that passes may still fail a full read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ckptcompat.errors import CkptCompatError

__all__ = ["Probe", "probe_file", "probe_bundle", "probe_saved_model", "read_state_json"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """Result of the cheap checks; ``problem`` is ``None`` when nothing is wrong."""

    format: str | None
    problem: str | None = None
    epoch: int | None = None
    step: int | None = None
    global_step: int | None = None
    bundle: str | None = None  # "name_based" | "object_based" for TF bundles
    state_order: int | None = None  # position in the folder's own checkpoint list (newest highest)
    #: how much training state the headers show: model config + optimizer 2, one of them 1, else 0
    #: (weights only, or not told cheaply); among checkpoints of one epoch the fullest is resumed
    holds: int = 0


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, CkptCompatError) else f"{type(exc).__name__}: {exc}"
    return text.strip()


def _from_peek(fmt: str, path: Path) -> Probe:
    """The format's :meth:`~ckptcompat.formats.Format.peek` as a Probe (errors become ``problem``)."""
    from ckptcompat import formats

    try:
        meta = formats.get(fmt).peek(path)
    except Exception as exc:  # noqa: BLE001 - h5py/zipfile raise many types; reported, not raised
        return Probe(fmt, f"cannot read the {fmt} headers: {_describe(exc)}")
    kind = meta.kind if meta.kind in ("name_based", "object_based") else None
    if meta.problem is not None:
        return Probe(fmt, meta.problem, bundle=kind, state_order=meta.listed)
    holds = (meta.kind == "model") + (meta.optimizer is not None or meta.iterations is not None)
    return Probe(fmt, epoch=meta.epoch, step=meta.step,
                 global_step=meta.global_step if meta.epoch is not None else None, bundle=kind,
                 state_order=meta.listed, holds=holds)


def probe_file(path: Path) -> Probe:
    """Format of a single-file checkpoint (.h5/.hdf5/.keras/V1 .ckpt) and whether it looks intact."""
    from ckptcompat import formats

    try:
        if path.stat().st_size == 0:
            return Probe(None, "empty file (0 bytes): the save was interrupted")
        fmt = formats.detect(path)
    except (CkptCompatError, OSError) as exc:
        if path.suffix.lower() == ".ckpt":
            return Probe(None, "a .ckpt file that is neither a bundle prefix nor a V1 checkpoint")
        return Probe(None, _describe(exc))
    return _from_peek(fmt, path)


def probe_bundle(prefix: Path) -> Probe:
    """Open a bundle's ``.index`` and check that every data shard is there and long enough."""
    return _from_peek("tf_bundle", prefix)


def probe_saved_model(folder: Path) -> Probe:
    """A SavedModel folder: ``saved_model.pb`` present and non-empty, ``variables/`` bundle intact."""
    pb = folder / "saved_model.pb"
    try:
        if pb.stat().st_size == 0:
            return Probe("saved_model", "saved_model.pb is empty (0 bytes): the save was interrupted")
    except OSError:
        return Probe("saved_model", "saved_model.pb is missing")
    bundle = probe_bundle(folder / "variables" / "variables")
    return Probe("saved_model", bundle.problem and f"variables/: {bundle.problem}", bundle=bundle.bundle,
                 holds=1)  # the model itself (its optimizer is not told cheaply)


def read_state_json(path: Path) -> object | None:
    """ckptcompat's own ``state.json`` as a TrainingState, ``None`` (logged) when unusable."""
    from ckptcompat.formats import sidecar

    if not sidecar.sniff(path):
        return None
    try:
        return sidecar.read(path)
    except CkptCompatError as exc:
        log.warning("%s: ignoring unreadable state.json: %s", path, _describe(exc))
        return None
