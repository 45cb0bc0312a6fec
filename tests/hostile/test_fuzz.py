"""A short, bounded fuzzing run of every reader (``tools/fuzz.py``), in every CI run.

Fixed seed and a fixed number of inputs per target, so a failure reproduces; each input
must end in success or a typed :class:`~ckptcompat.errors.CkptCompatError` within 10 s.
Longer runs: ``python tools/fuzz.py --seconds 600`` (see ``docs/hostile-inputs.md``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("ckptcompat_fuzz", ROOT / "tools" / "fuzz.py")
assert _SPEC is not None and _SPEC.loader is not None
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = fuzz
_SPEC.loader.exec_module(fuzz)

pytestmark = pytest.mark.fuzz


READERS = sorted(n for n in fuzz.TARGETS if not n.startswith("selftest"))


@pytest.mark.parametrize("name", READERS)
def test_short_fuzz_run(name: str) -> None:
    logging.disable(logging.CRITICAL)
    try:
        result = fuzz.fuzz(fuzz.TARGETS[name], seconds=60.0, seed=19, hang=10.0, max_runs=30)
    finally:
        logging.disable(logging.NOTSET)
    assert result.runs == 30, result  # a fixed number of inputs: the run reproduces
    assert not result.crashes, "\n\n".join(f"{c.kind}: {c.detail}" for c in result.crashes)


def test_fuzzer_reports_untyped_exceptions_and_hangs() -> None:
    """The harness itself: an untyped error and a hang are findings, a typed error is not."""
    import time

    from ckptcompat.errors import CorruptCheckpointError

    def typed(data: bytes, work: Path) -> None:
        raise CorruptCheckpointError("typed", path=work)

    def untyped(data: bytes, work: Path) -> None:
        raise KeyError(data)

    def slow(data: bytes, work: Path) -> None:
        time.sleep(5)

    assert fuzz.run_one(fuzz.Target("t", list, typed), b"x", 5.0) is None
    crash = fuzz.run_one(fuzz.Target("u", list, untyped), b"x", 5.0)
    assert crash is not None and crash.kind == "KeyError"
    crash = fuzz.run_one(fuzz.Target("s", list, slow), b"x", 0.2)
    assert crash is not None and crash.kind == "hang"


def test_mutations_are_deterministic() -> None:
    import random

    seeds = [b"hello world" * 10]
    first, second = random.Random(3), random.Random(3)
    one = [fuzz.mutate(seeds[0], first, seeds) for _ in range(20)]
    two = [fuzz.mutate(seeds[0], second, seeds) for _ in range(20)]
    assert one == two and sum(m != seeds[0] for m in one) >= 15


def test_a_stall_inside_c_is_recorded_not_waited_for(tmp_path: Path) -> None:
    """An input that stalls where no alarm reaches (SIGALRM blocked, as in C code) is killed with
    its worker, saved as a hang, and the campaign goes on with the time left."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "--target", "selftest_stall",
                           "--seconds", "9", "--hang", "1", "--out", str(tmp_path / "found")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    reports = sorted((tmp_path / "found").glob("selftest_stall-*.txt"))
    assert reports and reports[0].read_text().startswith("hang\n")
    assert (tmp_path / "found" / reports[0].name.replace(".txt", ".bin")).read_bytes() == b"stall"
