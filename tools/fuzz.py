#!/usr/bin/env python
"""Coverage-guided byte-level fuzzing of every ckptcompat reader (no extra dependency).

Targets: ``keras_h5``, ``keras_zip`` (``.keras`` and ``.weights.h5``), ``tf_bundle`` (index
and data shard), ``saved_model_pb`` and ``keras_metadata`` (the SavedModel protobufs),
``sidecar`` (``state.json`` and legacy JSON), ``safe_pickle``, ``manifest`` (the store
manifest, through ``ckptcompat ls``'s code path) and ``lock``. Each is seeded with
files real releases wrote (``fixtures/``) and a few hostile ones, then mutated byte by byte
(bit flips, interesting integers, deletions, duplications, splices, truncations). An input
that reaches new lines of ckptcompat (``sys.settrace`` line coverage) joins the corpus.

The only acceptable outcomes are success or a :class:`ckptcompat.errors.CkptCompatError`;
anything else (a builtin exception, ``MemoryError``, ``RecursionError``), or a run over
``--hang`` seconds, is a crash: its input is saved under ``--out`` with the traceback.

    python tools/fuzz.py --seconds 600                  # 10 minutes per target (the issue's bar)
    python tools/fuzz.py --target keras_zip --seconds 60 --max-memory 1024
    python tools/fuzz.py --replay fuzz-crashes/keras_h5-<hash>.bin --target keras_h5

Each target runs in a worker process (``--no-isolate`` to run in this one): the parent kills a
worker that stops taking new inputs for longer than ``--hang`` (a stall inside C code, which no
alarm interrupts), saves the input it was on as a hang, and restarts it with the time left.
``tests/hostile/test_fuzz.py`` runs every target for a fraction of a second with a fixed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
PACKAGE = str(ROOT / "ckptcompat")

_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1]


class Hang(BaseException):
    """Raised by the alarm when one input runs past the hang limit (a BaseException, so the
    readers' broad ``except Exception`` in sniffers cannot swallow it)."""


# ------------------------------------------------------------------ targets
@dataclass
class Target:
    """A reader under test: ``run(data, workdir)`` feeds it one input."""

    name: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes, Path], None]


