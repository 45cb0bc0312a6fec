"""Training scripts run as child processes (the end-to-end tests kill and rerun them).

Children are forked from a pre-imported Python where that is as good as a fresh interpreter
(``tests/_zygote.py``), else plain subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import _zygote_client

ROOT = Path(__file__).resolve().parent.parent


def spawn(script: Path, work: Path, **env: str) -> Any:
    """``python script work`` in ``work``, ckptcompat importable, output captured (a
    ``subprocess.Popen``-like object)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
                    PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env)
    return _zygote_client.popen([script, work], full_env, cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)


def run_json_child(tmp: Path, source: str, *args: str, killed: bool = False) -> dict[str, Any]:
    """Run ``source`` as ``tmp/child.py`` with ``args`` ("{out}" becomes a fresh JSON path the
    child writes) and return that JSON; ``killed``: the child must die by SIGKILL (returns {}).
    ckptcompat and ``tests/`` (``$CKPT_TESTS_ROOT``) are importable in the child."""
    script = tmp / "child.py"
    script.write_text(source)
    out = tmp / f"out-{len(list(tmp.glob('out-*')))}.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CKPT_TESTS_ROOT=str(ROOT / "tests"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = tuple(str(out) if a == "{out}" else a for a in args)
    proc = _zygote_client.run([script, *args], env, timeout=600)
    if killed:
        assert proc.returncode == -9, proc.stderr[-3000:]
        return {}
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result
