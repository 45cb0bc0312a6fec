"""Streaming ``migrate``: an .h5 becomes a .keras holding about one tensor at a time, bitwise
equal to what the in-memory path writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from _big_state import big_state, tensor_bytes
from ckptcompat import formats
from ckptcompat.formats._headers import LazyTensor, lazy_tensors
from ckptcompat.migration import migrate

WIDTH = 1450  # 50 MB of float32 tensors, the largest 8.4 MB


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "big.h5"
    formats.write(path, big_state(WIDTH), format="keras_h5")
    return path


def _tensors(path: Path) -> dict[str, np.ndarray]:
    return ckptcompat.read(path).tensors()


def test_streaming_migrate_equals_in_memory_write(source: Path, tmp_path: Path) -> None:
    streamed = tmp_path / "streamed.keras"
    in_memory = tmp_path / "in_memory.keras"
    report = migrate(source, streamed, to="keras3")
    assert report.verified and report.tensors == 12
    formats.write(in_memory, formats.read(source), format="keras_zip")  # eager read, bytes in memory
    want, got, src = _tensors(in_memory), _tensors(streamed), _tensors(source)
    assert list(got) == list(want) == list(src) and len(got) == 12
    for name, a in want.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape
        assert got[name].tobytes() == a.tobytes() == src[name].tobytes(), name
    back = ckptcompat.read(streamed)
    assert back.optimizer is not None and back.optimizer.iterations == 7


_PEAK_CHILD = """
import sys, tracemalloc
from ckptcompat.migration import migrate
tracemalloc.start()
migrate(sys.argv[1], sys.argv[2], to="keras3")
print(tracemalloc.get_traced_memory()[1])
"""


def test_streaming_migrate_never_holds_the_whole_state(source: Path, tmp_path: Path) -> None:
    """Measured in a fresh interpreter: tracemalloc inside a process that already imported a
    framework (Keras 3.0 with TensorFlow) slowed this to minutes in the version matrix."""
    import subprocess
    import sys

    total = tensor_bytes(big_state(WIDTH))
    largest = WIDTH * WIDTH * 4
    done = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(source), str(tmp_path / "out.keras")],
                          capture_output=True, text=True, timeout=300, check=True)
    peak = int(done.stdout.split()[-1])
    # the in-memory path holds the state, the weights HDF5 and its read-back: > 3 x total
    assert peak < 3 * largest + (8 << 20) < total, (peak, largest, total)


def test_lazy_read_reads_each_tensor_only_when_asked(source: Path) -> None:
    with lazy_tensors():
        state = formats.read(source)
        lazy = [a for a in state.tensors().values() if isinstance(a, LazyTensor)]
        assert len(lazy) == 12 and all(a.shape in ((WIDTH, WIDTH), (WIDTH,)) for a in lazy)
        first = lazy[0].load()
    assert first.tobytes() == next(iter(formats.read(source).tensors().values())).tobytes()


def test_streaming_migrate_writes_the_archive_in_one_pass(source: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights go straight into their zip member (no temporary weights file copied into
    the archive afterwards), each lazy tensor read when it is written."""
    from ckptcompat.formats.keras_zip import _write

    def staged(*args: object, **kwargs: object) -> None:
        raise AssertionError("a weights file was staged and copied")

    monkeypatch.setattr(_write, "_fill_h5", staged)
    monkeypatch.setattr(_write, "_copy", staged)
    report = migrate(source, tmp_path / "one_pass.keras", to="keras3")
    assert report.verified and report.tensors == 12
    import zipfile

    with zipfile.ZipFile(tmp_path / "one_pass.keras") as archive:
        assert archive.testzip() is None
        assert archive.getinfo("model.weights.h5").compress_type == zipfile.ZIP_STORED
    got, src = _tensors(tmp_path / "one_pass.keras"), _tensors(source)
    assert all(got[name].tobytes() == a.tobytes() for name, a in src.items())
