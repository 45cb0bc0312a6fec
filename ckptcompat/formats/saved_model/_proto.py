"""Decode ``saved_model.pb`` and ``keras_metadata.pb`` with the pure-Python wire reader.

Only the fields ckptcompat needs are decoded (no TensorFlow, no protobuf package):

* ``SavedModel``: ``meta_graphs`` (2) -> ``MetaGraphDef``: ``meta_info_def`` (1: ``tags`` 4,
  ``tensorflow_version`` 5, ``tensorflow_git_version`` 6), ``saver_def`` (3),
  ``object_graph_def`` (7) -> ``SavedObjectGraph.nodes`` (1) -> ``SavedObject``:
  ``children`` (1), ``user_object`` (4: ``identifier`` 1, ``metadata`` 3 -- where TF 2.0-2.4
  kept the Keras metadata), ``variable`` (7: ``name`` 6).
* ``keras_metadata.pb`` (TF 2.5+): ``SavedMetadata.nodes`` (1) -> ``SavedObject``:
  ``node_id`` 2, ``node_path`` 3, ``identifier`` 4, ``metadata`` 5 (JSON).

Decoding raises :class:`ValueError` on malformed bytes; the caller turns it into a typed error.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ckptcompat.formats import _protowire as pw

__all__ = ["KerasNode", "MetaGraph", "SavedModelProto", "decode_saved_model", "decode_keras_metadata"]


@dataclass(frozen=True)
class KerasNode:
    """One Keras object's metadata: object-graph node id, path, identifier, JSON text."""

    node_id: int
    node_path: str
    identifier: str
    metadata: str


@dataclass
class MetaGraph:
    """The parts of one ``MetaGraphDef`` ckptcompat uses."""

    tags: list[str] = field(default_factory=list)
    tensorflow_version: str = ""
    tensorflow_git_version: str = ""
    has_saver: bool = False
    has_object_graph: bool = False
    keras_nodes: list[KerasNode] = field(default_factory=list)  # user_object metadata (TF <= 2.4)
    node_count: int = 0


@dataclass
class SavedModelProto:
    """``saved_model.pb`` decoded: schema version and meta graphs."""

    schema_version: int = 0
    meta_graphs: list[MetaGraph] = field(default_factory=list)


def _text(value: int | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _meta_info(buf: bytes, mg: MetaGraph) -> None:
    for num, _, val in pw.iter_fields(buf):
        if num == 4:
            mg.tags.append(_text(val))
        elif num == 5:
            mg.tensorflow_version = _text(val)
        elif num == 6:
            mg.tensorflow_git_version = _text(val)


def _object_graph(buf: bytes, mg: MetaGraph) -> None:
    mg.has_object_graph = True
    children: list[list[tuple[int, str]]] = []
    metas: list[tuple[int, str, str]] = []
    for num, _, val in pw.iter_fields(buf):
        if num != 1 or not isinstance(val, bytes):
            continue
        node_id = len(children)
        kids: list[tuple[int, str]] = []
        for fnum, _, fval in pw.iter_fields(val):
            if not isinstance(fval, bytes) or fnum not in (1, 4):  # children, user object metadata
                continue
            sub = {n: v for n, _, v in pw.iter_fields(fval)}
            if fnum == 1:
                kid = sub.get(1, 0)
                kids.append((kid if isinstance(kid, int) else 0, _text(sub.get(2, b""))))
            elif fnum == 4 and _text(sub.get(3, b"")):
                metas.append((node_id, _text(sub.get(1, b"")), _text(sub.get(3, b""))))
        children.append(kids)
    mg.node_count = len(children)
    paths: dict[int, str] = {0: "root"}
    queue = deque([0])
    while queue:  # shortest path of child names, breadth first in file order
        nid = queue.popleft()
        for kid, name in children[nid] if nid < len(children) else ():
            if kid not in paths:
                paths[kid] = f"{paths[nid]}.{name}"
                queue.append(kid)
    mg.keras_nodes = [KerasNode(nid, paths.get(nid, ""), ident, meta) for nid, ident, meta in metas]


def decode_saved_model(buf: bytes) -> SavedModelProto:
    """Decode a serialized ``SavedModel`` message (graph defs are skipped, not parsed)."""
    out = SavedModelProto()
    for num, _, val in pw.iter_fields(buf):
        if num == 1 and isinstance(val, int):
            out.schema_version = val
        elif num == 2 and isinstance(val, bytes):
            mg = MetaGraph()
            for mnum, _, mval in pw.iter_fields(val):
                if not isinstance(mval, bytes):
                    continue
                if mnum == 1:
                    _meta_info(mval, mg)
                elif mnum == 3:
                    mg.has_saver = True
                elif mnum == 7:
                    _object_graph(mval, mg)
            out.meta_graphs.append(mg)
    return out


def decode_keras_metadata(buf: bytes) -> list[KerasNode]:
    """Decode ``keras_metadata.pb`` (``SavedMetadata``) into its nodes, in file order."""
    nodes: list[KerasNode] = []
    for num, _, val in pw.iter_fields(buf):
        if num != 1 or not isinstance(val, bytes):
            continue
        sub: dict[int, int | bytes] = {}
        for fnum, _, fval in pw.iter_fields(val):
            sub.setdefault(fnum, fval)
        node_id = sub.get(2, 0)
        nodes.append(KerasNode(node_id if isinstance(node_id, int) else 0, _text(sub.get(3, b"")),
                               _text(sub.get(4, b"")), _text(sub.get(5, b""))))
    return nodes
