"""A training script run as a child process (the end-to-end tests kill and rerun them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spawn(script: Path, work: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python script work`` in ``work``, ckptcompat importable, output captured."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
                    PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env)
    return subprocess.Popen([sys.executable, str(script), str(work)], cwd=work, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
