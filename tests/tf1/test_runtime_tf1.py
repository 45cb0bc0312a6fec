"""ckptcompat.runtime.tf1 and ckptcompat.tf1.early_stopping on live tf.compat.v1 sessions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import _tf1_graph as G
from ckptcompat.errors import IncompatibleStateError, InvalidArgumentError, MissingDependencyError

pytestmark = pytest.mark.framework


def _trained(steps: int = 3, **kw):
    net = G.build(**kw)
    x, y = G.data()
    for i in range(steps):
        bx, by = G.batch(i, x, y)
        net.sess.run(net.train, {net.x: bx, net.y: by})
    return net


def _equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_save_restore_roundtrip(tmp_path: Path) -> None:
    from ckptcompat.runtime.tf1 import restore_session, save_session
    net = _trained()
    entry = save_session(tmp_path / "store", net.sess, global_step=3, loop_state={"epoch_like": 7})
    assert {"model.ckpt.index", "state.json", "checkpoint"} <= set(entry.files)
    other = G.build(seed=9)
    result = restore_session(tmp_path / "store", other.sess)
    assert result.global_step == 3 and result.loop_state == {"epoch_like": 7}
    assert len(result.restored) == 21 and result.unused == () and result.skipped == ()
    _equal(G.values(net), G.values(other))
    n_ops = len(other.graph.get_operations())
    restore_session(entry.path, other.sess)  # the checkpoint folder itself works too
    assert len(other.graph.get_operations()) == n_ops  # nothing added to the graph


def test_our_bundle_restores_with_native_saver(tmp_path: Path) -> None:
    from ckptcompat.runtime.tf1 import save_session
    net = _trained()
    entry = save_session(tmp_path, net.sess, global_step=3)
    other = G.build(seed=4)
    with other.graph.as_default():
        other.saver.restore(other.sess, str(entry.path / "model.ckpt"))
    _equal(G.values(net), G.values(other))


def test_foreign_saver_checkpoint_moved_folder(tmp_path: Path) -> None:
    from ckptcompat.runtime.tf1 import restore_session
    net = _trained(steps=2)
    with net.graph.as_default():
        net.saver.save(net.sess, str(tmp_path / "a" / "model.ckpt"), global_step=net.global_step)
    assert str(tmp_path / "a") in (tmp_path / "a" / "checkpoint").read_text()  # absolute path
    shutil.move(tmp_path / "a", tmp_path / "b")
    other = G.build(seed=3)
    result = restore_session(tmp_path / "b", other.sess)
    assert result.global_step == 2 and result.loop_state == {}
    _equal(G.values(net), G.values(other))


def test_every_mismatch_listed_nothing_assigned(tmp_path: Path) -> None:
    from ckptcompat.runtime.tf1 import restore_session, save_session
    net = _trained(steps=1)
    save_session(tmp_path, net.sess, global_step=1)
    other = G.build(fc1=8, seed=2)
    before = G.values(other)
    with pytest.raises(IncompatibleStateError) as info:
        restore_session(tmp_path, other.sess)
    bad = info.value.mismatches
    # fc1 kernel + bias and fc2 kernel, each with its two Adam slots: 9 problems in one error
    assert len(bad) == 9 and all("shape differs" in m for m in bad)
    assert any(m.startswith("layer_fc1/kernel/Adam_1:") for m in bad)
    _equal(before, G.values(other))
    result = restore_session(tmp_path, other.sess, partial=True)
    assert len(result.skipped) == 9 and len(result.restored) == 12
    got, src = G.values(other), G.values(net)
    for name in result.restored:
        assert np.array_equal(got[name], src[name]), name
    assert np.array_equal(got["layer_fc1/kernel"], before["layer_fc1/kernel"])


def test_name_map_and_missing(tmp_path: Path) -> None:
    from ckptcompat.runtime.tf1 import restore_session, save_session
    net = _trained(steps=1)
    save_session(tmp_path, net.sess, global_step=1)
    other = G.build(seed=1)
    variables = {f"renamed/{k}" if k == "layer_fc2/bias" else k: v
                 for k, v in __import__("ckptcompat.runtime.tf1", fromlist=["x"]).session_variables(other.sess).items()}
    with pytest.raises(IncompatibleStateError, match="renamed/layer_fc2/bias: missing"):
        restore_session(tmp_path, other.sess, var_list=variables)
    restore_session(tmp_path, other.sess, var_list=variables,
                    name_map={"renamed/layer_fc2/bias": "layer_fc2/bias"})
    _equal(G.values(net), G.values(other))


@pytest.mark.keras2
def test_tf_layers_graph_has_the_same_names() -> None:
    a, b = G.build(use_layers=True), G.build()
    assert sorted(G.values(a)) == sorted(G.values(b))
    assert {k: v.shape for k, v in G.values(a).items()} == {k: v.shape for k, v in G.values(b).items()}


@pytest.mark.keras3
def test_tf_layers_on_keras3_is_a_typed_error() -> None:
    from ckptcompat.runtime.tf1 import require_tf1_layers
    with pytest.raises(MissingDependencyError, match="TF_USE_LEGACY_KERAS=1") as info:
        require_tf1_layers()
    assert isinstance(info.value, ImportError) and "tf-keras" in (info.value.hint or "")


# ------------------------------------------------------------------ IterationEarlyStopping
def test_early_stopping_counters_and_persistence(tmp_path: Path) -> None:
    from ckptcompat.tf1.early_stopping import IterationEarlyStopping
    net = _trained(steps=1)
    es = IterationEarlyStopping(evaluate_every=5, patience=10, mode="max", min_delta=0.01,
                                store=tmp_path / "es")
    assert es.should_evaluate(0) and es.should_evaluate(10) and not es.should_evaluate(7)
    assert es.update(0, 0.5, net.sess) is True
    assert es.update(5, 0.505, net.sess) is False  # within min_delta
    assert es.update(10, 0.6, net.sess) is True
    assert not es.should_stop(19) and es.should_stop(20)
    assert es.update(15, float("nan"), net.sess) is False
    es.close()
    again = IterationEarlyStopping(evaluate_every=5, patience=10, mode="max", min_delta=0.01,
                                   store=tmp_path / "es")
    other = G.build(seed=8)
    assert again.resume(other.sess) == 15
    assert again.state_dict() == es.state_dict()
    assert (again.best, again.best_step, again.last_improvement_step) == (0.6, 10, 10)
    assert again.restore_best(other.sess) == 10
    again.close()
    with pytest.raises(IncompatibleStateError):
        IterationEarlyStopping(mode="min", store=tmp_path / "es").load_state_dict(es.state_dict())
    with pytest.raises(InvalidArgumentError):
        IterationEarlyStopping(mode="auto")


def test_early_stopping_min_mode_and_empty_store(tmp_path: Path) -> None:
    from ckptcompat.tf1.early_stopping import IterationEarlyStopping
    net = _trained(steps=1)
    with IterationEarlyStopping(evaluate_every=1, patience=2, mode="min", store=tmp_path / "m") as es:
        assert es.resume(net.sess) == 0
        assert [es.update(s, v, net.sess) for s, v in enumerate([3.0, 2.0, 2.0, 1.0])] == [True, True, False, True]
        assert es.best == 1.0 and es.best_step == 3 and not es.should_stop(4) and es.should_stop(5)


def test_resume_with_session_is_the_same_api(tmp_path: Path) -> None:
    import ckptcompat
    from ckptcompat.runtime.tf1 import save_session

    net = _trained()
    save_session(tmp_path / "store", net.sess, global_step=3, loop_state={"best_acc": 0.5})
    other = G.build(seed=9)
    result = ckptcompat.resume(tmp_path / "store", session=other.sess)
    assert result.global_step == 3 and result.loop_state == {"best_acc": 0.5}
    _equal(G.values(net), G.values(other))
    with pytest.raises(InvalidArgumentError):
        ckptcompat.resume(tmp_path / "store", model=object(), session=other.sess)
