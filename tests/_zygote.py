"""A pre-imported Python that forks the end-to-end tests' child processes.

A child of the SIGKILL, multi-worker and example suites spends most of its life importing
TensorFlow and Keras (5-20 s on two busy cores). The zygote imports them once per test process
and forks each child from there; the child then runs its script as ``python script args`` would
(argv, environment, working directory, ``sys.path``, stdin from /dev/null, output to files), with a
real pid that tests signal, and its exit status (-9 when SIGKILLed) comes back to the test.

It is used only where a fork is as good as a fresh interpreter (:func:`usable`): Linux, a plain
``python script.py ...`` command, environment variables read at interpreter start or import
(``PYTHON*``, ``KERAS_*``, ``TF_USE_LEGACY_KERAS``, thread and device settings) equal to the
zygote's, and importing the frameworks started no thread (numpy's BLAS pool aside, which handles
fork itself). Anything else, or a zygote that failed to start, runs as a plain subprocess.
``CKPT_TESTS_NO_ZYGOTE=1`` turns it off. Only heavy third-party modules are imported in the
zygote (never ckptcompat or the tests), so a child imports those from its own ``PYTHONPATH``.

    python -m tests._zygote SOCKET     # the server (started by :class:`Zygote`)
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import socket
import sys
import time
from typing import Any, Dict, List

#: environment variables read when Python starts or a framework is imported: a child whose values
#: differ from the zygote's runs as a plain subprocess (PYTHONPATH is applied to sys.path instead)
STARTUP_PREFIXES = ("PYTHON", "KERAS_", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN", "TF_XLA", "XLA_", "JAX_",
                    "CUDA_", "OMP_", "OPENBLAS_", "MKL_", "LD_", "TF_NUM_")
#: the hash seed the zygote starts with: a child that sets none accepts it, as it would a random one
HASH_SEED = "0"


def startup_env(env: Dict[str, str]) -> Dict[str, str]:
    """The part of ``env`` that a fork cannot change (PYTHONPATH aside; an unset hash seed is any)."""
    out = {k: v for k, v in env.items() if k.startswith(STARTUP_PREFIXES) and k != "PYTHONPATH"}
    out.setdefault("PYTHONHASHSEED", HASH_SEED)
    return out


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _import_frameworks() -> List[str]:
    """Import what the children would (numpy, h5py, TensorFlow, the Keras the environment picks);
    the names imported. Raises RuntimeError when an import started a thread (forking is unsafe)."""
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
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
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
            request = json.loads(conn.makefile("rb").readline())
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                for fd in (listener, conn, *children.values()):
                    fd.close()
                selector.close()
                return dict(request)
            children[pid] = conn
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _reap(children)
    sys.exit(0)


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
            try:
                conn.sendall(json.dumps({"status": code}).encode() + b"\n")
            except OSError:
                pass
            conn.close()


def _become(request: Dict[str, Any], zygote_path: List[str]) -> str:
    """Turn this forked process into ``python script args`` as requested; the script's path."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = os.path.abspath(request["argv"][0])
    sys.argv = [request["argv"][0], *request["argv"][1:]]
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(script), *own, *zygote_path]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(request["stdout"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = out if request["stderr"] == "stdout" else \
        os.open(request["stderr"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)  # type: ignore[attr-defined]
        sys.stderr.reconfigure(write_through=True)  # type: ignore[attr-defined]
    return script


def main(argv: List[str]) -> None:
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    try:
        _import_frameworks()
    except Exception as exc:  # noqa: BLE001 -- told to the client, which then runs plain subprocesses
        print(f"unusable: {exc}", flush=True)
        sys.exit(3)
    zygote_path = [p for p in sys.path[1:] if p not in inherited]
    request = _serve(argv[0])
    script = _become(request, zygote_path)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
