"""``inspect`` reads headers only: no tensor data, the same summary as a full read."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptcompat
from _big_state import big_state, tensor_bytes
from _paths import FIXTURES
from ckptcompat import formats
from ckptcompat.errors import CkptCompatError
from ckptcompat.formats._headers import SMALL, TensorHeader, headers_only
from ckptcompat.inspection import summarize

WIDTH = 1000  # 24 MB of float32 tensors


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    state = big_state(WIDTH)
    assert tensor_bytes(state) == 2 * (WIDTH * WIDTH + WIDTH) * 3 * 4
    out = {"keras_h5": folder / "big.h5", "keras_zip": folder / "big.keras",
           "tf_bundle": folder / "big.ckpt"}
    for fmt, path in out.items():
        formats.write(path, state, format=fmt)
    return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _rchar() -> int:
    """Bytes this process has read through read()/pread() so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def _without_digests(info: Any) -> dict[str, Any]:
    d = info.to_dict()
    for v in d["variables"]:
        v.pop("sha256", None)
    return d


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="needs Linux /proc/self/io")
@pytest.mark.parametrize("fmt", ["keras_h5", "keras_zip", "tf_bundle"])
def test_inspect_reads_headers_not_tensors(big: dict[str, Path], fmt: str) -> None:
    path = big[fmt]
    ckptcompat.inspect(path)  # warm the imports: only the inspect's own reads are counted
    before = _rchar()
    info = ckptcompat.inspect(path)
    read = _rchar() - before
    assert read < _size(path) // 100, f"{read} bytes read of {_size(path)}"
    assert info.parameter_count == 2 * (WIDTH * WIDTH + WIDTH)
    assert info.optimizer is not None and info.optimizer.slot_count == 8 and info.optimizer.iterations == 7
    assert _without_digests(info) == _without_digests(ckptcompat.inspect(path, tensors=True))


def test_h5py_reads_no_dataset_above_small(big: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py

    sizes: list[int] = []
    original = h5py.Dataset.__getitem__

    def spy(self: Any, key: Any) -> Any:
        sizes.append(int(self.size))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    for fmt in ("keras_h5", "keras_zip"):
        ckptcompat.inspect(big[fmt])
    assert sizes and max(sizes) <= SMALL
    sizes.clear()
    ckptcompat.inspect(big["keras_h5"], tensors=True)
    assert max(sizes) == WIDTH * WIDTH  # the spy sees a full read


def test_tensors_true_gives_sha256_of_every_tensor(big: dict[str, Path]) -> None:
    state = ckptcompat.read(big["keras_h5"])
    info = ckptcompat.inspect(big["keras_h5"], tensors=True)
    flat = state.tensors()
    digests = {v.name: v.sha256 for v in info.variables}
    assert len(digests) == len(flat) == 12
    for name, a in flat.items():
        assert digests[name] == hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    assert all(v.sha256 is None for v in ckptcompat.inspect(big["keras_h5"]).variables)
    assert "sha256" in info.to_dict()["variables"][0] and "sha256:" in info.to_text()


def test_header_refuses_to_become_an_array() -> None:
    header = TensorHeader((3, 4), "float32")
    assert (header.shape, header.size, header.nbytes, str(header.dtype)) == ((3, 4), 12, 48, "float32")
    with pytest.raises(TypeError, match="not read"):
        np.asarray(header)


def _fixture_targets() -> list[Path]:
    out: list[Path] = []
    for f in sorted(FIXTURES.rglob("*")):
        if f.is_file() and f.suffix in (".h5", ".keras"):
            out.append(f)
        elif f.is_file() and f.suffix == ".index":
            out.append(f.with_suffix(""))
        elif f.name == "saved_model.pb":
            out.append(f.parent)
    return out


def _full_read_summary(path: Path) -> Any:
    """What ``inspect`` returned before headers-only reads: a full read, summarised."""
    try:
        name = formats.detect(path)
        return _without_digests(summarize(formats.read(path, format=name), path=path, format=name))
    except CkptCompatError as exc:
        return type(exc).__name__


def test_every_fixture_summary_matches_the_full_read(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    targets = _fixture_targets()
    assert len(targets) > 400
    compared = 0
    for path in targets:
        old = _full_read_summary(path)
        if isinstance(old, str):
            continue  # partial-optimizer files: inspect's fallback is covered by test_inspect_partial
        with headers_only():
            headers = summarize(formats.read(path), path=path, format=formats.detect(path))
        assert _without_digests(headers) == old, path
        assert _without_digests(ckptcompat.inspect(path)) == old, path
        compared += 1
    assert compared > 400, compared


def test_fixture_inspect_skips_data_of_large_tensors() -> None:
    """Real fixtures hold tensors above SMALL elements; a headers-only read leaves them unread."""
    path = FIXTURES / "tf215" / "cnn_bn_adam" / "model.h5"
    with headers_only():
        state = formats.read(path)
    large = {k: a for k, a in state.tensors().items() if np.size(a) > SMALL}
    assert large and all(isinstance(a, TensorHeader) for a in large.values())
    assert all(isinstance(a, np.ndarray) for k, a in state.tensors().items() if k not in large)
