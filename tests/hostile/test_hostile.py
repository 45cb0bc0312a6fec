"""Hostile and broken inputs (issue 19): every parser bounded, every failure typed.

Each hostile input is built here from a file a real release wrote (``fixtures/``: tf.keras
2.12 ``model.h5``, Keras 3.15 ``model.keras``, a TF 2.12 tensor bundle) or from scratch where
no producer is needed (stores, locks, pickles). Each goes through the operations that apply
-- ``inspect``, ``read``, ``migrate``, ``ckptcompat verify``/``ls``, ``resume`` -- asserting
the precise typed error (or flagged problem) and that nothing is written anywhere.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

import ckptcompat
from ckptcompat import _bounded, _plausible
from ckptcompat.cli import main
from ckptcompat.errors import (
    CheckpointNotFoundError,
    CkptCompatError,
    CorruptCheckpointError,
    StoreLockedError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)
from ckptcompat.formats import _protowire as pw
from ckptcompat.formats.safe_pickle import safe_loads
from ckptcompat.formats.sidecar import read_legacy_sidecar
from ckptcompat.formats.tf_bundle._sstable import build_table, read_table
from ckptcompat import migrate
from ckptcompat.state import OptimizerState
from ckptcompat.store import CheckpointStore
from ckptcompat.store.lock import LOCK_NAME, StoreLock, is_stale, pid_alive, read_holder
from ckptcompat.store.manifest import MANIFEST_NAME, MAX_ENTRIES
from _paths import FIXTURES

H5 = FIXTURES / "tf212" / "mlp_adam" / "model.h5"            # written by tf.keras 2.12
KERAS = FIXTURES / "tf221-keras3" / "mlp_adam" / "model.keras"  # written by Keras 3.15
BUNDLE = FIXTURES / "tf212" / "tf1_adam" / "tf1"               # written by TF 2.12 (tf.compat.v1 Saver)
KERNEL = "model_weights/dense/dense/kernel:0"
DEEP = 100_000


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@contextmanager
def nothing_written(root: Path) -> Iterator[None]:
    """Assert the block creates, removes or renames nothing under ``root``."""
    before = _tree(root)
    yield
    assert _tree(root) == before, f"left behind: {sorted(set(_tree(root)) ^ set(before))}"


def _raises(kind: type[CkptCompatError], fn: Callable[[], object], *needles: str) -> CkptCompatError:
    with pytest.raises(kind) as info:
        fn()
    exc = info.value
    assert type(exc) is kind, f"{type(exc).__name__} is not exactly {kind.__name__}: {exc}"
    for needle in needles:
        assert needle in str(exc), f"{needle!r} not in {exc}"
    return exc


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


# ------------------------------------------------------------------ bounded JSON
def test_json_depth_is_measured_without_recursion() -> None:
    assert _bounded.json_depth(b'[1, {"a": "]]]}}}", "b": [[]]}]') == 4
    assert _bounded.json_depth(b'["\\\\", ["\\"[[["]]') == 2
    assert _bounded.json_depth(b"[" * DEEP + b"]" * DEEP, limit=10) > 10
    assert _bounded.json_depth(b"[" * DEEP) > 10  # unclosed counts as deep as it is long
    exc = _raises(CorruptCheckpointError,
                  lambda: _bounded.loads(b"[" * DEEP + b"]" * DEEP, path="x.json", what="doc"),
                  "deeper than the limit of 200")
    assert exc.path == "x.json"
    _raises(CorruptCheckpointError, lambda: _bounded.loads(b"{}  ", path="x", what="doc", max_bytes=3),
            "over the 3-byte limit")
    assert _bounded.loads(b'{"a": [1, 2]}', path=None, what="doc") == {"a": [1, 2]}


# ------------------------------------------------------------------ HDF5 (real tf.keras 2.12 file)
def _h5_copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "in" / f"{name}.h5"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(H5, target)
    return target


def _replace(f: h5py.File, key: str, make: Callable[[h5py.Group, str, tuple[int, ...]], None]) -> None:
    shape = f[key].shape
    parent, name = key.rsplit("/", 1)
    del f[key]
    make(f[parent], name, shape)


def _other_file(tmp_path: Path, shape: tuple[int, ...]) -> Path:
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset("data", data=np.full(shape, 7.0, np.float32))
        g.create_group("grp").create_dataset("kernel:0", data=np.full(shape, 7.0, np.float32))
    return other


def _virtual(group: h5py.Group, name: str, shape: tuple[int, ...], other: Path) -> None:
    layout = h5py.VirtualLayout(shape=shape, dtype="f4")
    layout[...] = h5py.VirtualSource(str(other), "data", shape=shape)
    group.create_virtual_dataset(name, layout)


H5_CASES: dict[str, tuple[type[CkptCompatError], str]] = {
    "external_link": (UnsafeCheckpointError, "ExternalLink"),
    "soft_link_loop": (UnsafeCheckpointError, "SoftLink"),
    "soft_link": (UnsafeCheckpointError, "SoftLink"),
    "external_layer_group": (UnsafeCheckpointError, "ExternalLink"),
    "virtual_dataset": (UnsafeCheckpointError, "virtual dataset"),
    "compound_dtype": (CorruptCheckpointError, "not a numeric dtype"),
    "vlen_string_dtype": (CorruptCheckpointError, "not a numeric dtype"),
    "object_reference_dtype": (CorruptCheckpointError, "not a numeric dtype"),
    "iterations_inf": (CorruptCheckpointError, "iteration"),
    "iterations_nan": (CorruptCheckpointError, "iteration"),
    "iterations_1e300": (CorruptCheckpointError, "optimizer iterations"),
    "model_config_100k_deep": (CorruptCheckpointError, "deeper than the limit"),
    "learning_rate_inf": (CorruptCheckpointError, "learning_rate"),
}


def _make_h5(tmp_path: Path, case: str) -> Path:
    path = _h5_copy(tmp_path, case)
    with h5py.File(path, "r+") as f:
        shape = f[KERNEL].shape
        if case == "external_link":
            other = _other_file(tmp_path, shape)
            _replace(f, KERNEL, lambda g, n, s: g.__setitem__(n, h5py.ExternalLink(str(other), "/data")))
        elif case == "soft_link_loop":
            _replace(f, KERNEL, lambda g, n, s: g.__setitem__(n, h5py.SoftLink(f"/{KERNEL}")))
        elif case == "soft_link":
            _replace(f, KERNEL, lambda g, n, s: g.__setitem__(
                n, h5py.SoftLink("/model_weights/dense_1/dense_1/kernel:0")))
        elif case == "external_layer_group":
            other = _other_file(tmp_path, shape)
            del f["model_weights/dense/dense"]
            f["model_weights/dense"]["dense"] = h5py.ExternalLink(str(other), "/grp")
        elif case == "virtual_dataset":
            other = _other_file(tmp_path, shape)
            _replace(f, KERNEL, lambda g, n, s: _virtual(g, n, s, other))
        elif case == "compound_dtype":
            _replace(f, KERNEL, lambda g, n, s: g.create_dataset(n, shape=s, dtype=[("a", "f4"), ("b", "i4")]))
        elif case == "vlen_string_dtype":
            _replace(f, KERNEL, lambda g, n, s: g.create_dataset(
                n, data=np.full(s, "x", dtype=object), dtype=h5py.string_dtype()))
        elif case == "object_reference_dtype":
            _replace(f, KERNEL, lambda g, n, s: g.create_dataset(
                n, data=np.full(s, f.ref, dtype=object), dtype=h5py.ref_dtype))
        elif case.startswith("iterations_"):
            value = {"iterations_inf": np.inf, "iterations_nan": np.nan, "iterations_1e300": 1e300}[case]
            del f["optimizer_weights/iteration:0"]
            f["optimizer_weights"].create_dataset("iteration:0", data=np.float64(value))
        elif case == "model_config_100k_deep":
            f.attrs["model_config"] = "[" * DEEP + "]" * DEEP
        elif case == "learning_rate_inf":
            training = json.loads(f.attrs["training_config"])
            training["optimizer_config"]["config"]["learning_rate"] = 1e999  # json writes Infinity
            f.attrs["training_config"] = json.dumps(training)
        else:  # pragma: no cover
            raise AssertionError(case)
    return path


@pytest.mark.parametrize("case", sorted(H5_CASES))
def test_hostile_h5_inspect_read_migrate(tmp_path: Path, case: str) -> None:
    kind, needle = H5_CASES[case]
    path = _make_h5(tmp_path, case)
    out = tmp_path / "out"
    out.mkdir()
    with nothing_written(tmp_path):
        exc = _raises(kind, lambda: ckptcompat.inspect(path), needle)
        assert exc.path == str(path)
        _raises(kind, lambda: ckptcompat.read(path), needle)
        _raises(kind, lambda: migrate(path, out / "model.keras", to="keras3"), needle)
        _raises(kind, lambda: migrate(path, out / "model.h5", to="h5"), needle)


@pytest.mark.parametrize("case", ["external_link", "compound_dtype", "iterations_1e300"])
def test_hostile_h5_verify_and_resume(tmp_path: Path, case: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    kind, needle = H5_CASES[case]
    path = _make_h5(tmp_path, case)
    with nothing_written(tmp_path):
        code, text = _cli(capsys, "verify", str(path))
        assert code == 1 and needle in text and "PROBLEM" in text
        # resume tries every candidate; none is readable: the cause is in the typed error
        _raises(CheckpointNotFoundError, lambda: ckptcompat.resume(path), needle)


def test_link_not_followed_even_when_target_is_valid(tmp_path: Path) -> None:
    """The external file holds a perfectly shaped kernel: refused all the same, never opened."""
    path = _make_h5(tmp_path, "external_link")
    (tmp_path / "elsewhere.h5").unlink()  # were it followed, this would now be a missing-file error
    _raises(UnsafeCheckpointError, lambda: ckptcompat.read(path), "never followed")


# ------------------------------------------------------------------ .keras zips (real Keras 3.15 file)
def _rezip(tmp_path: Path, name: str, members: Callable[[dict[str, bytes]], list[tuple[zipfile.ZipInfo | str, bytes]]]
           ) -> Path:
    with zipfile.ZipFile(KERAS) as zf:
        original = {n: zf.read(n) for n in zf.namelist()}
    target = tmp_path / "in" / f"{name}.keras"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as zf:
        for info, data in members(original):
            zf.writestr(info, data)
    return target


def _symlink_member(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    link = zipfile.ZipInfo("model.weights.h5")
    link.external_attr = (0o120777 << 16)  # S_IFLNK
    return [("metadata.json", original["metadata.json"]), ("config.json", original["config.json"]),
            (link, b"/etc/passwd")]


def _duplicate_member(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return [*original.items(), ("config.json", b"{}")]


def _deep_config(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return [(n, b"[" * DEEP + b"]" * DEEP if n == "config.json" else d) for n, d in original.items()]


def _external_weights(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    import io

    buf = io.BytesIO(original["model.weights.h5"])
    with h5py.File(buf, "r+") as h5:
        key = next(k for k in ("layers/dense/vars/0", "_layer_checkpoint_dependencies/dense/vars/0") if k in h5)
        del h5[key]
        h5[key.rsplit("/", 1)[0]]["0"] = h5py.ExternalLink("/etc/hosts", "/data")
    return [(n, buf.getvalue() if n == "model.weights.h5" else d) for n, d in original.items()]


ZIP_CASES = {
    "symlink_member": (_symlink_member, UnsafeCheckpointError, "symbolic link"),
    "duplicate_member": (_duplicate_member, UnsafeCheckpointError, "occurs twice"),
    "config_100k_deep": (_deep_config, CorruptCheckpointError, "deeper than the limit"),
    "weights_external_link": (_external_weights, UnsafeCheckpointError, "ExternalLink"),
}


@pytest.mark.parametrize("case", sorted(ZIP_CASES))
def test_hostile_keras_zip(tmp_path: Path, case: str) -> None:
    make, kind, needle = ZIP_CASES[case]
    path = _rezip(tmp_path, case, make)
    out = tmp_path / "out"
    out.mkdir()
    with nothing_written(tmp_path):
        _raises(kind, lambda: ckptcompat.inspect(path), needle)
        _raises(kind, lambda: migrate(path, out / "model.h5", to="h5"), needle)


# ------------------------------------------------------------------ TF bundle (real TF 2.12 Saver)
def _bundle_with(tmp_path: Path, change: Callable[[pw.BundleEntry], None]) -> Path:
    folder = tmp_path / "in"
    shutil.copytree(BUNDLE, folder)
    index = folder / "model.ckpt.index"
    items = []
    changed = False
    for key, value in read_table(index.read_bytes()):
        if key and not changed:
            entry = pw.decode_entry(value)
            if entry.dtype == 1:  # the first float tensor
                change(entry)
                value = pw.encode_entry(entry)
                changed = True
        items.append((key, value))
    assert changed
    index.write_bytes(build_table(items))
    return folder / "model.ckpt"


def _absurd_size(e: pw.BundleEntry) -> None:
    e.size = 1 << 60


def _absurd_offset(e: pw.BundleEntry) -> None:
    e.offset = (1 << 62) - 1


def _size_vs_shape(e: pw.BundleEntry) -> None:
    e.shape = (1 << 40, 1 << 20)


@pytest.mark.parametrize("change,needle", [(_absurd_size, "the shard has"), (_absurd_offset, "the shard has"),
                                           (_size_vs_shape, "bytes for shape")])
def test_hostile_bundle_sizes(tmp_path: Path, change: Callable[[pw.BundleEntry], None], needle: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    prefix = _bundle_with(tmp_path, change)
    out = tmp_path / "out"
    out.mkdir()
    with nothing_written(tmp_path):
        _raises(CorruptCheckpointError, lambda: ckptcompat.inspect(prefix), needle)
        _raises(CorruptCheckpointError, lambda: ckptcompat.read(prefix), needle)
        _raises(CorruptCheckpointError, lambda: migrate(prefix, out / "m.keras", to="keras3"), needle)
        code, text = _cli(capsys, "verify", str(prefix.parent))
        assert code == 1 and needle in text


def test_protobuf_shape_rank_is_bounded() -> None:
    dims = b"".join(pw._len_field(2, pw._key(1, 0) + pw.encode_varint(1)) for _ in range(300))
    with pytest.raises(ValueError, match="254"):
        pw.decode_entry(pw._len_field(2, dims))


# ------------------------------------------------------------------ pickles and sidecars
class _BytearrayBomb:
    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (bytearray, (1_500_000_000,))


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


#: names os.system (posix.system): refused by the restricted unpickler before lookup
OS_SYSTEM = pickle.dumps(_RunsCode(), protocol=4)

#: ~60 bytes: bytearray(1_500_000_000) via REDUCE -- accepted before the allocation budget
BYTEARRAY_BOMB = pickle.dumps(_BytearrayBomb(), protocol=4)


def test_bytearray_bomb_is_refused_without_allocating() -> None:
    assert len(BYTEARRAY_BOMB) <= 63
    small = BYTEARRAY_BOMB.replace((1_500_000_000).to_bytes(4, "little"), (5).to_bytes(4, "little"))
    assert safe_loads(small) == bytearray(5)  # the same pickle with a sane size loads
    _raises(CorruptCheckpointError, lambda: safe_loads(BYTEARRAY_BOMB, path="s.pkl"),
            "1500000000 bytes", "allocation budget")


@pytest.mark.parametrize("payload,needle", [
    ((np.ndarray, ((1 << 20, 1 << 20), "f8")), "allocation budget"),
    ((bytes, (1 << 31,)), "allocation budget"),
])
def test_sized_constructors_are_budgeted(payload: tuple[object, tuple[object, ...]], needle: str) -> None:
    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return payload
    _raises(CorruptCheckpointError, lambda: safe_loads(pickle.dumps(Bomb(), protocol=2)), needle)


@pytest.mark.parametrize("opcode", [b"\x96", b"\x8e", b"\x8d"])  # BYTEARRAY8, BINBYTES8, BINUNICODE8
def test_length_claims_are_checked_before_allocation(opcode: bytes) -> None:
    """Found by tools/fuzz.py: CPython allocates a BYTEARRAY8's claimed length before reading
    (and, on the short read, leaks a buffer export); the opcodes are now walked first."""
    import struct

    data = b"\x80\x05" + opcode + struct.pack("<Q", 1_500_000_000) + b"abc."
    if pickle.HIGHEST_PROTOCOL < 5:  # Python 3.7: the protocol is refused before any opcode
        _raises(UnsupportedFormatError, lambda: safe_loads(data, path="s.pkl"), "pickle protocol 5")
        return
    _raises(CorruptCheckpointError, lambda: safe_loads(data, path="s.pkl"), "1500000000 bytes", "only 4 remain")


def test_shared_references_cannot_explode() -> None:
    tree: list[object] = []
    for _ in range(64):
        tree = [tree, tree]  # 130 bytes pickled, 2**64 nodes walked as a tree
    start = time.monotonic()
    _raises(CorruptCheckpointError, lambda: safe_loads(pickle.dumps(tree)), "more than")
    assert time.monotonic() - start < 10


def test_plain_data_pickles_still_load() -> None:
    data = {"epoch": 3, "history": {"loss": [0.5, 0.25]}, "arr": np.arange(6.0).reshape(2, 3),
            "b": bytearray(b"ab"), "by": b"xy"}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = safe_loads(pickle.dumps(data, protocol=protocol))
        assert back["arr"].tobytes() == data["arr"].tobytes() and back["b"] == bytearray(b"ab")


@pytest.mark.parametrize("content,kind,needle", [
    ({"epoch": 10**400, "optimizer": {"name": "Adam"}}, CorruptCheckpointError, "epoch"),
    ({"epoch": 3, "optimizer": {"name": "Adam", "iterations": float("inf")}}, CorruptCheckpointError,
     "iterations"),
    ({"epoch": 3, "optimizer": {"name": "Adam", "iterations": 2**80}}, CorruptCheckpointError,
     "iterations"),
    ({"loss": [10**400]}, CorruptCheckpointError, "too large"),
])
def test_sidecar_ranges(tmp_path: Path, content: dict[str, object], kind: type[CkptCompatError],
                        needle: str) -> None:
    side = tmp_path / "model.pkl"
    side.write_bytes(pickle.dumps(content))
    _raises(kind, lambda: read_legacy_sidecar(side), needle)


def test_state_json_epoch_10_400(tmp_path: Path) -> None:
    from ckptcompat.formats import sidecar

    side = tmp_path / "state.json"
    side.write_text(json.dumps({"ckptcompat_state": 1, "progress": {"epoch": 10**400}}))
    _raises(CorruptCheckpointError, lambda: sidecar.read(side), "epoch")
    side.write_text('{"ckptcompat_state": 1, "callbacks": ' + "[" * DEEP + "]" * DEEP + "}")
    _raises(CorruptCheckpointError, lambda: sidecar.read(side), "deeper than the limit")


@pytest.mark.parametrize("payload,needle", [
    (BYTEARRAY_BOMB, "allocation budget"),
    (OS_SYSTEM, "system"),
])
def test_verify_sees_what_read_refuses(tmp_path: Path, payload: bytes, needle: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(H5, tmp_path / "model.h5")
    (tmp_path / "model.pkl").write_bytes(payload)
    with nothing_written(tmp_path):
        code, text = _cli(capsys, "verify", str(tmp_path))
    assert code == 1, text
    assert "PROBLEM" in text and "model.pkl" in text and needle in text
    (tmp_path / "model.pkl").unlink()
    code, text = _cli(capsys, "verify", str(tmp_path))
    assert code == 0, text


# ------------------------------------------------------------------ stores: manifest
def _store_with_manifest(tmp_path: Path, text: bytes) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    (store / MANIFEST_NAME).write_bytes(text)
    return store


def _entry(i: int, epoch: int = 1) -> dict[str, object]:
    return {"id": i, "name": f"ckpt-{i:06d}", "epoch": epoch, "step": 0, "global_step": None,
            "metrics": {}, "format": "keras_h5", "producer": {"framework": "keras", "versions": {}},
            "time": "2025-01-01T00:00:00Z", "files": {"model.h5": {"size": 1, "sha256": "0" * 64}},
            "tags": []}


def _manifest(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"schema": 1, "next_id": len(entries) + 1, "monitor": None, "mode": None,
                       "checkpoints": entries}).encode()


MANIFEST_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "nested_100k": (lambda: b'{"schema": 1, "checkpoints": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                    "deeper than the limit of 200"),
    "too_many_entries": (lambda: _manifest([_entry(i) for i in range(1, MAX_ENTRIES + 2)]),
                         f"over the limit of {MAX_ENTRIES}"),
    "oversized": (lambda: _manifest([_entry(1)])[:-1] + b" " * (17 << 20) + b"}", "byte limit"),
    "epoch_10_400": (lambda: _manifest([_entry(1, epoch=10**400)]), "epoch"),
    "next_id_huge": (lambda: _manifest([_entry(1)]).replace(b'"next_id": 2', b'"next_id": 1e400'),
                     "next_id"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_hostile_manifest(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    make, needle = MANIFEST_CASES[case]
    store = _store_with_manifest(tmp_path, make())
    with nothing_written(tmp_path):
        start = time.monotonic()
        _raises(CorruptCheckpointError, lambda: CheckpointStore(store).checkpoints(), needle)
        report = CheckpointStore(store).verify()
        assert report.kinds() == {"manifest-corrupt"} and needle in str(report)
        code, text = _cli(capsys, "verify", str(store))
        assert code == 1 and "manifest-corrupt" in text
        code, text = _cli(capsys, "ls", str(store))
        assert code == 2 and needle in text
        _raises(CorruptCheckpointError, lambda: ckptcompat.resume(store), needle)
        assert time.monotonic() - start < 60


def test_manifest_limit_is_enforced_on_write(tmp_path: Path) -> None:
    """A writer never produces a manifest its readers would refuse."""
    from dataclasses import replace

    from ckptcompat.store import manifest as mf

    [one] = mf.parse_manifest(_manifest([_entry(1)]), tmp_path).entries
    entries = tuple(replace(one, id=i, name=f"c{i}") for i in range(1, MAX_ENTRIES + 2))
    with nothing_written(tmp_path), pytest.raises(ckptcompat.errors.StoreWriteError, match="at most"):
        mf.save_manifest(tmp_path, mf.Manifest(entries=entries), None, "0")


# ------------------------------------------------------------------ stores: lock
def test_lock_with_huge_pid_never_reaches_os_kill(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": 10**30, "host": socket.gethostname(), "time": "x"}))
    assert read_holder(lock) is None
    assert not pid_alive(10**30) and not is_stale({"pid": 10**30, "host": socket.gethostname()})
    taken = StoreLock(tmp_path)
    taken.acquire()                 # nobody holds its OS lock: stale, taken over
    try:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        _raises(StoreLockedError, lambda: CheckpointStore(tmp_path, write=True), f"pid {os.getpid()}")
    finally:
        taken.release()


@pytest.mark.parametrize("content", [b"[" * DEEP + b"]" * DEEP, b'{"pid": ' + b"9" * 5000 + b"}",
                                     b'{"pid": 1e999, "host": "h"}', b"\xff\xfe"])
def test_hostile_lock_content(tmp_path: Path, content: bytes) -> None:
    (tmp_path / LOCK_NAME).write_bytes(content)
    assert read_holder(tmp_path / LOCK_NAME) is None
    report = CheckpointStore(tmp_path).verify()  # read-only use never trips on the lock
    assert "stale-lock" in report.kinds()        # nobody holds its OS lock
    with CheckpointStore(tmp_path, write=True):  # taken over: the content names nobody alive
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


# ------------------------------------------------------------------ plausible ranges
@pytest.mark.parametrize("value,ok", [(0, True), (2**53, True), (2**53 + 1, False), (-1, False),
                                      (10**400, False), (float("inf"), False), (float("nan"), False),
                                      (1e300, False), (3.0, True), (2.5, False), (True, False)])
def test_count_ranges(value: object, ok: bool) -> None:
    assert (_plausible.count_problem(value, "iterations") is None) is ok


def test_epoch_10_200_from_a_file_name_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ckptcompat.discovery import find_checkpoints

    name = f"model-epoch{'9' * 200}.h5"  # 10**400 does not fit in a file name
    shutil.copy(H5, tmp_path / name)
    [cand] = find_checkpoints(tmp_path)
    if cand.epoch is None:
        pytest.skip("the file-name parser does not take 400-digit epochs at all")
    assert cand.problem is not None and "implausible" in cand.problem
    code, text = _cli(capsys, "ls", str(tmp_path))
    assert "damaged" in text and "implausible" in text


@pytest.mark.parametrize("opt,kind,needle", [
    (OptimizerState("deserialize"), UnsafeCheckpointError, "no optimizer class"),
    (OptimizerState("keras.optimizers.get"), UnsafeCheckpointError, "no optimizer class"),
    (OptimizerState("__import__"), UnsafeCheckpointError, "no optimizer class"),
    (OptimizerState("Adam", hyperparameters={"learning_rate": {"class_name": "eval", "config": {}}}),
     UnsafeCheckpointError, "no Keras schedule"),
    (OptimizerState("Adam", hyperparameters={"learning_rate_schedule": {
        "module": "builtins", "class_name": "ExponentialDecay", "config": {}}}),
     UnsafeCheckpointError, "no Keras schedule"),
    (OptimizerState("Adam", hyperparameters={"learning_rate": float("nan")}), CorruptCheckpointError,
     "learning_rate"),
])
def test_optimizer_config_checks(opt: OptimizerState, kind: type[CkptCompatError], needle: str) -> None:
    _raises(kind, lambda: _plausible.check_optimizer_config(opt, "x.keras"), needle)


def test_real_optimizer_configs_pass() -> None:
    for path in (H5, KERAS):
        state = ckptcompat.read(path)
        assert state.optimizer is not None
        _plausible.check_optimizer_config(state.optimizer, path)
    _plausible.check_optimizer_config(OptimizerState("Adam", hyperparameters={"learning_rate": {
        "module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.1}, "registered_name": None}}), None)


# ------------------------------------------------------------------ Lambda byte-code in migrate
def _lambda_keras(tmp_path: Path, function: object) -> Path:
    def add_lambda(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
        config = json.loads(original["config.json"])
        layers = config["config"]["layers"]
        layers.insert(1, {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                          "config": {"name": "lam", "function": function, "arguments": {}}})
        return [(n, json.dumps(config).encode() if n == "config.json" else d) for n, d in original.items()]
    return _rezip(tmp_path, "lambda", add_lambda)


K3_LAMBDA = {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAAC", "defaults": None,
                                                    "closure": None}}


def test_migrate_refuses_lambda_bytecode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _lambda_keras(tmp_path, K3_LAMBDA)
    out = tmp_path / "out"
    out.mkdir()
    with nothing_written(tmp_path):
        exc = _raises(UnsafeCheckpointError, lambda: migrate(src, out / "m.h5", to="h5"), "lam", "byte-code")
        assert exc.path == str(src) and "--allow-unsafe" in str(exc)
        code, text = _cli(capsys, "migrate", str(src), str(out / "m.keras"), "--to", "keras3")
        assert code == 2 and "--allow-unsafe" in text
    report = migrate(src, out / "m.keras", to="keras3", safe_mode=False)
    assert report.verified and (out / "m.keras").exists()
    code, text = _cli(capsys, "migrate", str(src), str(out / "m2.keras"), "--to", "keras3", "--allow-unsafe")
    assert code == 0 and (out / "m2.keras").exists()


def test_named_function_lambda_is_not_bytecode(tmp_path: Path) -> None:
    src = _lambda_keras(tmp_path, {"module": "builtins", "class_name": "function", "config": "abs",
                                   "registered_name": "function"})
    assert _plausible.lambda_bytecode(ckptcompat.read(src).model_config) == []
    assert _plausible.lambda_bytecode({"class_name": "Lambda", "config": {
        "name": "k2", "function": ["4wEAAAAA", None, None], "function_type": "lambda"}}) == ["k2"]


@pytest.mark.keras3
def test_real_keras3_lambda_model_is_refused(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2, name="double"),
                              keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    src = tmp_path / "lam.keras"
    model.save(src)
    with nothing_written(tmp_path):
        _raises(UnsafeCheckpointError, lambda: migrate(src, tmp_path / "out.h5", to="h5"), "double")


# ------------------------------------------------------------------ resume: optimizer configs
def _keras_with_optimizer(tmp_path: Path, name: str, edit: Callable[[dict[str, object]], None]) -> Path:
    def rewrite(original: dict[str, bytes]) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
        config = json.loads(original["config.json"])
        optimizer = {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None,
                     "config": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                "epsilon": 1e-07, "amsgrad": False}}
        edit(optimizer)
        config["compile_config"]["optimizer"] = optimizer
        return [(n, json.dumps(config).encode() if n == "config.json" else d) for n, d in original.items()]
    return _rezip(tmp_path, name, rewrite)


@pytest.mark.keras3
def test_resume_refuses_optimizer_naming_deserialize(tmp_path: Path) -> None:
    src = _keras_with_optimizer(tmp_path, "deserialize", lambda o: o.update(class_name="deserialize"))
    with nothing_written(tmp_path):
        _raises(UnsafeCheckpointError, lambda: ckptcompat.resume(src), "no optimizer class")


@pytest.mark.framework
@pytest.mark.parametrize("schedule", [
    {"class_name": "print", "config": {}},
    {"module": "builtins", "class_name": "eval", "config": {}, "registered_name": None},
    {"class_name": "MySchedule", "config": {"initial_learning_rate": 0.1}},
])
def test_resume_refuses_schedule_naming_a_callable(tmp_path: Path, schedule: dict[str, object]) -> None:
    src = _h5_copy(tmp_path, "schedule")
    with h5py.File(src, "r+") as f:  # the real tf.keras 2.12 file, its learning rate made a schedule
        training = json.loads(f.attrs["training_config"])
        training["optimizer_config"]["config"]["learning_rate"] = schedule
        f.attrs["training_config"] = json.dumps(training)
    with nothing_written(tmp_path):
        _raises(UnsafeCheckpointError, lambda: ckptcompat.resume(src), "no Keras schedule")