def _fixture_files(pattern: str, limit: int = 6) -> list[bytes]:
    files = sorted(FIXTURES.glob(pattern))
    picked = files[:: max(1, len(files) // limit)][:limit]
    return [p.read_bytes() for p in picked]


def _run_registry(name: str) -> Callable[[bytes, Path], None]:
    def run(data: bytes, work: Path) -> None:
        import ckptcompat

        path = work / name
        path.write_bytes(data)
        ckptcompat.read(path)
    return run


def _frame_items(items: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(len(k).to_bytes(2, "little") + k + len(v).to_bytes(4, "little") + v for k, v in items)


def _unframe_items(blob: bytes) -> list[tuple[bytes, bytes]]:
    """Inverse of :func:`_frame_items`, lenient: stops at the first truncated item."""
    items, pos = [], 0
    while pos + 2 <= len(blob):
        n = int.from_bytes(blob[pos:pos + 2], "little")
        key = blob[pos + 2:pos + 2 + n]
        pos += 2 + n
        m = int.from_bytes(blob[pos:pos + 4].ljust(4, b"\0"), "little")
        value = blob[pos + 4:pos + 4 + m]
        pos += 4 + m
        items.append((key, value))
    return items


def _bundle_seeds() -> list[bytes]:
    """Structure-aware: the index's (key, BundleEntryProto) items, framed, then the data shard,
    so mutations hit the protobuf fields (offsets, sizes, shapes) and not only the table's
    checksummed blocks."""
    from ckptcompat.formats.tf_bundle._sstable import read_table

    out = []
    for index in sorted(FIXTURES.glob("*/*/tf1/model.ckpt.index"))[:3]:
        data = Path(str(index)[: -len(".index")] + ".data-00000-of-00001").read_bytes()
        blob = _frame_items(list(read_table(index.read_bytes())))
        out.append(len(blob).to_bytes(4, "little") + blob + data)
    return out


def _run_bundle(data: bytes, work: Path) -> None:
    """Input: 4-byte length of the framed index items, the items, then the data shard."""
    import ckptcompat
    from ckptcompat.formats.tf_bundle._sstable import build_table

    n = int.from_bytes(data[:4].ljust(4, b"\0"), "little")
    items = dict(_unframe_items(data[4:4 + n]))  # the table needs unique, sorted keys
    (work / "model.ckpt.index").write_bytes(build_table(sorted(items.items())))
    (work / "model.ckpt.data-00000-of-00001").write_bytes(data[4 + n:])
    ckptcompat.read(work / "model.ckpt")


def _pickle_seeds() -> list[bytes]:
    import numpy as np

    docs = [{"optimizer": {"name": "Adam", "learning_rate": 0.001, "iterations": 10}, "epoch": 3},
            {"loss": [0.5, 0.25], "val_loss": [0.6, 0.3]},
            {"a": np.arange(6.0).reshape(2, 3), "b": bytearray(b"x"), "c": (1, 2.5, None)}]
    return [pickle.dumps(d, protocol=p) for d in docs for p in (2, 4, 5) if p <= pickle.HIGHEST_PROTOCOL]


def _run_pickle(data: bytes, work: Path) -> None:
    from ckptcompat.formats.sidecar import read_legacy_sidecar

    path = work / "model.pkl"
    path.write_bytes(data)
    read_legacy_sidecar(path)


def _sidecar_seeds() -> list[bytes]:
    from ckptcompat.formats import sidecar
    from ckptcompat.state import OptimizerState, Progress, TrainingState

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "state.json"
        sidecar.write(p, TrainingState(
            optimizer=OptimizerState("Adam", hyperparameters={"learning_rate": 0.01}, iterations=7),
            progress=Progress(epoch=2, step=5), history={"loss": [1.0, float("nan")]}))
        own = p.read_bytes()
    return [own, json.dumps({"loss": [0.5, 0.4]}).encode(),
            json.dumps({"optimizer": {"class_name": "SGD", "config": {"lr": 0.1}}, "epoch": 1}).encode()]


def _run_sidecar(data: bytes, work: Path) -> None:
    from ckptcompat.formats.sidecar import read_legacy_sidecar

    path = work / "state.json"
    path.write_bytes(data)
    read_legacy_sidecar(path)


def _manifest_seeds() -> list[bytes]:
    entry = {"id": 1, "name": "ckpt-000001-e0001-s000000", "epoch": 1, "step": 0, "global_step": 10,
             "metrics": {"loss": 0.5, "val_loss": "nan"}, "format": "keras_h5",
             "producer": {"framework": "keras", "versions": {"keras": "2.12.0"}},
             "time": "2025-01-31T12:00:00.000Z",
             "files": {"model.h5": {"size": 3, "sha256": "ab" * 32}}, "tags": ["best"]}
    doc = {"schema": 1, "ckptcompat_version": "0.1.0", "next_id": 3, "monitor": "val_loss",
           "mode": "min", "checkpoints": [entry, {**entry, "id": 2, "name": "ckpt-2", "epoch": 2}]}
    return [json.dumps(doc, indent=1).encode(), json.dumps(doc).encode()]


def _run_manifest(data: bytes, work: Path) -> None:
    from ckptcompat.cli.tables import list_rows
    from ckptcompat.store import CheckpointStore

    (work / "ckptcompat.json").write_bytes(data)
    CheckpointStore(work).verify()
    list_rows(work)


def _lock_seeds() -> list[bytes]:
    import socket

    return [json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": "x"}).encode(),
            json.dumps({"pid": 999_999, "host": socket.gethostname(), "time": "x"}).encode(),
            json.dumps({"pid": 1, "host": "elsewhere", "time": "x"}).encode()]


def _run_lock(data: bytes, work: Path) -> None:
    from ckptcompat.store.lock import LOCK_NAME, StoreLock, is_stale, read_holder

    (work / LOCK_NAME).write_bytes(data)
    is_stale(read_holder(work / LOCK_NAME))
    lock = StoreLock(work)
    try:
        lock.acquire()
    finally:
        lock.release()


#: the SavedModel whose members the saved_model targets mutate (the other files stay intact)
_SAVED_MODEL = FIXTURES / "saved_model" / "tf215" / "mlp_adam" / "model"


def _saved_model_seeds(member: str) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        return [p.read_bytes() for p in sorted(FIXTURES.glob(f"saved_model/*/*/model/{member}"))][:6]
    return seeds


def _run_saved_model(member: str) -> Callable[[bytes, Path], None]:
    def run(data: bytes, work: Path) -> None:
        import ckptcompat

        folder = work / "model"
        if not folder.exists():
            shutil.copytree(_SAVED_MODEL, folder)
        (folder / member).write_bytes(data)
        ckptcompat.read(folder)
    return run


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("keras_h5", lambda: _fixture_files("*/*/model.h5"), _run_registry("model.h5")),
    Target("keras_zip", lambda: _fixture_files("*/*/model.keras"), _run_registry("model.keras")),
    Target("keras_weights_h5", lambda: _fixture_files("*/*/model.weights.h5"),
           _run_registry("model.weights.h5")),
    Target("tf_bundle", _bundle_seeds, _run_bundle),
    Target("sidecar", _sidecar_seeds, _run_sidecar),
    Target("safe_pickle", _pickle_seeds, _run_pickle),
    Target("manifest", _manifest_seeds, _run_manifest),
    Target("lock", _lock_seeds, _run_lock),
    Target("saved_model_pb", _saved_model_seeds("saved_model.pb"), _run_saved_model("saved_model.pb")),
    Target("keras_metadata", _saved_model_seeds("keras_metadata.pb"), _run_saved_model("keras_metadata.pb")),
    # not a reader: stalls as C code does (SIGALRM blocked), for the test of the isolating parent
    Target("selftest_stall", lambda: [b"stall"], lambda data, work: _stall()),
]}


def _stall() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)


