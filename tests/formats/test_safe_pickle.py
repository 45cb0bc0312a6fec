"""The restricted unpickler: plain data in, everything else refused, nothing executed."""

from __future__ import annotations

import collections
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from ckptcompat.errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)
from ckptcompat.formats.safe_pickle import ALLOWED_GLOBALS, safe_load, safe_loads


def _globals_of(data: bytes) -> set[str]:
    """``module.name`` of every global the pickle references (GLOBAL and STACK_GLOBAL)."""
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]}.{strings[-1]}")
    return found


PLAIN = {
    "epoch": 7,
    "lr": 0.25,
    "name": "Adam",
    "flags": [True, False, None],
    "tuple": (1, 2.5, "x"),
    "set": {1, 2},
    "frozen": frozenset({"a"}),
    "bytes": b"\x00\x01",
    "complex": 1 + 2j,
    "nested": {"a": [{"b": 1}]},
}


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips_for_every_protocol(protocol: int) -> None:
    assert safe_loads(pickle.dumps(PLAIN, protocol=protocol)) == PLAIN


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_scalars_and_dtypes_round_trip(protocol: int) -> None:
    value = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.array([-1, 2**40], dtype=np.int64),
        "bool": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "scalar_f64": np.float64(0.1),
        "scalar_f32": np.float32(1.5),
        "scalar_i32": np.int32(-3),
        "dtype": np.dtype("<u2"),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "object_array": np.array([1, "two", None], dtype=object),
    }
    out = safe_loads(pickle.dumps(value, protocol=protocol))
    for key in ("f32", "i64", "bool", "fortran", "object_array"):
        assert out[key].dtype == value[key].dtype, key
        assert np.array_equal(out[key], value[key]), key
    for key in ("scalar_f64", "scalar_f32", "scalar_i32"):
        assert type(out[key]) is type(value[key]) and out[key] == value[key], key
    assert out["dtype"] == np.dtype("<u2")
    assert list(out["ordered"].items()) == [("b", 1), ("a", 2)]


def test_numpy_core_spelling_of_either_generation_is_accepted() -> None:
    # a pickle written by numpy < 2 names numpy.core.*, one by numpy >= 2 numpy._core.*;
    # both must load whichever numpy is installed. Rewrite the module name in a real pickle.
    data = pickle.dumps(np.arange(3, dtype=np.int16), protocol=2)  # GLOBAL opcodes: plain text names
    for spelling in (b"numpy.core.multiarray", b"numpy._core.multiarray"):
        patched = (data.replace(b"numpy._core.multiarray\n", b"@@MOD@@\n")
                   .replace(b"numpy.core.multiarray\n", b"@@MOD@@\n")
                   .replace(b"@@MOD@@\n", spelling + b"\n"))
        assert spelling.decode() + "._reconstruct" in _globals_of(patched)
        out = safe_loads(patched)
        assert out.dtype == np.int16 and np.array_equal(out, [0, 1, 2])


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_os_system_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"epoch": 3, "x": _RunsShell(f"touch {marker}")})
    target = tmp_path / "state.pkl"
    target.write_bytes(payload)
    refused = {g for g in _globals_of(payload) if g not in ALLOWED_GLOBALS}
    assert refused == {f"{os.system.__module__}.system"}  # posix.system on Linux
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_load(target)
    assert f"{os.system.__module__}.system" in str(info.value)
    assert info.value.path == str(target) and str(target) in str(info.value)
    assert not marker.exists()
    # the same payload through plain pickle would have run: prove the test can fail
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("obj, qualified", [
    (eval, "builtins.eval"),
    (collections.Counter(a=1), "collections.Counter"),
    (Path("x"), "pathlib.PosixPath"),
])
def test_other_globals_are_refused_by_name(obj: object, qualified: str) -> None:
    with pytest.raises(UnsafeCheckpointError, match=qualified.replace(".", r"\.")):
        safe_loads(pickle.dumps(obj), path="side.pkl")


def test_non_text_codec_in_codecs_encode_is_corrupt() -> None:
    class Zipped:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            import _codecs
            return (_codecs.encode, ("abc", "zlib_codec"))
    with pytest.raises(CorruptCheckpointError, match="zlib_codec"):
        safe_loads(pickle.dumps(Zipped(), protocol=2))


def test_persistent_ids_are_refused() -> None:
    import io

    class P(pickle.Pickler):
        def persistent_id(self, obj: object) -> str | None:
            return "ext" if obj == "secret" else None
    buf = io.BytesIO()
    P(buf, protocol=4).dump(["secret"])
    with pytest.raises(UnsafeCheckpointError, match="persistent"):
        safe_loads(buf.getvalue())


def test_every_truncation_is_corrupt(tmp_path: Path) -> None:
    data = pickle.dumps({"history": {"loss": [np.float64(0.5)] * 3}, "w": np.ones(4, np.float32)}, protocol=4)
    for cut in range(len(data)):
        with pytest.raises(CorruptCheckpointError):
            safe_loads(data[:cut], path="cut.pkl")


def test_absurd_array_size_is_corrupt_not_a_crash() -> None:
    class Huge:
        def __reduce__(self) -> tuple[object, tuple[tuple[int, ...], str]]:
            return (np.ndarray, ((10**7, 10**7, 10**3), "float64"))
    with pytest.raises(CorruptCheckpointError):
        safe_loads(pickle.dumps(Huge()), path="huge.pkl")


def test_size_cap_refuses_before_reading(tmp_path: Path) -> None:
    target = tmp_path / "big.pkl"
    target.write_bytes(pickle.dumps(list(range(1000))))
    with pytest.raises(UnsafeCheckpointError, match="limit"):
        safe_load(target, max_bytes=100)
    assert safe_load(target) == list(range(1000))


def test_missing_empty_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        safe_load(tmp_path / "absent.pkl")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError):
        safe_load(tmp_path / "empty.pkl")
    with pytest.raises(UnsupportedFormatError):
        safe_load(tmp_path)
