"""ckptcompat._atomic: the one crash-safe write path (temp file, fsync, rename, fsync dir).

Proven on the library's real writers and on files written by real TF/Keras releases
(``fixtures/``): permissions follow the umask, a full disk raises ``StoreWriteError`` and
leaves what was there intact and resumable, a failing directory fsync is reported, no
temporary file survives a failure, and no other module renames files.
"""

from __future__ import annotations

import ast
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat import _atomic
from ckptcompat.errors import CkptCompatError, CorruptCheckpointError, StoreWriteError
from ckptcompat.formats import registry, sidecar
from ckptcompat.state import Progress
from ckptcompat.store import CheckpointStore, verify

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ckptcompat"
FIXTURES = ROOT / "fixtures"
KERAS3_MODEL = FIXTURES / "tf221-keras3" / "mlp_adam" / "model.keras"   # written by Keras 3.x
KERAS2_MODEL = FIXTURES / "tf212" / "mlp_adam" / "model.h5"             # written by tf.keras 2.12


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".tmp-*"))


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".ckptcompat.lock"}


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- only _atomic renames ---------------------------------------------------------------------
def _renames(tree: ast.AST) -> list[str]:
    """Calls that rename or create temp files: os.replace/os.rename, <path>.rename(x),
    <path>.replace(x) (one positional argument: not str.replace, not dataclasses.replace),
    shutil.move, tempfile.mkstemp / NamedTemporaryFile."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name in ("mkstemp", "NamedTemporaryFile") or (owner, name) == ("shutil", "move"):
            found.append(f"{name} (line {node.lineno})")
        elif name == "rename" and isinstance(func, ast.Attribute):
            found.append(f"{owner or '<path>'}.rename (line {node.lineno})")
        elif name == "replace" and isinstance(func, ast.Attribute) and (
                owner == "os" or (len(node.args) == 1 and not node.keywords)):
            found.append(f"{owner or '<path>'}.replace (line {node.lineno})")
    return found


def test_only_atomic_renames_files() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = _renames(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[path.relative_to(PACKAGE).as_posix()] = found
    assert set(offenders) == {"_atomic.py"}, offenders
    assert {f.split(" ")[0] for f in offenders["_atomic.py"]} == {"os.replace", "os.rename"}


def test_the_scan_catches_what_it_forbids() -> None:
    code = ("import os, tempfile\nos.replace(a, b)\np.rename(q)\np.replace(q)\n"
            "tempfile.mkstemp()\ns.replace('a', 'b')\nstate.replace(x=1)\n")
    assert [f.split(" ")[0] for f in _renames(ast.parse(code))] == \
        ["os.replace", "p.rename", "p.replace", "mkstemp"]


# -- permissions follow the umask -------------------------------------------------------------
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path: Path, mask: int, expected: int) -> None:
    old = os.umask(mask)
    try:
        _atomic.atomic_write(tmp_path / "a.json", "{}")
        with _atomic.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.json") == expected and _mode(tmp_path / "b.bin") == expected
    assert (tmp_path / "a.json").read_text() == "{}" and _temps(tmp_path) == []


def _store_with_real_states(directory: Path) -> CheckpointStore:
    store = CheckpointStore(directory, write=True, monitor="loss")
    for epoch, (source, fmt, name) in enumerate(
            [(KERAS3_MODEL, "keras_zip", "model.keras"), (KERAS2_MODEL, "keras_h5", "model.h5")], 1):
        state = registry.read(source).replace(progress=Progress(epoch=epoch, step=0))
        with store.begin(epoch=epoch, metrics={"loss": 1.0 / epoch}, format=fmt) as pending:
            pending.write_state(name, state, format=fmt)
    return store


def test_store_checkpoint_files_and_manifest_are_0644(tmp_path: Path, umask022: None) -> None:
    with _store_with_real_states(tmp_path / "run"):
        pass
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"model.keras", "model.h5", "state.json", "ckptcompat.json", "ckptcompat.json.bak"} <= names
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(0o644) for p in files}


@pytest.mark.parametrize("to, out", [("keras3", "model.keras"),
                                     ("h5", "model.h5"), ("tf1", "model.ckpt")])
def test_migrate_output_is_0644(tmp_path: Path, umask022: None, to: str, out: str) -> None:
    from ckptcompat.cli.commands import EXIT_OK, main
    from ckptcompat import migrate

    src = KERAS2_MODEL if to != "h5" else KERAS3_MODEL
    migrate(src, tmp_path / "fn" / out, to=to)
    assert main(["migrate", str(src), str(tmp_path / "cli" / out), "--to", to]) == EXIT_OK
    for folder in ("fn", "cli"):
        written = [p for p in (tmp_path / folder).rglob("*") if p.is_file()]
        assert written and _temps(tmp_path / folder) == []
        if to == "tf1":
            assert {p.name for p in written} == {"checkpoint", "model.ckpt.index",
                                                 "model.ckpt.data-00000-of-00001"}
        assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(0o644) for p in written}


# -- failures: typed, nothing half-written, no temporary left ---------------------------------
def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def torn(handle: Any) -> None:
        handle.write(b"half of the new")
        raise _enospc()

    with pytest.raises(StoreWriteError) as info:
        _atomic.atomic_write(target, torn)
    assert info.value.errno == errno.ENOSPC and str(target) in str(info.value)
    assert "full" in str(info.value) and isinstance(info.value.__cause__, OSError)
    assert target.read_text() == "old" and _temps(tmp_path) == []


def test_failed_check_is_not_retyped_and_removes_the_temp(tmp_path: Path) -> None:
    def check(tmp: Path) -> None:
        raise CorruptCheckpointError("read-back differs", path=tmp)

    with pytest.raises(CorruptCheckpointError):
        _atomic.atomic_write(tmp_path / "x.bin", b"new", check=check)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.json").write_text("old")

    def replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StoreWriteError) as info:
        _atomic.atomic_write(tmp_path / "m.json", "new")
    monkeypatch.undo()
    assert info.value.errno == errno.EIO and "m.json" in str(info.value)
    assert (tmp_path / "m.json").read_text() == "old" and _temps(tmp_path) == []


def _failing_dir_fsync(monkeypatch: pytest.MonkeyPatch, code: int) -> list[int]:
    """Make fsync of directories fail with ``code``; returns the list of failures seen."""
    real = os.fsync
    seen: list[int] = []

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            seen.append(fd)
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_failing_directory_fsync_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _failing_dir_fsync(monkeypatch, errno.EIO)
    with pytest.raises(StoreWriteError) as info:
        _atomic.atomic_write(tmp_path / "a.json", "{}")
    assert seen and info.value.errno == errno.EIO and "directory" in str(info.value)
    with pytest.raises(StoreWriteError):
        _atomic.fsync_dir(tmp_path)


def test_directory_fsync_einval_means_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _failing_dir_fsync(monkeypatch, errno.EINVAL)
    _atomic.atomic_write(tmp_path / "a.json", "{}")        # tolerated: documented in _atomic
    assert seen and (tmp_path / "a.json").read_text() == "{}"


@pytest.mark.parametrize("writer", ["sidecar", "migrate", "store"])
def test_writers_report_a_failing_directory_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  writer: str) -> None:
    from ckptcompat import migrate

    state = registry.read(KERAS2_MODEL)
    store = CheckpointStore(tmp_path / "run", write=True) if writer == "store" else None
    seen = _failing_dir_fsync(monkeypatch, errno.EIO)
    with pytest.raises(StoreWriteError) as info:
        if writer == "sidecar":        # formerly swallowed
            sidecar.write(tmp_path / "state.json", state)
        elif writer == "migrate":      # formerly swallowed
            migrate(KERAS2_MODEL, tmp_path / "out" / "model.keras", to="keras3")
        else:
            assert store is not None
            with store.begin(epoch=1) as pending:
                (pending.path / "w.bin").write_bytes(b"w")
    monkeypatch.undo()
    assert seen and info.value.errno == errno.EIO
    assert _temps(tmp_path) == []
    if store is not None:
        assert store.checkpoints() == []
        store.close()


# -- a full disk during a store save ----------------------------------------------------------
class DiskFull:
    """ENOSPC on writes (torn: half the bytes land), ``pwrite`` and ``fsync`` of files whose
    name ends with ``suffix`` -- the ways a full disk shows up to a writer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
        self.raised = 0
        paths: dict[int, str] = {}
        real_open, real_fdopen, real_pwrite, real_fsync = os.open, os.fdopen, os.pwrite, os.fsync
        fault = self

        def hit(fd: int) -> bool:
            return paths.get(fd, "").endswith(suffix)

        def fail() -> None:
            fault.raised += 1
            raise _enospc()

        class Torn:
            def __init__(self, handle: Any) -> None:
                self._handle = handle

            def write(self, data: Any) -> int:
                self._handle.write(bytes(data)[: len(data) // 2])
                fail()
                return 0

            def __getattr__(self, name: str) -> Any:
                return getattr(self._handle, name)

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: Any) -> None:
                self._handle.close()

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            fd = real_open(path, flags, *args, **kwargs)
            paths[fd] = os.fspath(path)
            return fd

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            handle = real_fdopen(fd, *args, **kwargs)
            return Torn(handle) if hit(fd) else handle

        def pwrite(fd: int, data: Any, offset: int) -> int:
            if hit(fd):
                fail()
            return real_pwrite(fd, data, offset)

        def fsync(fd: int) -> None:
            if hit(fd):
                fail()
            real_fsync(fd)

        for name, fn in (("open", open_), ("fdopen", fdopen), ("pwrite", pwrite), ("fsync", fsync)):
            monkeypatch.setattr(os, name, fn)


SAVES = [("keras_zip", "model.keras", KERAS3_MODEL, "model.keras"),   # the Keras 3 store save
         ("keras_h5", "model.h5", KERAS2_MODEL, "model.h5"),           # the legacy .h5 save
         ("keras_zip", "model.keras", KERAS3_MODEL, "state.json")]     # its state.json


@pytest.mark.parametrize("fmt, name, source, failing", SAVES)
def test_store_save_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str,
                                   name: str, source: Path, failing: str) -> None:
    real = registry.read(source)
    store = CheckpointStore(tmp_path, write=True)
    with store.begin(epoch=1, format=fmt) as pending:
        pending.write_state(name, real.replace(progress=Progress(epoch=1, step=0)), format=fmt)
    first = pending.entry
    before = _snapshot(tmp_path)

    fault = DiskFull(monkeypatch, failing)
    with pytest.raises(StoreWriteError) as info:
        with store.begin(epoch=2, format=fmt) as pending:
            pending.write_state(name, real.replace(progress=Progress(epoch=2, step=0)), format=fmt)
    monkeypatch.undo()
    store.close()

    err = info.value
    assert fault.raised >= 1 and err.errno == errno.ENOSPC and failing in str(err)
    assert isinstance(err, CkptCompatError) and "full" in str(err) and "intact" in str(err)
    assert _snapshot(tmp_path) == before and _temps(tmp_path) == []
    assert verify(tmp_path).ok
    again = CheckpointStore(tmp_path)
    assert [e.id for e in again.checkpoints()] == [first.id]
    assert again.latest_good() == first
    back = registry.read(first.path / name)
    assert sidecar.read(first.path / "state.json").progress.epoch == 1
    want, got = real.tensors(), back.tensors()
    assert want and set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (root only; skipped elsewhere): a disk that really fills up."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill the file system but ``leave`` bytes (0: completely)."""
    filler = mnt / "filler"
    st = os.statvfs(mnt)
    size = st.f_bavail * st.f_frsize - leave
    with open(filler, "wb", buffering=0) as handle:
        try:
            while size > 0 or not leave:
                size -= handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC and not leave
    return filler


