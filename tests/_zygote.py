"""A pre-imported Python that forks the end-to-end tests' child processes.

A child of the SIGKILL, multi-worker and example suites spends most of its life importing
TensorFlow and Keras (5-20 s on two busy cores). The zygote imports them once per test process
and forks each child from there; the child then runs its script as ``python script args`` would
(argv, environment, working directory, ``sys.path``, stdin from /dev/null, output to files), with a
real pid that tests signal, and its exit status (-9 when SIGKILLed) comes back to the test. The
hash seed is the zygote's: a child that asks for one gets the zygote started with it; children that
do not alternate between two zygotes of random seeds, so consecutive runs hash differently, as
fresh interpreters would.

It is used only where a fork is as good as a fresh interpreter: Linux, a plain
``python script.py ...`` command, environment variables read at interpreter start or import
(``PYTHON*``, ``KERAS_*``, ``TF_USE_LEGACY_KERAS``, thread and device settings; :func:`startup_env`)
equal to the zygote's, Keras on TensorFlow, and importing the frameworks started no thread (numpy's
BLAS pool aside, which handles fork itself). Anything else, or a zygote that failed to start, runs as a plain subprocess.
``CKPT_TESTS_NO_ZYGOTE=1`` turns it off. Only heavy third-party modules are imported in the
zygote (never ckptcompat or the tests), so a child imports those from its own ``PYTHONPATH``.

    python tests/_zygote.py SOCKET     # the server (started by _zygote_client.Zygote)
"""

from __future__ import annotations

import builtins
import io
import json
import os
import selectors
import socket
import sys
import tempfile
import time
import types
from typing import Any, Dict, List, Optional, Tuple

#: environment variables read when Python starts or a framework is imported: a child whose values
#: differ from the zygote's runs as a plain subprocess (PYTHONPATH is applied to sys.path instead)
STARTUP_PREFIXES = ("PYTHON", "KERAS_", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN", "TF_XLA", "XLA_", "JAX_",
                    "CUDA_", "OMP_", "OPENBLAS_", "MKL_", "LD_", "TF_NUM_")
#: set per zygote: the client picks the zygote whose seed a child asks for (tests/_zygote_client.py)
_PER_ZYGOTE = ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED")


