"""The test side of :mod:`tests._zygote`: ``python script args`` forked from a pre-imported Python.

:func:`popen` and :func:`run` take what ``subprocess.Popen`` / ``subprocess.run`` would for
``[sys.executable, script, *args]`` and return an object with the same use (``pid``, ``poll``,
``wait``, ``communicate``, ``send_signal``, ``kill``, ``returncode``, ``stdout`` / ``stderr``
read after the end). Where the zygote cannot stand in for a fresh interpreter they are
``subprocess`` itself.
"""

from __future__ import annotations

import atexit
import io
import itertools
import json
import logging
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Dict, Optional, Sequence, Tuple, Union

import _zygote  # tests/ is on sys.path (conftest)

logger = logging.getLogger(__name__)
SERVER = Path(__file__).with_name("_zygote.py")
#: the random hash seeds of the two zygotes that children setting none alternate between
_RANDOM_SEEDS = [str(random.SystemRandom().randrange(1, 2**32 - 1)) for _ in range(2)]


def forkable(argv: Sequence[str], env: Dict[str, str], zygote_env: Optional[Dict[str, str]] = None) -> bool:
    """Whether ``python *argv`` under ``env`` runs the same forked from a zygote started in
    ``zygote_env`` (this process's environment by default): a script, the same startup variables."""
    if not argv or argv[0].startswith("-") or not argv[0].endswith(".py"):
        return False
    return _zygote.startup_env(env) == _zygote.startup_env(dict(os.environ) if zygote_env is None else zygote_env)


