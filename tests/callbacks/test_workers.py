"""Which worker commits, where the others write, and the step a signal stops every worker at
(no framework needed: the strategy is a stand-in; the real ones run in
tests/matrix/test_multiworker.py)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ckptcompat.callbacks._stop_agreement import LEAD, MARKER_NAME, StopAgreement
from ckptcompat.callbacks._workers import SINGLE, WorkerRole, remove_scratch, role_of, scratch_directory


def _model(task_type: str | None, task_id: int, cluster: dict[str, list[str]],
           should_checkpoint: Any = None) -> Any:
    spec = types.SimpleNamespace(as_dict=lambda: cluster)
    resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: spec)
    extended = types.SimpleNamespace(should_checkpoint=should_checkpoint)
    return types.SimpleNamespace(distribute_strategy=types.SimpleNamespace(
        cluster_resolver=resolver, extended=extended))


@pytest.fixture
def tf_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Roles are read only once TensorFlow is imported (a model built with it)."""
    if "tensorflow" not in sys.modules:
        monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))


def test_worker_zero_is_the_chief_unless_a_chief_task_exists(tf_imported: None) -> None:
    two = {"worker": ["a:1", "b:2"]}
    assert role_of(_model("worker", 0, two)) == WorkerRole(True, 0, 2, "tf.distribute")
    assert role_of(_model("worker", 1, two)) == WorkerRole(False, 1, 2, "tf.distribute")
    with_chief = {"chief": ["c:0"], "worker": ["a:1", "b:2"]}
    assert not role_of(_model("worker", 0, with_chief)).chief
    assert role_of(_model("chief", 0, with_chief)) == WorkerRole(True, 0, 3, "tf.distribute")
    # the strategy's own verdict wins
    assert not role_of(_model("worker", 0, two, should_checkpoint=False)).chief


def test_a_process_without_a_cluster_is_a_single_chief(tf_imported: None) -> None:
    assert role_of(object()) is SINGLE
    assert role_of(_model(None, 0, {})) is SINGLE
    assert SINGLE.chief and not SINGLE.distributed


def test_scratch_is_one_fixed_folder_per_store_and_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    role = WorkerRole(False, 1, 2, "tf.distribute")
    first = scratch_directory(role, tmp_path / "store")
    (Path(first) / "left-by-a-killed-run").write_text("x")
    again = scratch_directory(role, tmp_path / "store")
    assert again == first and not list(Path(again).iterdir())  # what a killed run left is gone
    assert scratch_directory(role, tmp_path / "other") != first
    assert Path(first).parent == tmp_path
    remove_scratch(first)
    assert not Path(first).exists()


def test_the_chief_names_a_step_ahead_and_every_worker_stops_there(tmp_path: Path) -> None:
    chief = StopAgreement(WorkerRole(True, 0, 2, "tf.distribute"), tmp_path, start_step=6)
    other = StopAgreement(WorkerRole(False, 1, 2, "tf.distribute"), tmp_path, start_step=6)
    assert other.stop_signal(None, 9) is None
    assert chief.stop_signal(signal.SIGTERM, 10) is None  # decided, not yet
    marker = json.loads((tmp_path / MARKER_NAME).read_text())
    assert marker == {"step": 10 + LEAD, "signal": signal.SIGTERM, "started_at": 6}
    assert other.stop_signal(None, 11) is None
    assert chief.stop_signal(None, 11) is None
    assert other.stop_signal(None, 12) == chief.stop_signal(None, 12) == signal.SIGTERM
    other.close()
    assert (tmp_path / MARKER_NAME).exists()  # only the chief removes it
    chief.close()
    assert not (tmp_path / MARKER_NAME).exists()


def test_a_signal_to_a_non_chief_alone_is_noted_and_stops_nothing(tmp_path: Path, caplog: Any) -> None:
    other = StopAgreement(WorkerRole(False, 1, 2, "tf.distribute"), tmp_path, start_step=0)
    with caplog.at_level(logging.WARNING, logger="ckptcompat"):
        assert other.stop_signal(signal.SIGTERM, 5) is None
    assert "the chief decides" in caplog.text


def test_a_marker_of_an_earlier_run_is_never_obeyed(tmp_path: Path) -> None:
    (tmp_path / MARKER_NAME).write_text(json.dumps({"step": 12, "signal": 15, "started_at": 0}))
    other = StopAgreement(WorkerRole(False, 1, 2, "tf.distribute"), tmp_path, start_step=12)
    assert other.stop_signal(None, 13) is None
    (tmp_path / MARKER_NAME).write_text("{not json")
    assert StopAgreement(WorkerRole(False, 1, 2, "tf.distribute"), tmp_path, 0).stop_signal(None, 3) is None
    StopAgreement(WorkerRole(True, 0, 2, "tf.distribute"), tmp_path, start_step=12)
    assert not (tmp_path / MARKER_NAME).exists()  # the chief's new run removes it at once


def test_single_process_signals_pass_through_and_urls_have_no_marker(tmp_path: Path) -> None:
    assert StopAgreement(SINGLE, tmp_path, 0).stop_signal(signal.SIGINT, 1) == signal.SIGINT
    remote = StopAgreement(WorkerRole(True, 0, 2, "tf.distribute"), "memory://bucket/run", 0)
    assert remote.stop_signal(signal.SIGTERM, 3) is None
    assert not list(tmp_path.iterdir())
