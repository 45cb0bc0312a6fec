"""Cross-format bad input: every damaged file makes ``ckptcompat.inspect`` raise a typed error.

Two corpora:

* damaged copies of every golden fixture listed in ``fixtures/manifest.json`` (truncated at
  every 10 %, zero-length, random bytes, wrong extension) -- skipped while the manifest is absent;
* synthetic hostile files that need no producer (random bytes, empty files, a zip with a
  ``../evil`` member, a zip bomb, an HDF5 file with an absurd dataset shape).

Each case checks: a :class:`CkptCompatError` subclass (the precise one where the damage
defines it), whose ``path`` lies in the damaged folder, and no new file left behind.
Cases failing because of another module are listed in ``KNOWN_FAILURES`` (strict xfail).
"""

from __future__ import annotations

import importlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from ckptcompat._compat import is_within
from ckptcompat.errors import (
    CkptCompatError,
    CorruptCheckpointError,
    IncompatibleStateError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)
from ckptcompat.formats import registry

from _paths import is_corpus  # noqa: E402 -- tests/ is on sys.path (conftest)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MANIFEST = FIXTURES / "manifest.json"
TYPED = CkptCompatError
DAMAGED = (CorruptCheckpointError, UnsupportedFormatError)

#: case id -> reason (module at fault) for cases that fail because of another helper's module.
KNOWN_FAILURES: dict[str, str] = {}


def test_every_registered_format_module_imports() -> None:
    """A registered format whose module is missing is a bug, not a reason to skip these cases."""
    for info in registry.FORMATS:
        assert importlib.import_module(info.module).NAME == info.name, info.module


def _case(case_id: str, *values: object) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case_id])] if case_id in KNOWN_FAILURES else []
    return pytest.param(*values, id=case_id, marks=marks)


def _inspect_expecting(target: Path, folder: Path, expected: tuple[type[BaseException], ...] | type) -> CkptCompatError:
    """Inspect ``target``: must raise ``expected`` (typed), name a path in ``folder``, leave nothing new."""
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    try:
        ckptcompat.inspect(target)
    except CkptCompatError as exc:
        assert isinstance(exc, expected), f"{type(exc).__name__} is not {expected}: {exc}"
        assert exc.path is not None, f"error names no path: {exc}"
        assert is_within(Path(exc.path).resolve(), folder.resolve()), f"{exc.path} not under {folder}"
        error = exc
    else:
        pytest.fail(f"inspect({target}) succeeded on damaged input")
    after = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert after == before, f"left behind: {sorted(set(after) - set(before))}"
    return error


# ------------------------------------------------------------------ manifest fixtures
def _manifest_entries() -> list[tuple[str, str]]:
    """(relative path, format) of every fixture file the manifest lists; [] when absent."""
    if not MANIFEST.exists():
        return []
    doc = json.loads(MANIFEST.read_text(encoding="utf-8"))
    items: Iterator[object]
    if isinstance(doc, dict) and isinstance(doc.get("fixtures"), (list, dict)):
        doc = doc["fixtures"]
    if isinstance(doc, dict):
        items = ({"path": k, **v} if isinstance(v, dict) else {"path": k} for k, v in doc.items())
    else:
        items = iter(doc)
    out = []
    for item in items:
        if isinstance(item, dict):
            rel = item.get("path") or item.get("file")
            if isinstance(rel, str) and not is_corpus(item):  # damage on the core cases is enough
                out.append((rel, str(item.get("format", ""))))
    return sorted(set(out))


def _set_files(source: Path) -> list[Path]:
    """The file itself, or every file of a TF bundle prefix (+ its 'checkpoint' state file)."""
    if source.is_file():
        return [source]
    files = sorted(source.parent.glob(source.name + ".*"))
    state = source.parent / "checkpoint"
    return files + ([state] if state.is_file() else [])


def _copy_set(source: Path, dest_dir: Path) -> tuple[Path, list[Path]]:
    dest_dir.mkdir(parents=True, exist_ok=True)
    copies = []
    for f in _set_files(source):
        shutil.copy2(f, dest_dir / f.name)
        copies.append(dest_dir / f.name)
    return dest_dir / source.name, copies


def _damage_target(copies: list[Path], target: Path) -> Path:
    """The member to damage: the file itself, or a bundle's .index."""
    for c in copies:
        if c.name == target.name or c.name == target.name + ".index":
            return c
    return copies[0]


MANIFEST_CASES = [
    _case(f"{rel}-{damage}", rel, fmt, damage)
    for rel, fmt in _manifest_entries()
    for damage in [f"trunc{pct}" for pct in range(0, 100, 10)] + ["random"]
    + (["wrong_ext"] if Path(rel).suffix in (".h5", ".hdf5", ".keras") else [])
]