# ------------------------------------------------------------------ mutation
def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """One to four random byte-level mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:  # an interesting integer, 1/2/4/8 bytes, either endianness
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice(_INTERESTING) & ((1 << (8 * width)) - 1)
            buf[pos:pos + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif op == 3 and buf:  # delete a range
            del buf[pos:pos + rng.randint(1, 64)]
        elif op == 4 and buf:  # duplicate a range
            start = rng.randrange(len(buf))
            chunk = buf[start:start + rng.randint(1, 256)]
            buf[pos:pos] = chunk * rng.randint(1, 8)
        elif op == 5 and corpus:  # splice from another input
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            buf[pos:] = other[start:start + rng.randint(1, 4096)] + buf[pos:]
        elif op == 6:  # truncate
            del buf[pos:]
        elif op == 7:  # nest: brackets/braces for JSON-ish inputs
            buf[pos:pos] = rng.choice((b"[", b"{", b'"', b"\\", b"1e999", b"-1")) * rng.randint(1, 512)
    return bytes(buf)


# ------------------------------------------------------------------ coverage and running
class Coverage:
    """(file, line) pairs of ckptcompat reached, via ``sys.settrace``."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()
        self._new = 0

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            if key not in self.seen:
                self.seen.add(key)
                self._new += 1
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        return self._local if frame.f_code.co_filename.startswith(PACKAGE) else None

    @contextmanager
    def tracing(self) -> Iterator[None]:
        self._new = 0
        sys.settrace(self._global)
        try:
            yield
        finally:
            sys.settrace(None)

    @property
    def grew(self) -> bool:
        return self._new > 0


@dataclass
class Crash:
    target: str
    kind: str
    detail: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


@dataclass
class Result:
    target: str
    runs: int = 0
    corpus: int = 0
    lines: int = 0
    crashes: list[Crash] = field(default_factory=list)


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def run_one(target: Target, data: bytes, hang: float) -> Crash | None:
    """Feed ``data`` to ``target`` in a fresh temporary folder; a crash or ``None``."""
    from ckptcompat.errors import CkptCompatError

    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-"))
    use_alarm = hasattr(signal, "setitimer") and signal.getsignal(signal.SIGALRM) in (
        signal.SIG_DFL, _alarm, None)
    previous = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    start = time.monotonic()
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, hang)
        target.run(data, work)
    except Hang:
        return Crash(target.name, "hang", f"over {hang} s", data)
    except CkptCompatError:
        pass
    except BaseException as exc:  # noqa: BLE001 -- every untyped exception is the finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Crash(target.name, type(exc).__name__, traceback.format_exc(limit=12), data)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(work, ignore_errors=True)
    if time.monotonic() - start > hang:
        return Crash(target.name, "hang", f"took {time.monotonic() - start:.1f} s", data)
    return None


def fuzz(target: Target, *, seconds: float, seed: int = 0, hang: float = 10.0,
         max_runs: int | None = None, coverage: bool = True, progress: Path | None = None) -> Result:
    """Fuzz ``target`` for ``seconds`` (or ``max_runs`` inputs); returns what was found.

    ``progress``: each input is written there just before it runs (the isolating parent of
    :func:`fuzz_isolated` reads it when this process stops answering)."""
    rng = random.Random(seed)
    cov = Coverage()
    corpus = [s for s in target.seeds() if s]
    result = Result(target.name)
    deadline = time.monotonic() + seconds
    queue = list(corpus)  # seeds first, unmutated
    while time.monotonic() < deadline and (max_runs is None or result.runs < max_runs):
        data = queue.pop(0) if queue else mutate(rng.choice(corpus), rng, corpus)
        if progress is not None:
            progress.write_bytes(data)  # also the heartbeat: its mtime says the worker is alive
        if coverage:
            with cov.tracing():
                crash = run_one(target, data, hang)
        else:
            crash = run_one(target, data, hang)
        result.runs += 1
        if crash is not None:
            result.crashes.append(crash)
        elif coverage and cov.grew and len(corpus) < 2000:
            corpus.append(data)
    result.corpus, result.lines = len(corpus), len(cov.seen)
    return result


