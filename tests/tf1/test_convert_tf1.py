"""ckptcompat.tf1.convert: TF1 Saver checkpoints <-> live Keras 2 / Keras 3 models."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import _tf1_graph as G
from ckptcompat.tf1.convert import keras_to_tf1, match_names, tf1_iterations, tf1_to_keras
from ckptcompat.errors import CkptCompatError, IncompatibleStateError

# float32 tolerance: the same Adam formula, but TF1 accumulates beta1_power/beta2_power by
# multiplication and runs one fused ApplyAdam kernel, Keras computes beta**t and separate ops.
RTOL, ATOL = 2e-5, 1e-6


def test_match_names_pure() -> None:
    src = {"net/layer_fc1/kernel": (4, 2), "b": (2,), "c": (3,)}
    tgt = {"layer_fc1/kernel": (4, 2), "b": (3,), "d/x": (1,)}
    pairs, problems = match_names(src, tgt)
    assert pairs == {"b": "b", "net/layer_fc1/kernel": "layer_fc1/kernel"}
    assert len(problems) == 3  # b shape, c unmatched, d/x without value
    pairs, problems = match_names({"c": (1,)}, {"d/x": (1,)}, {"c": "d/x"})
    assert pairs == {"c": "d/x"} and problems == []


def test_iterations_from_beta_power() -> None:
    assert tf1_iterations(None, 0.9 ** 8) == 7
    assert tf1_iterations(7, float(np.float32(0.9) ** 8)) == 7
    assert tf1_iterations(100, 0.9 ** 8) == 7  # global_step counted elsewhere: the power wins
    assert tf1_iterations(5, None) == 5


def _tf1_trained(tmp_path: Path, steps: int = 5):
    net = G.build(lr=1e-2)
    x, y = G.data()
    for i in range(steps):
        bx, by = G.batch(i, x, y)
        net.sess.run(net.train, {net.x: bx, net.y: by})
    with net.graph.as_default():
        prefix = net.saver.save(net.sess, str(tmp_path / "tf1" / "model.ckpt"))
    return net, prefix, x, y


@pytest.mark.framework
def test_tf1_to_keras_predictions_and_next_step(tmp_path: Path, keras) -> None:
    net, prefix, x, y = _tf1_trained(tmp_path)
    model = G.keras_twin(keras)
    report = tf1_to_keras(tmp_path / "tf1", model, learning_rate=1e-2)
    assert len(report.restored_weights) == 6 and len(report.restored_slots) == 12
    assert report.iterations == 5 and report.skipped == ()
    src = G.values(net)
    probe = x[:32]
    want = net.sess.run(net.logits, {net.x: probe})
    got = G.predict(model, probe)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # one more step on each side, same batch
    bx, by = G.batch(5, x, y)
    net.sess.run(net.train, {net.x: bx, net.y: by})
    model.train_on_batch(bx, by)
    after = G.values(net)
    from ckptcompat import runtime
    state = runtime.flavour().capture(model)
    assert state.optimizer.iterations == 6 == int(after["global_step"])
    for name, value in state.weights.items():
        delta_tf1 = after[name] - src[name]
        delta_keras = value - src[name]
        assert np.abs(delta_tf1).max() > 0
        np.testing.assert_allclose(delta_keras, delta_tf1, rtol=1e-3, atol=ATOL * 1e-2, err_msg=name)
        np.testing.assert_allclose(state.optimizer.slots[name]["m"], after[f"{name}/Adam"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(state.optimizer.slots[name]["v"], after[f"{name}/Adam_1"], rtol=RTOL, atol=ATOL)


@pytest.mark.framework
def test_tf1_to_keras_next_step_from_the_same_gradients(tmp_path: Path, keras) -> None:
    """The TF1 graph's own gradients applied by the converted Keras optimizer: m and v come
    out bit for bit equal to TF1's fused ApplyAdam step; the weights differ only through the
    bias-correction factor (Keras computes beta**t, TF1 multiplies beta_power up each step:
    the powers can differ in the last bit), so at most a few float32 ulps."""
    net, prefix, x, y = _tf1_trained(tmp_path)
    src = G.values(net)
    model = G.keras_twin(keras)
    tf1_to_keras(tmp_path / "tf1", model, learning_rate=1e-2)
    opt = model.optimizer
    assert tuple(G.scalar(keras, v) for v in (opt.beta_1, opt.beta_2, opt.epsilon)) == tuple(
        float(np.float32(v)) for v in (0.9, 0.999, 1e-8))
    with net.graph.as_default():
        tvars = net.tf1.trainable_variables()
        grads_op = net.tf1.gradients(net.loss, tvars)
        # the gradient input (index 9) of each ApplyAdam kernel, fed below: TF1's step then
        # uses exactly the gradients given to Keras (recomputing them need not be bitwise)
        applies = {op.inputs[0].op.name: op.inputs[9] for op in net.graph.get_operations()
                   if op.type in ("ApplyAdam", "ResourceApplyAdam")}
    assert sorted(applies) == sorted(v.op.name for v in tvars)
    bx, by = G.batch(5, x, y)
    grads = net.sess.run(grads_op, {net.x: bx, net.y: by})
    feed = {net.x: bx, net.y: by, **{applies[v.op.name]: g for g, v in zip(grads, tvars)}}
    net.sess.run(net.train, feed)  # TF1's own step on the same batch and gradients
    after = G.values(net)
    from ckptcompat import runtime
    from ckptcompat.runtime import keras2, keras3
    rt = runtime.flavour()
    live = (keras3 if runtime.detect() == "keras3" else keras2)._OPS.variables(model)
    G.run_op(keras, opt.apply_gradients([(g, live[v.op.name]) for g, v in zip(grads, tvars)]))
    state = rt.capture(model)
    assert state.optimizer.iterations == 6 == int(after["global_step"])
    for v in tvars:
        name = v.op.name
        assert G.sha(state.optimizer.slots[name]["m"]) == G.sha(after[f"{name}/Adam"]), name
        assert G.sha(state.optimizer.slots[name]["v"]) == G.sha(after[f"{name}/Adam_1"]), name
        # alpha (the only different factor) differs by ~5e-6 relative; plus w's own rounding
        delta = np.abs(after[name] - src[name])
        bound = 1e-5 * delta + 2 * np.spacing(np.abs(after[name]))
        assert np.all(np.abs(state.weights[name] - after[name]) <= bound), name
        assert not np.array_equal(after[name], src[name])


@pytest.mark.framework
def test_tf1_to_keras_mismatch_is_one_error(tmp_path: Path, keras) -> None:
    _tf1_trained(tmp_path, steps=1)
    model = G.keras_twin(keras, fc1=8)
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(IncompatibleStateError) as info:
        tf1_to_keras(tmp_path / "tf1", model)
    assert len(info.value.mismatches) == 3  # fc1 kernel, fc1 bias, fc2 kernel
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.framework
def test_keras_to_tf1_restores_with_saver(tmp_path: Path, keras) -> None:
    model = G.keras_twin(keras)
    x, y = G.data()
    for i in range(4):
        model.train_on_batch(*G.batch(i, x, y))
    prefix = keras_to_tf1(model, tmp_path / "k" / "model.ckpt")
    net = G.build(lr=1e-2, seed=3)
    with net.graph.as_default():
        net.saver.restore(net.sess, str(prefix))
    from ckptcompat import runtime
    state = runtime.flavour().capture(model)
    got = G.values(net)
    assert int(got["global_step"]) == 4
    for name, value in state.weights.items():
        assert np.array_equal(got[name], value), name
        assert np.array_equal(got[f"{name}/Adam"], state.optimizer.slots[name]["m"])
        assert np.array_equal(got[f"{name}/Adam_1"], state.optimizer.slots[name]["v"])
    np.testing.assert_allclose(got["beta1_power"], 0.9 ** 5, rtol=1e-6)
    probe = x[:16]
    np.testing.assert_allclose(net.sess.run(net.logits, {net.x: probe}),
                               G.predict(model, probe), rtol=1e-5, atol=1e-6)


def _dense_layers(state) -> dict[str, tuple[str, str | None]]:
    """scope -> (kernel key, bias key) for 2-D float32 kernels named like tf.layers.dense."""
    out = {}
    for key, value in state.weights.items():
        scope, _, short = key.rpartition("/")
        if short in ("kernel", "weights") and value.ndim == 2 and value.dtype == np.float32 and scope:
            bias = next((f"{scope}/{b}" for b in ("bias", "biases") if f"{scope}/{b}" in state.weights
                         and state.weights[f"{scope}/{b}"].shape == (value.shape[1],)), None)
            out[scope] = (key, bias)
    return out


@pytest.mark.framework
def test_real_tf1_checkpoints_inspect_and_convert(real_checkpoints: Path, keras) -> None:
    import ckptcompat
    from ckptcompat.formats import tf_bundle
    rows = [r for r in csv.DictReader(open(real_checkpoints / "MANIFEST.tsv"), delimiter="\t") if r["kind"] == "A"]
    targets = sorted({(real_checkpoints / r["repo"].replace("/", "__") / r["path"]).with_suffix("")
                      if r["path"].endswith(".index") else None for r in rows} - {None})
    inspected = converted = 0
    for prefix in targets:
        try:
            ckptcompat.inspect(Path(f"{prefix}.index"))
            state = tf_bundle.read(prefix)
        except CkptCompatError:
            continue
        inspected += 1
        dense = _dense_layers(state)
        if not dense:
            continue
        inputs, outputs, name_map = [], [], {}
        for i, (scope, (kernel, bias)) in enumerate(sorted(dense.items())):
            n_in, n_out = state.weights[kernel].shape
            lname = f"d{i}"
            inp = keras.Input((n_in,))
            outputs.append(keras.layers.Dense(n_out, use_bias=bias is not None, name=lname)(inp))
            inputs.append(inp)
            name_map[kernel] = f"{lname}/kernel"
            if bias:
                name_map[bias] = f"{lname}/bias"
        model = keras.Model(inputs, outputs)
        report = tf1_to_keras(prefix, model, name_map=name_map, partial=True)
        assert sorted(report.restored_weights) == sorted(name_map.values()), prefix
        for src, dst in name_map.items():
            layer = model.get_layer(dst.split("/")[0])
            idx = 0 if dst.endswith("kernel") else 1
            assert np.array_equal(np.asarray(layer.get_weights()[idx]), state.weights[src]), (prefix, src)
        converted += 1
    assert inspected >= 10 and converted >= 3, (inspected, converted)