@pytest.mark.skipif(not MANIFEST.exists(), reason=f"{MANIFEST} is absent (golden fixtures not generated)")
@pytest.mark.parametrize("rel, fmt, damage", MANIFEST_CASES or [pytest.param("", "", "", id="no-fixtures")])
def test_damaged_fixture(tmp_path: Path, rel: str, fmt: str, damage: str) -> None:
    if not rel:
        pytest.skip("manifest lists no fixture files")
    source = FIXTURES / rel
    if not _set_files(source):
        pytest.skip(f"{source} listed in the manifest but absent")
    folder = tmp_path / "case"
    target, copies = _copy_set(source, folder)
    victim = _damage_target(copies, target)
    data = victim.read_bytes()
    if damage.startswith("trunc"):
        pct = int(damage[5:])
        victim.write_bytes(data[: len(data) * pct // 100])  # trunc0 is the zero-length file
        # an HDF5 file or .keras zip cut short keeps its signature: damaged, not an unknown format
        single = victim == target and target.suffix in (".h5", ".hdf5", ".keras")
        _inspect_expecting(target, folder, CorruptCheckpointError if single else DAMAGED)
    elif damage == "random":
        rng = np.random.default_rng(len(data))
        noise = bytearray(rng.integers(0, 256, size=max(len(data), 64), dtype=np.uint8).tobytes())
        noise[0] = 0x07  # neither pickle nor JSON nor a known magic
        victim.write_bytes(bytes(noise))
        _inspect_expecting(target, folder, DAMAGED)
    else:  # wrong extension: intact content, misleading name; detection is by markers
        if victim != target:
            pytest.skip("bundle sets have no single extension to change")
        swapped = {".h5": ".keras", ".keras": ".h5", ".hdf5": ".keras"}.get(target.suffix, ".bin")
        renamed = target.with_name(target.stem + "_renamed" + swapped)
        target.rename(renamed)
        before = sorted(folder.iterdir())
        info = ckptcompat.inspect(renamed)
        assert info.format == (fmt or registry.detect(source))
        assert sorted(folder.iterdir()) == before


# ------------------------------------------------------------------ synthetic hostile files
RANDOM_EXPECTED = {  # suffix -> precise error for random bytes under that name
    ".h5": UnsupportedFormatError, ".hdf5": UnsupportedFormatError, ".keras": UnsupportedFormatError,
    ".index": DAMAGED,  # the name is the bundle marker: a garbage index is a damaged bundle
    ".ckpt": UnsupportedFormatError, ".bin": UnsupportedFormatError,
    ".weights.h5": UnsupportedFormatError,
    ".json": CorruptCheckpointError,                      # a sidecar by name: not valid JSON
    ".pkl": (CorruptCheckpointError, UnsafeCheckpointError),  # random opcodes may name a global
}


@pytest.mark.parametrize("suffix", [_case(f"random{s}", s) for s in RANDOM_EXPECTED])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(7)
    data = bytearray(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    data[0] = 0x07
    target = tmp_path / f"model{suffix}"
    target.write_bytes(bytes(data))
    _inspect_expecting(target, tmp_path, RANDOM_EXPECTED[suffix])


@pytest.mark.parametrize("suffix", [_case(f"empty{s}", s) for s in RANDOM_EXPECTED])
def test_zero_length(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"model{suffix}"
    target.write_bytes(b"")
    _inspect_expecting(target, tmp_path, CorruptCheckpointError)  # a save cut short, whatever the name


def _keras_like_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)


@pytest.mark.parametrize("case", [_case("zip-traversal", "zip-traversal")])
def test_zip_with_parent_member(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "inner"
    folder.mkdir()
    target = folder / "model.keras"
    _keras_like_zip(target, {"metadata.json": b"{}", "config.json": b"{}", "../evil": b"owned",
                             "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(32)})
    _inspect_expecting(target, folder, (UnsafeCheckpointError, CorruptCheckpointError, UnsupportedFormatError))
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("case", [_case("zip-bomb", "zip-bomb")])
def test_zip_bomb(tmp_path: Path, case: str) -> None:
    target = tmp_path / "model.keras"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", b"{}")
        zf.writestr("config.json", b"{}")
        with zf.open("model.weights.h5", "w", force_zip64=True) as member:
            chunk = bytes(1 << 24)
            for _ in range(16):              # 256 MiB of zeros, about 250 KB compressed
                member.write(chunk)
    assert target.stat().st_size < 2 << 20
    _inspect_expecting(target, tmp_path, (UnsafeCheckpointError, CorruptCheckpointError))


def _absurd_h5(path: Path, layout: str) -> None:
    h5py = pytest.importorskip("h5py")
    shape = (1 << 20, 1 << 20, 1 << 10)   # 4 PiB of float32, stored sparsely (chunked, never written)
    with h5py.File(path, "w") as f:
        if layout == "legacy":
            f.attrs["layer_names"] = np.array([b"dense"])
            g = f.create_group("dense")
            g.attrs["weight_names"] = np.array([b"dense/kernel:0"])
            g.create_dataset("dense/kernel:0", shape=shape, dtype="float32", chunks=(1, 1, 1024))
        else:
            g = f.create_group("layers/dense/vars")
            g.create_dataset("0", shape=shape, dtype="float32", chunks=(1, 1, 1024))


@pytest.mark.parametrize("layout, name", [_case("absurd-h5-legacy", "legacy", "weights.h5"),
                                          _case("absurd-h5-keras3", "keras3", "model.weights.h5")])
def test_absurd_hdf5_dataset_shape(tmp_path: Path, layout: str, name: str) -> None:
    target = tmp_path / name
    _absurd_h5(target, layout)
    assert target.stat().st_size < 1 << 20
    _inspect_expecting(target, tmp_path, (CorruptCheckpointError, IncompatibleStateError))