def startup_env(env: Dict[str, str]) -> Dict[str, str]:
    """The part of ``env`` that a fork cannot change (the path, hash seed and buffering are
    applied per child or per zygote)."""
    return {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES) and k not in _PER_ZYGOTE}


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _import_frameworks() -> List[str]:
    """Import what the children would (numpy, h5py, TensorFlow, the Keras the environment picks);
    the names imported. Raises RuntimeError when an import started a thread (forking is unsafe)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":  # a child on JAX/torch must not find TensorFlow imported
        raise RuntimeError(f"Keras runs on {backend} here")
    __import__("numpy")  # its BLAS pool may start threads; it handles fork itself
    before, names = _threads(), ["numpy"]
    for name in ("h5py", "tensorflow"):
        try:
            __import__(name)
            names.append(name)
        except ImportError:
            pass
    if "tensorflow" not in names:
        raise RuntimeError("no TensorFlow here: nothing worth pre-importing")
    keras = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else "keras"
    try:
        __import__(keras)
        names.append(keras)
    except ImportError:
        pass
    for _ in range(10):  # a thread that ends soon (a loader's) is no danger
        if _threads() <= before:
            return names
        time.sleep(0.1)
    raise RuntimeError(f"importing {names} started {_threads() - before} thread(s): forking is unsafe")


def _serve(path: str) -> Dict[str, Any]:
    """Accept requests on the Unix socket ``path`` and fork a child for each; in a child, return
    its request (the server's frames are gone from the stack while the script runs). Ends the
    process when the parent test process is gone."""
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: Dict[int, socket.socket] = {}
    print("ready", flush=True)
    while os.getppid() == parent:
        for _key, _ in selector.select(timeout=0.02):
            conn, _ = listener.accept()
            try:
                request = dict(json.loads(conn.makefile("rb").readline()))
            except (OSError, ValueError, TypeError):
                conn.close()  # a client gone or confused: the others go on
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError:
                conn.close()  # the client runs a plain subprocess instead
                continue
            if pid == 0:
                for fd in (listener, conn, *children.values()):
                    fd.close()
                selector.close()
                return request
            children[pid] = conn
            _send(conn, {"pid": pid})
        _reap(children)
    sys.exit(0)


def _send(conn: socket.socket, message: Dict[str, int]) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client is gone


def _reap(children: Dict[int, socket.socket]) -> None:
    """Report every ended child's exit status (negative: the signal that ended it) to its client."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        conn = children.pop(pid, None)
        if conn is not None:
            _send(conn, {"status": code})
            conn.close()


def python_path(raw: Optional[str]) -> List[str]:
    """``$PYTHONPATH``'s entries as Python puts them on sys.path: absolute, an empty one (a
    trailing one too) the working directory."""
    if not raw:
        return []
    return [os.path.abspath(p or os.curdir) for p in raw.split(os.pathsep)]


def _redirect(request: Dict[str, Any]) -> None:
    """stdin from /dev/null, stdout and stderr to the requested files (unbuffered streams where
    the child's environment says PYTHONUNBUFFERED, as Python would make them)."""
    null = os.open(os.devnull, os.O_RDONLY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    out = os.open(request["stdout"] or os.devnull, flags, 0o644)
    err = out if request["stderr"] == "stdout" else os.open(request["stderr"] or os.devnull, flags, 0o644)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
    for fd in {null, out, err}:
        os.close(fd)
    if request["env"].get("PYTHONUNBUFFERED"):
        for name, fd in (("stdout", 1), ("stderr", 2)):
            old = getattr(sys, name)
            stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=old.encoding,
                                      errors=old.errors, line_buffering=False, write_through=True)
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def _become(request: Dict[str, Any], zygote_path: List[str]) -> Tuple[str, str]:
    """Turn this forked process into ``python script args`` as requested: (the script as given,
    its absolute path). State an import cached in the zygote is reset as a fresh process has it
    (numpy's global random state from fresh entropy, tempfile's folder from the new environment)."""
    _redirect(request)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    given = request["argv"][0]
    script = os.path.abspath(given)
    sys.argv = [given, *request["argv"][1:]]
    paths = [os.path.dirname(os.path.realpath(script)), *python_path(os.environ.get("PYTHONPATH")), *zygote_path]
    sys.path[:] = list(dict.fromkeys(paths))
    tempfile.tempdir = None
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    return given, script


def _run_main(given: str, script: str) -> None:
    """Run the script as ``__main__``, the module kept in sys.modules as Python keeps it (atexit
    handlers and threads see its globals until the interpreter ends)."""
    module = types.ModuleType("__main__")
    module.__dict__.update({"__file__": script if sys.version_info >= (3, 9) else given,
                            "__builtins__": builtins, "__spec__": None, "__cached__": None})
    sys.modules["__main__"] = module
    with open(script, "rb") as handle:
        code = compile(handle.read(), script if sys.version_info >= (3, 9) else given, "exec")
    exec(code, module.__dict__)  # noqa: S102 -- the test's own script, as python would run it


def main(argv: List[str]) -> None:
    inherited = python_path(os.environ.get("PYTHONPATH"))
    try:
        _import_frameworks()
    except Exception as exc:  # noqa: BLE001 -- told to the client, which then runs plain subprocesses
        print(f"unusable: {exc}", flush=True)
        sys.exit(3)
    zygote_path = [p for p in sys.path[1:] if p not in inherited]
    request = _serve(argv[0])
    _run_main(*_become(request, zygote_path))


if __name__ == "__main__":
    main(sys.argv[1:])
