"""`import ckptcompat` stays light: no framework, no h5py, fast."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tensorflow", "keras", "tf_keras", "h5py")

_PROBE = """
import json, sys, time
t0 = time.perf_counter(); import numpy; t1 = time.perf_counter()
import ckptcompat
t2 = time.perf_counter()
ckptcompat.__all__; ckptcompat.errors.CkptCompatError
print(json.dumps({"numpy_ms": (t1 - t0) * 1e3, "ckptcompat_ms": (t2 - t1) * 1e3,
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _probe() -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_does_not_load_frameworks_or_h5py() -> None:
    loaded = set(_probe()["modules"])
    assert not loaded & set(HEAVY), f"import ckptcompat loaded {sorted(loaded & set(HEAVY))}"


def test_import_is_fast() -> None:
    # best of three, beyond numpy's own import; the bar is "well under 100 ms"
    best = min(_probe()["ckptcompat_ms"] for _ in range(3))
    assert best < 50, f"import ckptcompat took {best:.1f} ms beyond numpy"


def test_public_surface_is_declared() -> None:
    import ckptcompat

    assert ckptcompat.__version__
    for name in ckptcompat.__all__:
        assert getattr(ckptcompat, name) is not None, name


def test_every_module_compiles_without_warnings() -> None:
    """No invalid escape sequence or other compile-time warning in the library's sources
    (a cached .pyc would hide it from an import)."""
    import warnings
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "ckptcompat"
    for path in sorted(root.rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile(path.read_text(), str(path), "exec")
