"""Training scripts run as child processes (the end-to-end tests kill and rerun them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def spawn(script: Path, work: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python script work`` in ``work``, ckptcompat importable, output captured."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
                    PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env)
    return subprocess.Popen([sys.executable, str(script), str(work)], cwd=work, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


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
    proc = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    if killed:
        assert proc.returncode == -9, proc.stderr[-3000:]
        return {}
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result
