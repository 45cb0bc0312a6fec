"""Match a checkpoint's variables to a live model: by canonical name first, else by structure.

Layer names that Keras generates (``dense_3``) are not identity: the same architecture built
in another process gets other names. When the names of the checkpoint and of the live model
do not fit one to one, the layers are paired the way Keras 3 itself saves and loads them: in
model order (nested models walked depth first), layer class against layer class, and inside
each layer weight by weight (order and weight name), verifying the shape of every variable.
The structure is taken only when every layer and every variable fits; optimizer slots follow
the weights they belong to. Framework-free: the live side comes in as plain descriptions.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckptcompat._arrays import shape_fits
from ckptcompat.names.variables import LEAF_ALIASES
from ckptcompat.state import TrainingState

__all__ = ["LiveLayer", "Match", "live_layers", "config_layers", "match_state"]

log = logging.getLogger(__name__)

_MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})


@dataclass(frozen=True)
class LiveLayer:
    """A layer of a model: its path (``inner/dense_3``) and class name (``Dense``)."""

    path: str
    class_name: str | None


@dataclass(frozen=True)
class Match:
    """How the checkpoint was matched: ``"name"`` or ``"structure"``.

    ``mapping``: checkpoint weight name -> live weight name for every variable renamed by
    structure; ``misfits``: why structure matching did not fit (empty when it did or was
    not needed); ``state``: the checkpoint state under live names.
    """

    method: str
    state: TrainingState
    mapping: Mapping[str, str] = field(default_factory=dict)
    misfits: tuple[str, ...] = ()


def live_layers(model: Any, is_model: Any) -> list[LiveLayer]:
    """Every layer of ``model`` with its canonical path, depth first in ``model.layers`` order
    (the walk of :func:`ckptcompat.runtime._walk.walk_variables`)."""
    out: list[LiveLayer] = []

    def visit(container: Any, prefix: str, depth: int) -> None:
        if depth > 64:
            return
        for layer in list(getattr(container, "layers", None) or []):
            path = prefix + str(layer.name)
            out.append(LiveLayer(path, type(layer).__name__))
            if is_model(layer):
                visit(layer, path + "/", depth + 1)

    visit(model, "", 0)
    return out


def _entries(cfg: Any) -> list[Mapping[str, Any]]:
    if isinstance(cfg, list):  # Keras <= 2.2 Sequential: the config is the layer list
        return [e for e in cfg if isinstance(e, Mapping)]
    if isinstance(cfg, Mapping) and isinstance(cfg.get("layers"), list):
        return [e for e in cfg["layers"] if isinstance(e, Mapping)]
    return []


def config_layers(model_config: Mapping[str, Any] | None) -> list[LiveLayer]:
    """The layers a model config describes, with paths and classes (a Keras 1 class under its Keras 2
    name: ``Convolution2D`` is ``Conv2D``), in model order."""
    from ckptcompat.names.configs.keras1 import CLASS_RENAMES

    out: list[LiveLayer] = []

    def visit(cfg: Any, prefix: str, depth: int) -> None:
        if depth > 64:
            return
        for entry in _entries(cfg):
            cls = str(entry.get("class_name") or "") or None
            cls = CLASS_RENAMES[cls][0] if cls in CLASS_RENAMES else cls
            inner = entry.get("config")
            name = (inner.get("name") if isinstance(inner, Mapping) else None) or entry.get("name")
            if not name:
                continue
            out.append(LiveLayer(prefix + str(name), cls))
            if cls in _MODEL_CLASSES or _entries(inner):
                visit(inner, f"{prefix}{name}/", depth + 1)

    if isinstance(model_config, Mapping):
        visit(model_config.get("config"), "", 0)
    return out


@dataclass
class _Group:
    layer: str
    class_name: str | None
    names: list[str]


def _group(names: Iterable[str], layers: Sequence[LiveLayer]) -> list[_Group]:
    """Variables grouped by the deepest layer whose path prefixes them, in layer order
    (variables of no known layer are grouped by their parent path, after the known ones)."""
    known = {layer.path: layer for layer in layers}
    order = {layer.path: i for i, layer in enumerate(layers)}
    groups: dict[str, _Group] = {}
    for name in names:
        parts = name.split("/")
        owner = None
        for cut in range(len(parts) - 1, 0, -1):
            head = "/".join(parts[:cut])
            if head in known:  # the deepest layer whose path prefixes the name
                owner = known[head]
                break
        if owner is None:
            head = name.rpartition("/")[0]
            owner = LiveLayer(head, None)
        groups.setdefault(owner.path, _Group(owner.path, owner.class_name, [])).names.append(name)
    big = len(layers) + 1
    return sorted(groups.values(), key=lambda g: order.get(g.layer, big))


def _short(name: str, layer: str) -> str:
    return name[len(layer) + 1:] if layer and name.startswith(layer + "/") else name


def _leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _same_leaf(a: str, b: str, class_name: str | None) -> bool:
    return a == b or {a, b} <= LEAF_ALIASES.get(class_name or "", frozenset())


def _generation_spelling(state: TrainingState, live: Mapping[str, tuple[int, ...]],
                         live_layer_list: Sequence[LiveLayer]) -> dict[str, str]:
    """Checkpoint names the live model spells the other generation's way (by the live layer's
    class, :data:`LEAF_ALIASES`): checkpoint name -> live name."""
    classes = {layer.path: layer.class_name for layer in live_layer_list}
    out: dict[str, str] = {}
    for name in state.weights:
        if name in live:
            continue
        head, _, leaf = name.rpartition("/")
        for other in LEAF_ALIASES.get(classes.get(head) or "", frozenset()) - {leaf}:
            candidate = f"{head}/{other}"
            if leaf in LEAF_ALIASES.get(classes.get(head) or "", frozenset()) and candidate in live \
                    and candidate not in state.weights:
                out[name] = candidate
    return out


def _pair_by_structure(state: TrainingState, ckpt_layers: Sequence[LiveLayer],
                       live: Mapping[str, tuple[int, ...]],
                       live_layer_list: Sequence[LiveLayer]) -> tuple[dict[str, str], list[str]]:
    """(checkpoint name -> live name, misfits) pairing layers in order."""
    a = _group(state.weights, ckpt_layers)
    b = _group(live, live_layer_list)
    misfits: list[str] = []
    if len(a) != len(b):
        misfits.append(f"structure: the checkpoint has {len(a)} layers with weights, the model {len(b)} "
                       f"(checkpoint: {', '.join(g.layer for g in a)}; model: {', '.join(g.layer for g in b)})")
    mapping: dict[str, str] = {}
    for i, (ga, gb) in enumerate(zip(a, b)):
        where = f"structure: layer #{i} checkpoint {ga.layer!r} vs model {gb.layer!r}"
        if ga.class_name and gb.class_name and ga.class_name != gb.class_name:
            misfits.append(f"{where}: class {ga.class_name} vs {gb.class_name}")
            continue
        if len(ga.names) != len(gb.names):
            misfits.append(f"{where}: {len(ga.names)} vs {len(gb.names)} variables")
            continue
        for src, dst in zip(ga.names, _in_file_order(ga, gb)):
            s_short, d_short = _short(src, ga.layer), _short(dst, gb.layer)
            shape = tuple(np.shape(state.weights[src]))
            if not _same_leaf(_leaf(s_short), _leaf(d_short), gb.class_name or ga.class_name):
                misfits.append(f"{where}: variable {s_short!r} vs {d_short!r}")
            elif not shape_fits(shape, live[dst]):
                misfits.append(f"{where}: {s_short} shape {shape} vs {tuple(live[dst])}")
            else:
                mapping[src] = dst
    return mapping, misfits


def _in_file_order(ga: _Group, gb: _Group) -> list[str]:
    """The live layer's names in the checkpoint layer's order where both are of one known class
    and hold the same short names, each once (a layer that creates its variables in another order
    than Keras saves them: an int8-quantized kernel is created after the bias); else in the live
    order."""
    if not ga.class_name or ga.class_name != gb.class_name:
        return list(gb.names)
    short = [_short(n, ga.layer) for n in ga.names]
    live = {_short(n, gb.layer): n for n in gb.names}
    if len(set(short)) == len(short) == len(live) and set(short) == set(live):
        return [live[s] for s in short]
    return list(gb.names)


def _rename(state: TrainingState, mapping: Mapping[str, str]) -> TrainingState:
    weights = {mapping.get(k, k): v for k, v in state.weights.items()}
    optimizer = state.optimizer
    if optimizer is not None:
        slots = {mapping.get(k, k): v for k, v in optimizer.slots.items()}
        optimizer = dataclasses.replace(optimizer, slots=slots)
    return state.replace(weights=weights, optimizer=optimizer)


#: the suffix Keras adds to a repeated weight name in one scope: TF 1.x names the weights of a
#: ``StackedRNNCells``' second cell ``kernel_1`` where the live walk says ``<cell>/kernel``
_UNIQUIFIER = re.compile(r"(.*?)(?:_([1-9]\d{0,3}))?", re.S)
#: the live layer classes that hold cells (``RNN(StackedRNNCells(...))``): the only place the rule applies
_CELL_HOLDERS = frozenset({"RNN", "StackedRNNCells"})


def _owner(name: str, layers: Sequence[LiveLayer]) -> str | None:
    """The live layer path ``name`` belongs to (the longest that prefixes it)."""
    found = [layer.path for layer in layers if layer.path and name.startswith(layer.path + "/")]
    return max(found, key=len) if found else None


def _pair_flat_cells(flat: Sequence[str], scoped: Sequence[str], layer: str,
                     state: TrainingState, live: Mapping[str, tuple[int, ...]]) -> dict[str, str] | None:
    """File variables held flat in ``layer`` (``kernel``, ``kernel_1``) -> the live ones held per
    cell (``<cell>/kernel``): suffix N is the N-th cell in the model's order, leaf and shape equal;
    None unless every one pairs one to one."""
    scopes: list[str] = []
    for name in scoped:
        scope = name[len(layer) + 1:].rpartition("/")[0]
        if not scope:
            return None
        if scope not in scopes:
            scopes.append(scope)
    parents = {scope.rpartition("/")[0] for scope in scopes}  # one level of cells under one parent
    if len(parents) != 1 or any("/" in scope[len(next(iter(parents))):].strip("/") for scope in scopes):
        return None
    by_key = {(scopes.index(n[len(layer) + 1:].rpartition("/")[0]), _leaf(n)): n for n in scoped}
    out: dict[str, str] = {}
    for name in flat:
        short = name[len(layer) + 1:]
        found = _UNIQUIFIER.fullmatch(short)
        if found is None:
            return None
        base, index = found.groups()
        dst = by_key.get((int(index or 0), base))
        if "/" in short or dst is None or not shape_fits(np.shape(state.weights[name]), live[dst]):
            return None
        out[name] = dst
    return out if len(out) == len(scoped) == len(set(out.values())) else None


def _pair_leftovers(state: TrainingState, live: Mapping[str, tuple[int, ...]],
                    live_layer_list: Sequence[LiveLayer]) -> dict[str, str]:
    """A file without config in another layer order (a TF bundle lists layers alphabetically)
    whose names fit the model but for the cells TF 1.x held flat: every other variable kept by
    name (name and shape), those paired per layer by :func:`_pair_flat_cells`; empty when any
    variable left over lies outside a layer both sides name alike, or does not pair."""
    exact = {k: k for k, v in state.weights.items() if k in live and shape_fits(np.shape(v), live[k])}
    rest = [k for k in state.weights if k not in exact]
    rest_live = [k for k in live if k not in exact]
    if not rest or len(rest) != len(rest_live):
        return {}
    pairs: dict[str, str] = {}
    classes = {layer.path: layer.class_name for layer in live_layer_list}
    for layer in {_owner(k, live_layer_list) for k in rest + rest_live}:
        if layer is None or classes.get(layer) not in _CELL_HOLDERS:
            return {}
        paired = _pair_flat_cells([k for k in rest if _owner(k, live_layer_list) == layer],
                                  [k for k in rest_live if _owner(k, live_layer_list) == layer], layer, state, live)
        if paired is None:
            return {}
        pairs.update(paired)
    return {**exact, **pairs} if len(pairs) == len(rest) else {}


def match_state(state: TrainingState, live: Mapping[str, tuple[int, ...]],
                live_layer_list: Sequence[LiveLayer], *, remap: Any = None) -> Match:
    """``state`` under the live model's names.

    ``live``: live weight name -> shape (model order); ``live_layer_list``: from
    :func:`live_layers`; ``remap``: an optional name-level renamer tried first (suffix
    matching of nested TF bundles, Keras 3 file paths), ``(state) -> state``.
    """
    def fits(st: TrainingState) -> bool:
        return set(st.weights) == set(live) and all(
            shape_fits(np.shape(v), live[k]) for k, v in st.weights.items())

    if fits(state):
        return Match("name", state)
    if remap is not None:
        renamed = remap(state)
        if fits(renamed):
            return Match("name", renamed)
    spelled = _generation_spelling(state, live, live_layer_list)
    if spelled and fits(_rename(state, spelled)):
        log.info("matched %d variable(s) by the other generation's spelling: %s", len(spelled),
                 ", ".join(f"{k} -> {v}" for k, v in spelled.items()))
        return Match("structure", _rename(state, spelled), mapping=spelled)
    ckpt_layers = config_layers(state.model_config)
    mapping, misfits = _pair_by_structure(state, ckpt_layers, live, live_layer_list)
    if misfits or len(mapping) != len(state.weights) or set(mapping.values()) != set(live):
        mapping = _pair_leftovers(state, live, live_layer_list) or mapping
    if misfits and len(mapping) == len(state.weights) and set(mapping.values()) == set(live):
        misfits = []
    if misfits or len(mapping) != len(state.weights) or set(mapping.values()) != set(live):
        fallback = remap(state) if remap is not None else state
        return Match("name", fallback, misfits=tuple(misfits) or ("structure: no one-to-one pairing",))
    renamed = {k: v for k, v in mapping.items() if k != v}
    if renamed:
        log.info("matched %d variable(s) by structure (layer class, order, weight name and shape): %s",
                 len(renamed), ", ".join(f"{k} -> {v}" for k, v in renamed.items()))
    return Match("structure", _rename(state, mapping), mapping=renamed)
