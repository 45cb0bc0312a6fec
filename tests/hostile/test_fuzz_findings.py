"""Inputs the long fuzzing campaign (``tools/fuzz.py --seconds 600``) found, kept as tests.

``findings/fuzz-keras_h5-vlen-attr-hang.h5`` (36 KB, a mutated golden ``model.h5``): reading its
root attribute ``model_config`` -- a variable-length string -- sends HDF5's own attribute read
(``H5Aread`` through h5py) into a loop inside C, where no Python-level timeout reaches it.
Fixed by :mod:`ckptcompat.formats._h5heap`: the collection's free-space entry claims 0 bytes,
which stalls HDF5's walk of the collection; every referenced collection is now walked from the
file's bytes before HDF5 reads an attribute, and this one is refused with a typed error. The
first test still runs the read in a child with a timeout, so a regression cannot hang the suite.
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


def test_vlen_attribute_hang_is_bounded() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(HANG)], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{HANG.name}: ckptcompat.read did not return within 15 s")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]


def test_vlen_attribute_hang_is_a_typed_error() -> None:
    """In process: the global heap is walked before HDF5 reads the attribute, and refused."""
    import ckptcompat
    from ckptcompat.errors import CorruptCheckpointError

    with pytest.raises(CorruptCheckpointError, match="free-space entry of size 0") as info:
        ckptcompat.read(HANG)
    assert str(HANG) in str(info.value)