@pytest.mark.parametrize("fmt, name, source, failing", SAVES)
def test_store_save_on_a_really_full_tmpfs(tiny_fs: Path, fmt: str, name: str, source: Path,
                                           failing: str) -> None:
    real = registry.read(source)
    directory = tiny_fs / "run"
    with CheckpointStore(directory, write=True) as store:
        with store.begin(epoch=1, format=fmt) as pending:
            pending.write_state(name, real.replace(progress=Progress(epoch=1, step=0)), format=fmt)
        first = pending.entry
        before = _snapshot(directory)
        with pytest.raises(StoreWriteError) as info:
            with store.begin(epoch=2, format=fmt) as pending:
                if failing == "state.json":
                    registry.write(pending.path / name, real, format=fmt, verify=False, durable=False)
                    filler = _fill(tiny_fs, 0)
                    sidecar.write(pending.path / "state.json", real)
                else:
                    filler = _fill(tiny_fs, 12 << 10)
                    pending.write_state(name, real, format=fmt)
        assert info.value.errno == errno.ENOSPC and failing in str(info.value), info.value
        assert _snapshot(directory) == before and _temps(directory) == []
        filler.unlink()
        with store.begin(epoch=3, format=fmt) as pending:   # works again once space is back
            pending.write_state(name, real, format=fmt)
    reader = CheckpointStore(directory)
    assert [e.epoch for e in reader.checkpoints()] == [1, 3] and verify(directory).ok
    back = registry.read(first.path / name).tensors()
    assert {k: v.tobytes() for k, v in back.items()} == \
        {k: np.asarray(v).tobytes() for k, v in real.tensors().items()}


@pytest.mark.framework
def test_resume_after_a_full_disk_save(keras: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import ckptcompat

    real = registry.read(KERAS3_MODEL)
    with CheckpointStore(tmp_path, write=True) as store:
        with store.begin(epoch=1, format="keras_zip") as pending:
            pending.write_state("model.keras", real.replace(progress=Progress(epoch=1, step=0)),
                                format="keras_zip")
        DiskFull(monkeypatch, "model.keras")
        with pytest.raises(StoreWriteError):
            with store.begin(epoch=2, format="keras_zip") as pending:
                pending.write_state("model.keras", real, format="keras_zip")
        monkeypatch.undo()
    run = ckptcompat.resume(tmp_path)
    assert run.initial_epoch == 1
    live = {w.path if hasattr(w, "path") else w.name: np.asarray(w) for w in run.model.weights}
    assert len(live) == len(real.weights)
    assert sorted(v.tobytes() for v in live.values()) == \
        sorted(np.asarray(v).tobytes() for v in real.weights.values())
