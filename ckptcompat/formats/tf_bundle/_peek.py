"""``tf_bundle.peek`` / ``files``: the ``.index`` table (no tensor data but a scalar step
counter), the data shards' presence and length, and every file of a bundle."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ckptcompat.errors import CheckpointNotFoundError, CkptCompatError
from ckptcompat.formats import Peek, VariableMeta
from ckptcompat.formats import _protowire as pw
from ckptcompat.formats.tf_bundle._io import STATE_FILE, Bundle, open_bundle, resolve_prefix, shard_name
from ckptcompat.formats.tf_bundle._tf2_objects import GRAPH_KEY

__all__ = ["bundle_files", "listed_order", "peek_bundle", "prefix_of"]

log = logging.getLogger(__name__)

_ITERATION_KEYS = ("global_step", *(f"optimizer/{n}/.ATTRIBUTES/VARIABLE_VALUE"
                                    for n in ("iter", "_iterations", "iterations", "iteration")))


def prefix_of(path: Path) -> Path | None:
    """The bundle prefix ``path`` names (a prefix, ``.index``/``.meta``/``.data-*`` file, or a
    folder with a ``checkpoint`` state file or a single ``*.index``); ``None`` when none."""
    name = path.name
    if name.endswith((".index", ".meta")):
        return path.with_name(name.rsplit(".", 1)[0])
    if ".data-" in name and "-of-" in name:
        return path.with_name(name.split(".data-")[0])
    if path.is_dir():
        try:
            return resolve_prefix(path)
        except CkptCompatError:
            return None
    return path


def listed_order(folder: Path) -> dict[str, int]:
    """Bundle prefix name -> position in the folder's ``checkpoint`` state file (newest highest);
    ``{}`` when there is none (an unreadable one is logged)."""
    state = folder / STATE_FILE
    if not state.is_file():
        return {}
    try:
        fields = pw.parse_checkpoint_state(state.read_text("utf-8", "replace"))
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read the TF checkpoint state file: %s", state, exc)
        return {}
    order: dict[str, int] = {}
    for raw in [*fields.get("all_model_checkpoint_paths", []), *fields.get("model_checkpoint_path", [])]:
        base = raw.replace("\\", "/").rsplit("/", 1)[-1]
        order.pop(base, None)
        order[base] = len(order)
    return order


def bundle_files(path: Path) -> list[Path]:
    """``.index``, data shards and ``.meta`` of the bundle, plus the folder's ``checkpoint``
    state file when it lists this bundle (it is shared with the other bundles it lists)."""
    prefix = prefix_of(path)
    if prefix is None or not prefix.parent.is_dir():
        return []
    own = sorted(p for p in prefix.parent.iterdir()
                 if p.name in (f"{prefix.name}.index", f"{prefix.name}.meta")
                 or (p.name.startswith(f"{prefix.name}.data-") and "-of-" in p.name))
    if not own and prefix.is_file():
        return [prefix]  # a V1 single-file checkpoint
    state = prefix.parent / STATE_FILE
    if own and prefix.name in listed_order(prefix.parent):
        own.append(state)
    return own


def _shard_problem(bundle: Bundle) -> str | None:
    needed: dict[int, int] = {}
    for entry in bundle.entries.values():
        needed[entry.shard_id] = max(needed.get(entry.shard_id, 0), entry.offset + entry.size)
    for shard in range(bundle.header.num_shards):
        data = shard_name(bundle.prefix, shard, bundle.header.num_shards)
        try:
            size = os.stat(data).st_size
        except OSError:
            return f"data shard {data.name} is missing"
        if size < needed.get(shard, 0):
            return f"data shard {data.name} is truncated ({size} bytes, the index needs {needed[shard]})"
    return None


def _scalar(bundle: Bundle, key: str) -> int | None:
    entry = bundle.entries.get(key)
    if entry is None or entry.shape not in ((), (1,)) or not bundle.is_numeric_or_string(key):
        return None
    try:
        return int(bundle.read(key).reshape(-1)[0])
    except (CkptCompatError, TypeError, ValueError, OverflowError):
        return None


def peek_bundle(path: Path, name: str) -> Peek:
    """Kind, variables (key, shape, dtype) and step counter of the bundle at ``path``; a missing
    or short data shard (or a missing ``.index`` next to data shards) is reported as ``problem``."""
    prefix = prefix_of(path)
    if prefix is None:
        resolve_prefix(path)  # raises the precise CheckpointNotFoundError
        raise CheckpointNotFoundError("no TensorFlow bundle here", path=path)
    if not Path(f"{prefix}.index").is_file():
        found = bundle_files(prefix)
        if found == [prefix]:
            return Peek(format=name, path=prefix, kind="v1")
        if found:
            return Peek(format=name, path=prefix, listed=listed_order(prefix.parent).get(prefix.name),
                        problem=f"{prefix.name}.index is missing (interrupted save?)")
        raise CheckpointNotFoundError("no such bundle (no .index file)", path=prefix,
                                      hint="give the prefix (model.ckpt), the .index file or the folder")
    listed = listed_order(prefix.parent).get(prefix.name)
    bundle = open_bundle(prefix)
    problem = _shard_problem(bundle)
    step = None
    if problem is None:
        step = next((v for v in (_scalar(bundle, k) for k in _ITERATION_KEYS) if v is not None), None)
    variables = tuple(VariableMeta(k, e.shape, bundle.dtype_name(k))
                      for k, e in bundle.entries.items() if not k.startswith("\x00"))
    object_based = GRAPH_KEY in bundle.entries
    return Peek(format=name, path=prefix, kind="object_based" if object_based else "name_based",
                global_step=step, iterations=step if object_based else None,
                variables=variables, problem=problem, listed=listed)
