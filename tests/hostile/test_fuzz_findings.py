"""Inputs the long fuzzing campaign (``tools/fuzz.py --seconds 600``) found, kept as tests.

``findings/fuzz-keras_h5-vlen-attr-hang.h5`` (36 KB, a mutated golden ``model.h5``): reading its
root attribute ``model_config`` -- a variable-length string -- sends HDF5's own attribute read
(``H5Aread`` through h5py) into a loop inside C, where no Python-level timeout reaches it.
Open: bounding it needs the HDF5 reads of untrusted files in a child process, or a check of
the global heap before the read. The test runs the read in a child with a timeout and is a
strict xfail until that lands (it turns red once the read is bounded: then drop the mark).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HANG = Path(__file__).with_name("findings") / "fuzz-keras_h5-vlen-attr-hang.h5"
_CHILD = """
import sys, ckptcompat
from ckptcompat.errors import CkptCompatError
try:
    ckptcompat.read(sys.argv[1])
except CkptCompatError:
    pass
"""


@pytest.mark.xfail(strict=True, reason="HDF5 loops inside H5Aread on a corrupted vlen-string attribute "
                                       "(issue #19: untrusted HDF5 reads need a bounded child process)")
def test_vlen_attribute_hang_is_bounded() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(HANG)], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{HANG.name}: ckptcompat.read did not return within 15 s")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
