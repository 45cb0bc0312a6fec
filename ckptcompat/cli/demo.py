"""``ckptcompat demo``: a power cut in the middle of an epoch, a resume, and a bitwise comparison.

The parent process (this module, framework-free) starts training children
(``python -m ckptcompat.cli.demo child ...``, see :mod:`ckptcompat.cli.demo_child`):

1. an *interrupted* run: a small CNN on generated 12x12 images, ``ArrayData`` +
   ``Checkpoint(save_freq=4 batches)``, op determinism. When the child reports that it
   reached the chosen batch (a progress marker file) the parent kills it with SIGKILL;
2. a new child resumes it with :func:`ckptcompat.resume` and finishes;
3. meanwhile another child trains the same model uninterrupted.

Both outcomes are compared: final weights must be bitwise equal.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ckptcompat._compat import unlink_if_present
from ckptcompat.errors import CkptCompatError, InvalidArgumentError, MissingDependencyError

__all__ = ["DemoResult", "run_demo", "cut_point", "render", "main"]

log = logging.getLogger(__name__)

BATCHES_PER_EPOCH = 9   # keep in sync with _demo_child.N_TRAIN // BATCH_SIZE
SAVE_FREQ = 4
NO_TF_HINT = ("TensorFlow is not installed, the demo needs it. Hint: pip install 'ckptcompat[tf]' "
              "(or tensorflow-cpu), then run 'ckptcompat demo' again")


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What the demo found: both outcomes, where the cut happened, and the verdict."""

    interrupted: dict[str, Any]
    straight: dict[str, Any]
    cut: dict[str, Any]
    equal: bool
    mismatches: tuple[str, ...]
    plot: Path | None
    seconds: float


def cut_point(epochs: int) -> int:
    """The global batch (1-based count of trained batches) at which the power is cut.

    In the middle epoch, mid-epoch, and never on a checkpoint (so batches are redone).
    """
    epoch = epochs // 2 if epochs > 1 else 0
    for batch in (6, 5, 7, 3, 2):
        step = epoch * BATCHES_PER_EPOCH + batch
        if step % SAVE_FREQ:
            return step
    return epoch * BATCHES_PER_EPOCH + 6  # pragma: no cover


def _child_cmd(mode: str, workdir: Path, epochs: int, seed: int, cut_at: int) -> list[str]:
    return [sys.executable, "-m", "ckptcompat.cli.demo", "child", mode, str(workdir), str(epochs),
            str(seed), str(cut_at)]