def fuzz_isolated(name: str, *, seconds: float, seed: int, hang: float, out: Path,
                  max_memory: int) -> Result:
    """Fuzz in a worker process the parent can kill: an input that stalls inside C code (where
    no alarm reaches, as HDF5's heap walk once did) is saved as a hang and the worker restarts
    with the time left, instead of stalling the whole campaign."""
    import subprocess

    result = Result(name)
    deadline = time.monotonic() + seconds
    restarts = 0
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        progress, report = Path(tmp) / "current.bin", Path(tmp) / "report.json"
        while time.monotonic() < deadline - 1:
            if report.exists():
                report.unlink()
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--target", name,
                   "--seconds", f"{deadline - time.monotonic():.1f}", "--seed", str(seed + restarts),
                   "--hang", str(hang), "--max-memory", str(max_memory), "--out", str(out),
                   "--progress", str(progress), "--report", str(report)]
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            while child.poll() is None:
                time.sleep(0.5)
                quiet = time.time() - (progress.stat().st_mtime if progress.exists() else time.time())
                if quiet > hang + 5:  # no new input for longer than the hang limit: stuck in C
                    child.kill()
                    child.wait()
                    crash = Crash(name, "hang", f"no answer for {quiet:.0f} s (killed)", progress.read_bytes())
                    _save([crash], out)
                    result.crashes.append(crash)
                    break
            if report.exists():
                done = json.loads(report.read_text())
                result.runs += done["runs"]
                result.corpus, result.lines = max(result.corpus, done["corpus"]), max(result.lines, done["lines"])
                result.crashes += [Crash(name, k, "", b"") for k in done["crashes"]]
                break
            restarts += 1
    return result


def _save(crashes: list[Crash], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for c in crashes:
        (out / f"{c.target}-{c.digest}.bin").write_bytes(c.data)
        (out / f"{c.target}-{c.digest}.txt").write_text(f"{c.kind}\n{c.detail}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--seconds", type=float, default=30.0, help="per target (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=10.0, help="seconds before an input is a hang")
    parser.add_argument("--max-memory", type=int, default=1024, help="MiB of address space (0: no limit)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--replay", type=Path, help="run one saved input against --target")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="fuzz in this process (a hang inside C code then stalls the campaign)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = args.target or sorted(n for n in TARGETS if not n.startswith("selftest"))
    if args.isolate and not (args.worker or args.replay):
        return _campaign(names, args)
    for target in [TARGETS[n] for n in names]:  # seeds are built before the memory cap
        target.seeds = (lambda s: lambda: s)(target.seeds())
    if args.max_memory:
        import resource

        cap = args.max_memory << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if args.replay:
        crash = run_one(TARGETS[names[0]], args.replay.read_bytes(), args.hang)
        print("ok (typed or no error)" if crash is None else f"{crash.kind}\n{crash.detail}")
        return 0 if crash is None else 1
    if args.worker:
        result = fuzz(TARGETS[names[0]], seconds=args.seconds, seed=args.seed, hang=args.hang,
                      progress=args.progress)
        _save(result.crashes, args.out)
        args.report.write_text(json.dumps({"runs": result.runs, "corpus": result.corpus, "lines": result.lines,
                                           "crashes": [c.kind for c in result.crashes]}))
        return 0
    return _campaign(names, args)


def _campaign(names: list[str], args: argparse.Namespace) -> int:
    """Every target in turn (isolated in a worker unless ``--no-isolate``); 1 if anything crashed."""
    total = 0
    for name in names:
        if args.isolate:
            result = fuzz_isolated(name, seconds=args.seconds, seed=args.seed, hang=args.hang,
                                   out=args.out, max_memory=args.max_memory)
        else:
            result = fuzz(TARGETS[name], seconds=args.seconds, seed=args.seed, hang=args.hang)
            _save(result.crashes, args.out)
        total += len(result.crashes)
        kinds = sorted({c.kind for c in result.crashes})
        print(f"{name:18s} {result.runs:7d} runs  corpus {result.corpus:5d}  lines {result.lines:5d}  "
              f"crashes {len(result.crashes)} {kinds if kinds else ''}", flush=True)
    if total:
        print(f"{total} crash(es) saved under {args.out}/")
    return 1 if total else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
