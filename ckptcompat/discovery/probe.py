"""Cheap per-file checks for :mod:`ckptcompat.discovery`: format, damage, own attributes.

Nothing here loads tensors: HDF5 files are opened for their root attributes, zips for
their member list, bundles for their ``.index`` (and each data shard's size is compared
with what the index needs). A file that passes may still fail a full read.
"""

from __future__ import annotations

import logging
import os
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


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, CkptCompatError) else f"{type(exc).__name__}: {exc}"
    return text.strip()


def _h5_attributes(path: Path) -> tuple[int | None, int | None, int | None]:
    """ckptcompat's own root attributes of a legacy .h5 (plain Keras writes none)."""
    from ckptcompat.formats.keras_h5 import ATTR_EPOCH, ATTR_GLOBAL_STEP, ATTR_STEP

    try:
        import h5py  # noqa: PLC0415 - optional, lazily imported
    except ImportError:
        return None, None, None

    def get(attrs: object, key: str) -> int | None:
        value = attrs.get(key)  # type: ignore[attr-defined]
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None

    with h5py.File(path, "r") as f:
        return get(f.attrs, ATTR_EPOCH), get(f.attrs, ATTR_STEP), get(f.attrs, ATTR_GLOBAL_STEP)


def probe_file(path: Path) -> Probe:
    """Format of a single-file checkpoint (.h5/.hdf5/.keras/V1 .ckpt) and whether it looks intact."""
    from ckptcompat.formats import registry, tf_bundle

    try:
        if path.stat().st_size == 0:
            return Probe(None, "empty file (0 bytes): the save was interrupted")
        if path.suffix.lower() == ".ckpt" and not Path(f"{path}.index").exists():
            if tf_bundle.sniff(path):
                return Probe("tf_bundle")
            return Probe(None, "a .ckpt file that is neither a bundle prefix nor a V1 checkpoint")
        fmt = registry.detect(path)
    except (CkptCompatError, OSError) as exc:
        return Probe(None, _describe(exc))
    if fmt == "keras_h5":
        try:
            epoch, step, global_step = _h5_attributes(path)
        except Exception as exc:  # noqa: BLE001 - h5py raises many types; reported, not raised
            return Probe(fmt, f"cannot read the HDF5 attributes: {_describe(exc)}")
        return Probe(fmt, epoch=epoch, step=step, global_step=global_step)
    return Probe(fmt)


def probe_bundle(prefix: Path) -> Probe:
    """Open a bundle's ``.index`` and check that every data shard is there and long enough."""
    from ckptcompat.formats.tf_bundle._io import open_bundle, shard_name
    from ckptcompat.formats.tf_bundle._tf2_objects import GRAPH_KEY

    if not Path(f"{prefix}.index").is_file():
        return Probe("tf_bundle", f"{prefix.name}.index is missing (interrupted save?)")
    try:
        bundle = open_bundle(prefix)
    except (CkptCompatError, OSError) as exc:
        return Probe("tf_bundle", _describe(exc))
    kind = "object_based" if GRAPH_KEY in bundle.entries else "name_based"
    needed: dict[int, int] = {}
    for entry in bundle.entries.values():
        needed[entry.shard_id] = max(needed.get(entry.shard_id, 0), entry.offset + entry.size)
    for shard in range(bundle.header.num_shards):
        data = shard_name(prefix, shard, bundle.header.num_shards)
        try:
            size = os.stat(data).st_size
        except OSError:
            return Probe("tf_bundle", f"data shard {data.name} is missing", bundle=kind)
        if size < needed.get(shard, 0):
            return Probe("tf_bundle", f"data shard {data.name} is truncated ({size} bytes, the index "
                                      f"needs {needed[shard]})", bundle=kind)
    return Probe("tf_bundle", bundle=kind)


def probe_saved_model(folder: Path) -> Probe:
    """A SavedModel folder: ``saved_model.pb`` present and non-empty, ``variables/`` bundle intact."""
    pb = folder / "saved_model.pb"
    try:
        if pb.stat().st_size == 0:
            return Probe("saved_model", "saved_model.pb is empty (0 bytes): the save was interrupted")
    except OSError:
        return Probe("saved_model", "saved_model.pb is missing")
    bundle = probe_bundle(folder / "variables" / "variables")
    return Probe("saved_model", bundle.problem and f"variables/: {bundle.problem}", bundle=bundle.bundle)


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