def _start(mode: str, workdir: Path, epochs: int, seed: int, cut_at: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    logf = open(workdir / f"child-{mode}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(_child_cmd(mode, workdir, epochs, seed, cut_at), stdout=logf,
                            stderr=subprocess.STDOUT, env=env)
    logf.close()
    return proc


def _tail(workdir: Path, mode: str, lines: int = 15) -> str:
    try:
        text = (workdir / f"child-{mode}.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _finish(proc: subprocess.Popen[bytes], workdir: Path, mode: str, timeout: float) -> dict[str, Any]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise CkptCompatError(f"the {mode} child did not finish in {timeout:.0f}s",
                              path=workdir / f"child-{mode}.log") from exc
    out = workdir / ("straight" if mode == "straight" else "interrupted") / "outcome.json"
    if rc != 0 or not out.is_file():
        raise CkptCompatError(f"the {mode} child failed (exit {rc}):\n{_tail(workdir, mode)}",
                              path=workdir / f"child-{mode}.log")
    return dict(json.loads(out.read_text()))


def _wait_marker(proc: subprocess.Popen[bytes], marker: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file():
            return dict(json.loads(marker.read_text()))
        if proc.poll() is not None:
            raise CkptCompatError(f"the training child exited ({proc.returncode}) before the cut:\n"
                                  f"{_tail(marker.parents[1], 'cut')}", path=marker.parent)
        time.sleep(0.05)
    proc.kill()
    raise CkptCompatError(f"no progress marker after {timeout:.0f}s", path=marker)


def _compare(a: Path, b: Path) -> tuple[bool, tuple[str, ...]]:
    import numpy as np

    with np.load(a) as wa, np.load(b) as wb:
        names = sorted(set(wa.files) | set(wb.files), key=lambda n: int(n.split("_")[-1]))
        bad = [n for n in names
               if n not in wa.files or n not in wb.files or wa[n].dtype != wb[n].dtype
               or not np.array_equal(wa[n], wb[n])]
    return not bad, tuple(bad)


def _plot(workdir: Path, echo: Callable[[str], None]) -> Path | None:
    from ckptcompat.cli.plot import plot_history

    try:
        return plot_history(workdir / "interrupted" / "checkpoints", workdir / "history.png")
    except MissingDependencyError:
        echo("history plot: matplotlib is not installed; pip install matplotlib "
             "(or 'ckptcompat[plot]') to get history.png")
    return None


def run_demo(workdir: str | os.PathLike[str] = "ckptcompat-demo", *, epochs: int = 3, seed: int = 0,
             echo: Callable[[str], None] = log.info, timeout: float = 300.0) -> DemoResult:
    """Cut, resume and compare (see the module docstring); progress lines go to ``echo``.

    Raises :class:`MissingDependencyError` without TensorFlow, :class:`CkptCompatError` when
    a child fails. Only the demo's own entries of ``workdir`` are replaced.
    """
    if epochs < 1:
        raise InvalidArgumentError(f"--epochs {epochs}: must be at least 1")
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(NO_TF_HINT)
    started = time.perf_counter()
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for old in ("interrupted", "straight"):
        shutil.rmtree(work / old, ignore_errors=True)
    for old in ("history.png", "child-cut.log", "child-resume.log", "child-straight.log"):
        unlink_if_present(work / old)
    (work / "interrupted").mkdir()
    cut_at = cut_point(epochs)
    echo(f"workdir {work}: {epochs} epochs x {BATCHES_PER_EPOCH} batches, seed {seed}, "
         f"checkpoint every {SAVE_FREQ} batches")
    straight = _start("straight", work, epochs, seed, cut_at)
    cut = _start("cut", work, epochs, seed, cut_at)
    echo(f"[1/3] training child pid {cut.pid} (and an uninterrupted twin, pid {straight.pid})")
    try:
        where = _wait_marker(cut, work / "interrupted" / "progress.json", timeout)
        os.kill(cut.pid, signal.SIGKILL)
        cut.wait()
        echo(f"      power cut: SIGKILL at epoch {where['epoch'] + 1}, batch {where['batch']} "
             f"of {BATCHES_PER_EPOCH} (global batch {where['global_step']})")
        resumed = _start("resume", work, epochs, seed, cut_at)
        echo(f"[2/3] resuming in a new child, pid {resumed.pid}, with ckptcompat.resume")
        inter = _finish(resumed, work, "resume", timeout)
        echo("[3/3] waiting for the uninterrupted run")
        twin = _finish(straight, work, "straight", timeout)
    finally:
        for proc in (cut, straight):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    equal, bad = _compare(work / "interrupted" / "final.npz", work / "straight" / "final.npz")
    equal = equal and inter["iterations"] == twin["iterations"]
    plot = _plot(work, echo)
    return DemoResult(inter, twin, where, equal, bad, plot, time.perf_counter() - started)


def render(result: DemoResult) -> str:
    """The side-by-side table printed by ``ckptcompat demo``."""
    a, b = result.interrupted, result.straight
    src = a.get("resumed_from", {})
    rows = [("", "cut + resumed", "uninterrupted"),
            ("epochs", f"{src.get('epoch', 0) + a['epochs_run']} ({a['epochs_run']} after the resume)",
             str(b["epochs_run"])),
            ("optimizer steps", str(a["iterations"]), str(b["iterations"])),
            ("final loss (train set)", f"{a['final_loss']:.6f}", f"{b['final_loss']:.6f}"),
            ("final accuracy", f"{a['final_accuracy']:.4f}", f"{b['final_accuracy']:.4f}"),
            ("power cut at", f"epoch {result.cut['epoch'] + 1}, batch {result.cut['batch']}", "-"),
            ("resumed from", f"epoch {src.get('epoch', 0) + 1}, batch {src.get('step')} "
             f"(global {src.get('global_step')})", "-")]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.append(f"checkpoint resumed: {src.get('path')}")
    verdict = "yes" if result.equal else "NO (" + ", ".join(result.mismatches) + ")"
    lines.append(f"weights bitwise-equal: {verdict}")
    if result.plot is not None:
        lines.append(f"history plot: {result.plot}")
    lines.append(f"demo wall time: {result.seconds:.1f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ckptcompat.cli.demo child MODE WORKDIR EPOCHS SEED CUT_AT`` (internal) or the demo."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["child"] and len(args) == 6:
        from ckptcompat.cli.demo_child import run_child

        run_child(args[1], Path(args[2]), int(args[3]), int(args[4]), int(args[5]))
        return 0
    from ckptcompat.cli.commands import main as cli_main

    return cli_main(["demo", *args])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