class Zygote:
    """A server with one hash seed, started on first use; ``None`` from :meth:`get` where it is
    off or a zygote failed to start (then children are plain subprocesses)."""

    _instances: Dict[str, "Zygote"] = {}
    _failed: Dict[str, str] = {}  # seed -> why its zygote did not start ("*": unusable here)
    _turn = itertools.count()

    def __init__(self, seed: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ckpt-zygote-"))
        self.socket = str(self.folder / "s")
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED=seed)
        self.env.pop("PYTHONUNBUFFERED", None)
        with open(self.folder / "server.log", "wb") as log:
            self.process = subprocess.Popen([sys.executable, str(SERVER), self.socket], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        ready = self._first_line(timeout=300)
        if ready != "ready":
            self.close()
            raise RuntimeError(ready or "no answer")
        self.ids = itertools.count()
        atexit.register(self.close)

    def _first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline().decode().strip() if readable else ""

    @classmethod
    def get(cls, seed: Optional[str]) -> Optional["Zygote"]:
        """The zygote of hash seed ``seed``; for None (a child that sets none) the two of random
        seeds in turn."""
        if "*" in cls._failed or os.environ.get("CKPT_TESTS_NO_ZYGOTE") == "1" or \
                not sys.platform.startswith("linux"):
            return None
        seed = seed if seed and seed != "random" else _RANDOM_SEEDS[next(cls._turn) % 2]
        if seed not in cls._instances and seed not in cls._failed:
            try:
                cls._instances[seed] = cls(seed)
            except (OSError, RuntimeError) as exc:
                cls._failed["*" if str(exc).startswith("unusable:") else seed] = str(exc)
                logger.info("no zygote (%s): children are plain subprocesses", exc)
        return cls._instances.get(seed)

    def accepts(self, argv: Sequence[str], env: Dict[str, str]) -> bool:
        """Whether ``argv`` (without the interpreter) under ``env`` runs the same when forked here."""
        return self.process.poll() is None and forkable(argv, env, self.env)

    def start(self, argv: Sequence[str], env: Dict[str, str], cwd: Optional[str],
              stdout: Optional[str], stderr: Optional[str]) -> "ForkedChild":
        """Fork the child; OSError where the zygote cannot be reached."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.socket)
            request = {"argv": [str(a) for a in argv], "env": env, "cwd": cwd or os.getcwd(),
                       "stdout": stdout, "stderr": stderr}
            conn.sendall(json.dumps(request).encode() + b"\n")
            reader = conn.makefile("rb", buffering=0)  # unbuffered: select() sees the status line
            line = reader.readline()
        except OSError:
            conn.close()
            raise
        if not line:
            conn.close()
            raise OSError("the zygote did not fork the child")
        return ForkedChild(argv, json.loads(line)["pid"], conn, reader, stdout, stderr)

    def capture(self, name: str) -> str:
        return str(self.folder / f"{next(self.ids)}.{name}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)


#: the returncode of a child whose zygote ended before reporting it (no real exit status)
_ZYGOTE_GONE = -255


class ForkedChild:
    """A child forked by the zygote, used like ``subprocess.Popen`` (output read from files)."""

    def __init__(self, args: Sequence[str], pid: int, conn: socket.socket, reader: IO[bytes],
                 stdout: Optional[str], stderr: Optional[str]) -> None:
        self.args, self.pid, self.returncode = list(args), pid, None  # type: ignore[var-annotated]
        self._conn, self._reader = conn, reader
        self.stdout = _Capture(stdout) if stdout else None
        self.stderr = _Capture(stderr) if stderr and stderr != "stdout" else None

    def poll(self) -> Optional[int]:
        if self.returncode is None and self._conn.fileno() != -1:
            readable, _, _ = select.select([self._conn], [], [], 0)
            if readable:
                self._status()
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            readable, _, _ = select.select([self._conn], [], [], timeout)
            if not readable:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._status()
        return self.returncode  # type: ignore[return-value]

    def _status(self) -> None:
        line = self._reader.readline()
        self._reader.close()
        self._conn.close()
        if not line:
            self.returncode = _ZYGOTE_GONE
            raise RuntimeError(f"the zygote ended before child {self.pid} did (see its server.log)")
        self.returncode = json.loads(line)["status"]

    def communicate(self, timeout: Optional[float] = None) -> Tuple[Optional[bytes], Optional[bytes]]:
        self.wait(timeout)
        return (self.stdout.read() if self.stdout else None, self.stderr.read() if self.stderr else None)

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:  # ended (and reaped by the zygote) since the poll
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class _Capture(io.RawIOBase):
    """A captured stream: ``read()`` gives what the child wrote since the last read."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path, self._at = path, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            with open(self._path, "rb") as handle:
                handle.seek(self._at)
                data = handle.read() if size is None or size < 0 else handle.read(size)
        except FileNotFoundError:
            return b""
        self._at += len(data)
        return data


Stream = Union[int, None]


def popen(argv: Sequence[Union[str, Path]], env: Dict[str, str], cwd: Union[str, Path, None] = None,
          stdout: Stream = None, stderr: Stream = None) -> Any:
    """``subprocess.Popen([sys.executable, *argv], ...)``, forked by the zygote where it can be;
    ``stdout`` / ``stderr``: ``subprocess.PIPE``, ``DEVNULL``, ``STDOUT`` (stderr) or None."""
    args = [str(a) for a in argv]
    inherited = stdout is None or stderr is None  # the test process's own streams: not forked
    zygote = None if inherited or not forkable(args, env) else Zygote.get(env.get("PYTHONHASHSEED"))
    if zygote is not None and zygote.accepts(args, env):
        out = zygote.capture("out") if stdout == subprocess.PIPE else None
        err = "stdout" if stderr == subprocess.STDOUT else zygote.capture("err") if stderr == subprocess.PIPE \
            else None
        try:
            return zygote.start(args, env, str(cwd) if cwd else None, out, err)
        except OSError as exc:
            logger.warning("zygote unreachable (%s): a plain subprocess instead", exc)
    return subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=stdout, stderr=stderr)


def run(argv: Sequence[Union[str, Path]], env: Dict[str, str], timeout: float,
        cwd: Union[str, Path, None] = None) -> "subprocess.CompletedProcess[str]":
    """``subprocess.run([sys.executable, *argv], capture_output=True, text=True, ...)``, forked
    by the zygote where it can be."""
    proc = popen(argv, env, cwd, subprocess.PIPE, subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, (out or b"").decode(errors="replace"),
                                       (err or b"").decode(errors="replace"))
