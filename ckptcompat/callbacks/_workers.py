"""Which worker of a multi-worker run this process is, and where it writes.

The same script runs on every worker. Every worker captures every save (reading a
sync-on-read variable is a collective under ``MultiWorkerMirroredStrategy``, so all must take
part in the same reads at the same boundary), but only the chief commits into the store; the
others commit into a private scratch folder that is removed when ``fit`` ends. Every worker
restores from the chief's store.

Nothing here imports TensorFlow or JAX: a framework counts only when the process already
imported it (the model was built with it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerRole:
    """This process in its training cluster: ``chief`` commits checkpoints."""

    chief: bool = True
    index: int = 0
    count: int = 1
    kind: str = "single"  # "single" | "tf.distribute" | "jax"

    @property
    def distributed(self) -> bool:
        return self.count > 1


SINGLE = WorkerRole()


def role_of(model: Any) -> WorkerRole:
    """The role of this process for ``model`` (a single process unless a multi-worker
    ``tf.distribute`` strategy or a multi-process JAX run is in use)."""
    role = _tf_role(model)
    if role is None:
        role = _jax_role()
    return role or SINGLE


def _tf_role(model: Any) -> WorkerRole | None:
    if "tensorflow" not in sys.modules:
        return None
    strategy = getattr(model, "distribute_strategy", None)
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if strategy is None or resolver is None or task_type is None:
        return None
    try:
        cluster = resolver.cluster_spec().as_dict()
    except Exception:  # a resolver without a cluster: one worker
        return None
    count = sum(len(tasks) for name, tasks in cluster.items() if name in ("chief", "worker"))
    index = int(getattr(resolver, "task_id", 0) or 0)
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    should = getattr(getattr(strategy, "extended", None), "should_checkpoint", None)
    if isinstance(should, bool):
        chief = should
    return WorkerRole(chief=chief, index=index, count=max(count, 1), kind="tf.distribute")


def _jax_role() -> WorkerRole | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        count, index = int(jax.process_count()), int(jax.process_index())
    except Exception:  # jax imported but not initialised for processes
        return None
    return WorkerRole(chief=index == 0, index=index, count=count, kind="jax") if count > 1 else None


def scratch_directory(role: WorkerRole, store: str | os.PathLike[str]) -> str:
    """A private folder for a non-chief worker's commits (removed by :func:`remove_scratch`):
    one fixed path per store and worker, so that a rerun first removes what a killed run left."""
    key = hashlib.sha256(os.fspath(store).encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"ckptcompat-scratch-{key}-worker{role.index}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    log.info("worker %d of %d is not the chief: its checkpoints go to the scratch folder %s",
             role.index, role.count, folder)
    return folder


def remove_scratch(folder: str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
