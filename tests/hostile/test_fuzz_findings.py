"""Inputs the long fuzzing campaigns (``tools/fuzz.py --seconds 600``) found, kept as tests.

``findings/fuzz-keras_h5-*.h5`` (19-46 KB, mutated golden ``model.h5`` files): reading a root
attribute such as ``model_config`` -- a variable-length string -- sent HDF5's own attribute read
(``H5Aread`` through h5py) into a loop inside C, where no Python-level timeout reaches it: the
global heap collection holding the string has a free-space entry that claims 0 bytes, and
HDF5's walk of the collection stands still on it. The first was found by the first campaign
(the file's object header intact), the other four by the second (in two of them the damaged
header also hides which collection the attribute uses). Fixed by
:mod:`ckptcompat.formats._h5heap`: the collections are walked from the file's bytes before
HDF5 reads an attribute, and these are refused with a typed error. Each read also runs in a
child with a timeout, so a regression cannot hang the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FINDINGS = sorted((Path(__file__).with_name("findings")).glob("fuzz-keras_h5-*.h5"))
_CHILD = """
import sys, ckptcompat
from ckptcompat.errors import CkptCompatError
try:
    ckptcompat.read(sys.argv[1])
except CkptCompatError:
    pass
"""


def test_the_findings_are_here() -> None:
    assert len(FINDINGS) == 5, FINDINGS


@pytest.mark.parametrize("found", FINDINGS, ids=lambda p: p.stem)
def test_heap_hang_is_bounded(found: Path) -> None:
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(found)], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{found.name}: ckptcompat.read did not return within 15 s")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]


@pytest.mark.parametrize("found", FINDINGS, ids=lambda p: p.stem)
def test_heap_hang_is_a_typed_error(found: Path) -> None:
    """In process: the global heap is walked before HDF5 reads the attribute, and refused."""
    import ckptcompat
    from ckptcompat.errors import CorruptCheckpointError

    with pytest.raises(CorruptCheckpointError, match="free-space entry of size 0") as info:
        ckptcompat.read(found)
    assert str(found) in str(info.value)
