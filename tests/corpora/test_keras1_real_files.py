"""Keras 1 ``.h5`` files nobody here wrote, read as Keras 2.0-2.3's own loading converted them.

tf.keras and Keras 3 no longer convert Keras 1 weights (``dense_1_W``, twelve LSTM gate tensors,
``running_std``, channels-first kernels); ckptcompat does (formats/keras_h5/_keras1_weights.py).
In tf115-py37, standalone Keras 2.3.1 (whose ``load_model`` still converts them) loads every real
Keras 1 full model of the shared corpus, and ckptcompat's reader, without any framework, must
give the same tensors under the same layer and weight names, bitwise. The conversion of the
optimizer slots is checked without a framework below; the resumes themselves run in every
framework environment (tests/corpora/test_real_checkpoints.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.formats import keras_h5
from ckptcompat.formats.keras_h5._keras1_weights import to_keras2
from ckptcompat.formats.keras_h5._optimizer import WeightInfo
from ckptcompat.state import OptimizerState


def _keras1_files(root: Path) -> list[Path]:
    """The full models (kind B) the corpus manifest says Keras 1.x wrote."""
    import csv
    import h5py

    found = []
    with open(root / "MANIFEST.tsv", newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            if row["kind"] != "B" or "keras_version=1." not in row["producer"]:
                continue
            path = root / row["repo"].replace("/", "__") / row["path"]
            with h5py.File(path, "r") as h5:
                if "model_config" in h5.attrs:
                    found.append(path)
    return sorted(found)


def _has_lambda(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as h5:
        config = h5.attrs["model_config"]
    return b'"Lambda"' in (config if isinstance(config, bytes) else str(config).encode())


def _native_weights(keras: Any, path: Path) -> dict[str, np.ndarray]:
    keras.backend.clear_session()  # one small graph per file (TF 1 graphs only grow)
    model = keras.models.load_model(str(path), compile=False)
    out = {}
    for layer in model.layers:
        for weight in layer.weights:
            parts = weight.name.split(":")[0].split("/")
            half = [p for p in parts if p.startswith(("forward_", "backward_"))][:1]
            out["/".join([layer.name, *half, parts[-1]])] = keras.backend.get_value(weight)
    return out


@pytest.mark.framework
def test_every_real_keras1_model_reads_as_keras_2_3_loads_it(real_checkpoints: Path) -> None:
    import tensorflow as tf

    if not tf.__version__.startswith("1.") or importlib.util.find_spec("keras") is None:
        pytest.skip("standalone Keras 2.3 (its Keras 1 conversion) runs on TF 1 here (tf115-py37)")
    import keras

    files = _keras1_files(real_checkpoints)
    compared = []
    for path in files:
        if _has_lambda(path):  # marshalled byte-code of another Python: Keras 2.3 here cannot load it either
            print(f"{path.relative_to(real_checkpoints)}: a Lambda layer, not compared")
            continue
        try:
            native = _native_weights(keras, path)
        except Exception as exc:  # noqa: BLE001 - Keras 2.3 cannot rebuild it (a Keras 1 Merge): not compared
            print(f"{path.relative_to(real_checkpoints)}: Keras {keras.__version__} cannot load it "
                  f"({type(exc).__name__}: {str(exc)[:80]})")
            continue
        mine = {name: np.asarray(value) for name, value in keras_h5.read(path, include_optimizer=False).weights.items()}
        assert sorted(mine) == sorted(native), path
        assert all(mine[n].dtype == native[n].dtype and np.array_equal(mine[n], native[n]) for n in native), path
        print(f"{path.relative_to(real_checkpoints)}: {len(native)} tensors as Keras {keras.__version__} loads them")
        compared.append(path)
    assert len(compared) >= 10, compared


def _infos(layer: str, names: list[str], shapes: list[tuple[int, ...]]) -> list[WeightInfo]:
    return [WeightInfo(f"{layer}/{n}", n, s, True) for n, s in zip(names, shapes)]


def test_keras1_lstm_slots_are_concatenated_as_its_weights() -> None:
    gates = [f"{kind}_{g}" for g in "icfo" for kind in "WUb"]  # Keras 1 file order: i, c, f, o
    shapes = {"W": (3, 2), "U": (2, 2), "b": (2,)}
    names = [f"lstm_1_{g}" for g in gates]
    infos = _infos("lstm_1", names, [shapes[g[0]] for g in gates])
    arrays = {w.canonical: np.full(w.shape, i, np.float32) for i, w in enumerate(infos)}
    slots = {w.canonical: {"m": arrays[w.canonical] + 100} for w in infos}
    config = {"class_name": "Sequential", "config": [{"class_name": "LSTM", "config": {"name": "lstm_1"}}]}
    opt = OptimizerState("RMSprop", {}, 3, slots, None, {})
    weights, opt = to_keras2([("lstm_1", infos)], arrays, opt, config, Path("x.h5"))
    assert sorted(weights) == ["lstm_1/bias", "lstm_1/kernel", "lstm_1/recurrent_kernel"]
    order = [gates.index(f"W_{g}") for g in "ifco"]  # Keras 2: i, f, c, o
    assert [int(v) for v in weights["lstm_1/kernel"][0, ::2]] == order
    assert np.array_equal(opt.slots["lstm_1/kernel"]["m"], weights["lstm_1/kernel"] + 100)
    assert set(opt.slots) == set(weights)


def test_keras1_channels_first_kernel_and_batchnorm_are_keras2() -> None:
    conv = np.arange(5 * 4 * 3 * 2, dtype=np.float32).reshape(5, 4, 3, 2)  # (filters, in, rows, cols)
    infos = (_infos("c", ["c_W", "c_b"], [conv.shape, (5,)])
             + _infos("bn", ["bn_gamma", "bn_beta", "bn_running_mean", "bn_running_std"], [(5,)] * 4))
    arrays = {w.canonical: (conv if w.raw == "c_W" else np.full(w.shape, i, np.float32)) for i, w in enumerate(infos)}
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Convolution2D", "config": {"name": "c", "dim_ordering": "th"}},
        {"class_name": "BatchNormalization", "config": {"name": "bn"}}]}
    layers = [("c", infos[:2]), ("bn", infos[2:])]
    weights, _ = to_keras2(layers, arrays, None, config, Path("x.h5"))
    assert np.array_equal(weights["c/kernel"], np.transpose(conv, (2, 3, 1, 0)))
    assert np.array_equal(weights["bn/moving_variance"], arrays["bn/bn_running_std"])
    assert list(weights) == ["c/kernel", "c/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]


def test_keras1_weight_prefix_is_the_layer_name_the_weight_was_made_under() -> None:
    from ckptcompat.formats.keras_h5 import keras1_weight_prefix

    assert keras1_weight_prefix("lstm_1_W_i:0") == "lstm_1"
    assert keras1_weight_prefix("forward_lstm_1_U_c") == "forward_lstm_1"
    assert keras1_weight_prefix("x_b_W") == "x_b" and keras1_weight_prefix("x_b_b") == "x_b"
    assert keras1_weight_prefix("batchnormalization_1_running_std") == "batchnormalization_1"
    assert keras1_weight_prefix("bn_beta") == "bn" and keras1_weight_prefix("prelu_1_alphas") == "prelu_1"
    assert keras1_weight_prefix("kernel") is None and keras1_weight_prefix("_W") is None
    assert keras1_weight_prefix("highway_1_W_carry") is None  # a Keras-1-only class: not converted


def test_every_real_keras1_file_inspects_in_keras2_names(real_checkpoints: Path) -> None:
    """Headers only (``inspect``): the converted names and shapes, no data read, no error."""
    import ckptcompat

    files = _keras1_files(real_checkpoints)
    assert len(files) >= 10
    for path in files:
        info = ckptcompat.inspect(path)
        leaves = {v.name.rsplit("/", 1)[-1] for v in info.variables if v.kind == "weight"}
        assert leaves and leaves <= {"kernel", "bias", "recurrent_kernel", "gamma", "beta", "moving_mean",
                                     "moving_variance", "embeddings", "alpha", "depthwise_kernel",
                                     "pointwise_kernel"}, (path, leaves)


def _convert_one(cls: str, cfg: dict[str, Any], leaves: dict[str, np.ndarray], layer: str = "l",
                 inner: dict[str, Any] | None = None, slots: dict[str, dict[str, np.ndarray]] | None = None,
                 frozen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Any]:
    infos = [WeightInfo(f"{layer}/{name}", name, value.shape, name not in frozen) for name, value in leaves.items()]
    entry = {"class_name": cls, "config": {"name": layer, **cfg, **({"layer": inner} if inner else {})}}
    opt = None if slots is None else OptimizerState("SGD", {}, 1, {f"{layer}/{n}": s for n, s in slots.items()},
                                                    None, {})
    return to_keras2([(layer, infos)], {i.canonical: leaves[i.raw] for i in infos}, opt,
                     {"class_name": "Sequential", "config": [entry]}, Path("x.h5"))


def test_keras1_gru_conv1d_deconv_and_wrappers_convert_as_keras_2_3() -> None:
    rng = np.random.default_rng(0)
    gru = {f"l_{k}_{g}": rng.random((2, 3) if k != "b" else (3,)).astype("f4") for g in "zrh" for k in "WUb"}
    out, _ = _convert_one("GRU", {}, gru)
    assert np.array_equal(out["l/kernel"], np.concatenate([gru["l_W_z"], gru["l_W_r"], gru["l_W_h"]], -1))
    fused = {"l_W": np.ones((2, 12), "f4"), "l_U": np.ones((3, 12), "f4"), "l_b": np.ones(12, "f4")}
    fused_out = _convert_one("LSTM", {"consume_less": "gpu"}, fused)[0]
    assert sorted(fused_out) == ["l/bias", "l/kernel", "l/recurrent_kernel"]
    new = rng.random((3, 1, 2, 4)).astype("f4")  # (length, 1, in, filters)
    out, _ = _convert_one("Convolution1D", {"filter_length": 3, "nb_filter": 4}, {"l_W": new, "l_b": np.zeros(4, "f4")})
    assert np.array_equal(out["l/kernel"], new[:, 0])
    old = rng.random((4, 1, 3, 1)).astype("f4")  # Keras 1.0: (filters, in, length, 1), in = 1
    out, _ = _convert_one("Convolution1D", {"filter_length": 3, "nb_filter": 4}, {"l_W": old, "l_b": np.zeros(4, "f4")})
    assert out["l/kernel"].shape == (3, 1, 4) and np.array_equal(out["l/kernel"], np.transpose(old, (2, 3, 1, 0))[:, 0])
    deconv = rng.random((3, 3, 5, 2)).astype("f4")
    out, _ = _convert_one("Deconvolution2D", {"dim_ordering": "tf"}, {"l_W": deconv, "l_b": np.zeros(2, "f4")})
    assert np.array_equal(out["l/kernel"], np.transpose(deconv, (0, 1, 3, 2)))
    dense = {"dense_1_W": np.ones((2, 3), "f4"), "dense_1_b": np.zeros(3, "f4")}
    out, _ = _convert_one("TimeDistributed", {}, dense, inner={"class_name": "Dense", "config": {"name": "dense_1"}})
    assert sorted(out) == ["l/bias", "l/kernel"]
    nested = {"class_name": "Sequential", "config": [{"class_name": "Dense", "config": {"name": "dense_1"}}]}
    infos = [WeightInfo(f"seq/{n}", n, v.shape, True) for n, v in dense.items()]
    out, _ = to_keras2([("seq", infos)], {i.canonical: dense[i.raw] for i in infos}, None,
                       {"class_name": "Sequential", "config": [{"class_name": "Sequential", "config": {
                           "name": "seq", "layers": nested["config"]}}]}, Path("x.h5"))
    assert sorted(out) == ["seq/dense_1/bias", "seq/dense_1/kernel"]


def test_keras1_slots_convert_tensor_by_tensor_and_gates_only_whole() -> None:
    """A slot kind that only non-trainable tensors lack (a BatchNormalization's moving statistics)
    converts where each tensor converts alone; a trainable tensor without it, or gate tensors not all
    having it, keep the kind under the old names (reported by the matching). Nothing is dropped."""
    leaves = {"l_W": np.ones((2, 3), "f4"), "l_b": np.zeros(3, "f4"), "l_W_carry": np.ones((2, 3), "f4")}
    out, _ = _convert_one("Highway", {}, leaves)  # not converted (Keras 2 has no Highway): kept, not dropped
    assert sorted(out) == ["l/l_W", "l/l_W_carry", "l/l_b"]
    leaves = {"l_W": np.ones((2, 3), "f4"), "l_b": np.zeros(3, "f4")}
    slots = {"l_W": {"momentum": np.ones((2, 3), "f4")},
             "l_b": {"momentum": np.ones(3, "f4"), "extra": np.ones(3, "f4")}}
    out, opt = _convert_one("Dense", {}, leaves, slots=slots)
    assert sorted(out) == ["l/bias", "l/kernel"]
    assert sorted(opt.slots) == ["l/bias", "l/kernel", "l/l_b"] and list(opt.slots["l/l_b"]) == ["extra"]
    bn = {f"l_{n}": np.full(4, i, "f4") for i, n in enumerate(("gamma", "beta", "running_mean", "running_std"))}
    bn_slots = {"l_gamma": {"m": bn["l_gamma"] + 1}, "l_beta": {"m": bn["l_beta"] + 1}}
    out, opt = _convert_one("BatchNormalization", {}, bn, slots=bn_slots, frozen=("l_running_mean", "l_running_std"))
    assert sorted(opt.slots) == ["l/beta", "l/gamma"] and np.array_equal(opt.slots["l/beta"]["m"], out["l/beta"] + 1)
    _, opt = _convert_one("BatchNormalization", {}, bn, slots=bn_slots)  # statistics said trainable: kept
    assert sorted(opt.slots) == ["l/l_beta", "l/l_gamma"]
    gates = {f"l_{k}_{g}": np.ones((2, 3) if k != "b" else (3,), "f4") for g in "icfo" for k in "WUb"}
    out, opt = _convert_one("LSTM", {}, gates, slots={"l_W_i": {"m": gates["l_W_i"]}})
    assert sorted(out) == ["l/bias", "l/kernel", "l/recurrent_kernel"] and sorted(opt.slots) == ["l/l_W_i"]


def test_keras1_convlstm2d_and_channels_first_separable_conv_convert_as_keras1_computed() -> None:
    """ConvLSTM2D: gates i, c, f, o -> i, f, c, o; channels-first kernels made channels-last gate by
    gate (Keras 2.3 concatenated them on their column axis first). SeparableConvolution2D ``th``:
    both kernels channels-last (Keras 2.3 left them). The generated Keras 1 corpus checks both
    against what Keras 1 computed (fixtures/generate_keras1.py)."""
    rng = np.random.default_rng(1)
    th = {f"l_{k}_{g}": rng.random((3, 2, 2, 2) if k == "W" else (3, 3, 2, 2) if k == "U" else (3,)).astype("f4")
          for g in "icfo" for k in "WUb"}  # (filters, in, rows, cols)
    out, _ = _convert_one("ConvLSTM2D", {"dim_ordering": "th"}, th)
    want = np.concatenate([np.transpose(th[f"l_W_{g}"], (2, 3, 1, 0)) for g in "ifco"], axis=-1)
    assert out["l/kernel"].shape == (2, 2, 2, 12) and np.array_equal(out["l/kernel"], want)
    assert np.array_equal(out["l/bias"], np.concatenate([th[f"l_b_{g}"] for g in "ifco"]))
    tf_gates = {f"l_{k}_{g}": rng.random((2, 2, 2, 3) if k == "W" else (2, 2, 3, 3) if k == "U" else (3,)).astype("f4")
                for g in "icfo" for k in "WUb"}
    out, _ = _convert_one("ConvLSTM2D", {"dim_ordering": "tf"}, tf_gates)
    assert np.array_equal(out["l/recurrent_kernel"], np.concatenate([tf_gates[f"l_U_{g}"] for g in "ifco"], -1))
    sep = {"l_depthwise_kernel": rng.random((1, 2, 3, 3)).astype("f4"),
           "l_pointwise_kernel": rng.random((4, 2, 1, 1)).astype("f4"), "l_b": np.zeros(4, "f4")}
    out, _ = _convert_one("SeparableConvolution2D", {"dim_ordering": "th"}, sep)
    assert out["l/depthwise_kernel"].shape == (3, 3, 2, 1) and out["l/pointwise_kernel"].shape == (1, 1, 2, 4)
    assert np.array_equal(out["l/depthwise_kernel"], np.transpose(sep["l_depthwise_kernel"], (2, 3, 1, 0)))
    out, _ = _convert_one("SeparableConvolution2D", {"dim_ordering": "tf"}, {k: np.transpose(v, (2, 3, 1, 0))
                                                                            for k, v in sep.items() if v.ndim == 4})
    assert out["l/depthwise_kernel"].shape == (3, 3, 2, 1)


def test_a_keras1_sgd_without_decay_has_no_step_count() -> None:
    """Keras 1 SGD advances its counter only to decay the rate: a 0 there is not the steps taken."""
    leaves = {"l_W": np.ones((2, 3), "f4"), "l_b": np.zeros(3, "f4")}
    for decay, iterations, want in ((0.0, 0, None), (0.01, 4, 4), (0.0, 7, 7)):
        infos = [WeightInfo(f"l/{n}", n, v.shape, True) for n, v in leaves.items()]
        opt = OptimizerState("SGD", {"learning_rate": 0.1, "decay": decay}, iterations, {}, None, {})
        _, opt = to_keras2([("l", infos)], {i.canonical: leaves[i.raw] for i in infos}, opt,
                           {"class_name": "Sequential", "config": [{"class_name": "Dense", "config": {"name": "l"}}]},
                           Path("x.h5"))
        assert opt.iterations == want, decay


def test_only_keras1_files_are_converted() -> None:
    from ckptcompat.formats.keras_h5._keras1_weights import is_keras1_file

    keras1 = [("dense_1", [WeightInfo("dense_1/dense_1_W", "dense_1_W", (2, 3), True)])]
    keras2 = [("dense_1", [WeightInfo("dense_1/kernel", "dense_1/kernel", (2, 3), True)])]
    assert is_keras1_file("1.2.2", keras1) and is_keras1_file("", keras1)
    assert not is_keras1_file("2.3.1", keras1) and not is_keras1_file("", keras2)
    assert not is_keras1_file("2.15.0", keras2) and not is_keras1_file("3.15.1", keras2)


class _Dataset:
    """A stand-in HDF5 dataset that counts its reads."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, 0

    def __getitem__(self, key: Any) -> np.ndarray:
        self.reads += 1
        return self.array


def test_keras1_conversion_of_headers_and_lazy_tensors() -> None:
    """Headers only: the converted shapes, nothing read. Lazy: a renamed tensor stays unread, a
    concatenated or transposed one is read."""
    from ckptcompat.formats._headers import LazyTensor, TensorHeader

    gates = {f"l_{k}_{g}": TensorHeader((2, 3) if k != "b" else (3,), "f4") for g in "icfo" for k in "WUb"}
    out, _ = _convert_one("LSTM", {}, gates)
    assert {n: (type(v), v.shape) for n, v in out.items()} == {
        "l/kernel": (TensorHeader, (2, 12)), "l/recurrent_kernel": (TensorHeader, (2, 12)),
        "l/bias": (TensorHeader, (12,))}
    out, _ = _convert_one("Convolution2D", {"dim_ordering": "th"}, {"l_W": TensorHeader((5, 4, 3, 2), "f4"),
                                                                     "l_b": TensorHeader((5,), "f4")})
    assert out["l/kernel"].shape == (3, 2, 4, 5)
    kernel, bias = _Dataset(np.ones((2, 3), "f4")), _Dataset(np.zeros(3, "f4"))
    lazy = {"l_W": LazyTensor(kernel, RuntimeError), "l_b": LazyTensor(bias, RuntimeError)}
    out, _ = _convert_one("Dense", {}, lazy)
    assert isinstance(out["l/kernel"], LazyTensor) and kernel.reads == 0  # renamed: still unread
    conv = _Dataset(np.arange(120, dtype="f4").reshape(5, 4, 3, 2))
    out, _ = _convert_one("Convolution2D", {"dim_ordering": "th"}, {"l_W": LazyTensor(conv, RuntimeError),
                                                                     "l_b": np.zeros(5, "f4")})
    assert conv.reads == 1 and np.array_equal(out["l/kernel"], np.transpose(conv.array, (2, 3, 1, 0)))


def test_keras1_nested_layers_of_overlapping_names_and_a_keras1_nested_sequential() -> None:
    """``fc`` and ``fc_out`` in one nested model: each leaf goes to the longest name it starts with.
    A Keras 1 functional model keeps a nested Sequential's name on its entry and its config as a list."""
    leaves = {"fc_W": np.ones((2, 3), "f4"), "fc_b": np.zeros(3, "f4"),
              "fc_out_W": np.ones((3, 1), "f4"), "fc_out_b": np.zeros(1, "f4")}
    infos = [WeightInfo(f"seq/{n}", n, v.shape, True) for n, v in leaves.items()]
    inner = [{"class_name": "Dense", "config": {"name": "fc"}}, {"class_name": "Dense", "config": {"name": "fc_out"}}]
    config = {"class_name": "Model", "config": {"layers": [{"name": "seq", "class_name": "Sequential",
                                                            "config": inner}]}}
    out, _ = to_keras2([("seq", infos)], {i.canonical: leaves[i.raw] for i in infos}, None, config, Path("x.h5"))
    assert sorted(out) == ["seq/fc/bias", "seq/fc/kernel", "seq/fc_out/bias", "seq/fc_out/kernel"]
    assert out["seq/fc_out/kernel"].shape == (3, 1)


def _weights_only_with_json(root: Path) -> list[tuple[Path, Any]]:
    """(weights file, its sibling ``model.json`` config) of every Keras 1 ``save_weights`` file of the
    corpus: the Keras 1 idiom ``open("model.json", "w").write(model.to_json())`` + ``save_weights``."""
    import csv
    import json

    found = []
    with open(root / "MANIFEST.tsv", newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            path = root / row["repo"].replace("/", "__") / row["path"]
            if row["kind"] == "B" and "keras 1.x era" in row["producer"] and (path.parent / "model.json").exists():
                config = json.loads((path.parent / "model.json").read_text())
                found.append((path, json.loads(config) if isinstance(config, str) else config))  # double-encoded
    return sorted(found, key=lambda pair: str(pair[0]))


#: the repositories' Lambda functions that change the shape, as their model.py defines them (the
#: constants of the stored byte-code, read, not run): spadin's ``resize`` is
#: ``tf.image.resize_images(x, (80, 160))``; the other Lambdas scale pixel values (no shape change)
_RESIZES = {("spadin__behavioral-cloning", "resize"): (80, 160)}


def _resize_class(keras: Any, size: tuple[int, int]) -> type:
    """The user's resizing Lambda as a layer of the running Keras (no weights)."""
    class UserResize(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            ops = getattr(keras, "ops", None)
            if ops is not None:
                return ops.image.resize(x, size)
            import tensorflow as tf

            return tf.image.resize(x, size) if hasattr(tf.image, "resize") else tf.image.resize_images(x, size)

        def compute_output_shape(self, shape: Any) -> Any:
            return (shape[0], *size, shape[-1])

    return UserResize


def _stand_ins(keras: Any, path: Path, config: Any, *, fresh_names: bool) -> tuple[list[Any], dict[str, Any]]:
    """The layer entries of the model the repository's code builds: its ``model.json``'s, each Lambda
    (byte-code of another Python) standing in as the user's function (an identity Activation where
    it keeps the shape, a resizing layer where it resizes (:data:`_RESIZES`); neither has weights),
    no names where ``fresh_names`` (this process names the layers); with the custom objects needed."""
    folder = next(part for part in path.parts if "__" in part)
    entries, custom = [], {}
    for entry in config["config"]:
        entry = dict(entry, config=dict(entry["config"]))
        if entry["class_name"] == "Lambda":
            cfg = {k: v for k, v in entry["config"].items() if k in ("name", "batch_input_shape")}
            size = _RESIZES.get((folder, cfg["name"]))
            if size is None:
                entry = {"class_name": "Activation", "config": dict(cfg, activation="linear")}
            elif hasattr(keras.layers, "Resizing"):
                entry = {"class_name": "Resizing", "config": dict(cfg, height=size[0], width=size[1])}
            else:  # standalone Keras 2.3 has no Resizing layer
                custom["UserResize"] = _resize_class(keras, size)
                entry = {"class_name": "UserResize", "config": cfg}
        if fresh_names:
            entry["config"].pop("name", None)
        entries.append(entry)
    return entries, custom


def _users_model(keras: Any, path: Path, config: Any) -> Any:
    """The repository's model for the running Keras, auto-named by this process (ckptcompat's
    translation of the Keras 1 config: a user of a newer Keras writes the same layers in code)."""
    from ckptcompat import runtime
    from ckptcompat.resuming.from_config import model_from_config

    entries, custom = _stand_ins(keras, path, config, fresh_names=True)
    return model_from_config(dict(config, config=entries), runtime.detect(), keras, custom)


def _keras23_model(keras: Any, path: Path, config: Any) -> Any:
    """The repository's model as standalone Keras 2.3 builds its Keras 1 config itself (less the
    Keras 1 regularizer and constraint configs it cannot read, which hold no weights)."""
    entries, custom = _stand_ins(keras, path, config, fresh_names=False)
    for entry in entries:
        entry["config"] = {k: v for k, v in entry["config"].items() if not k.endswith(("_regularizer", "_constraint"))}
    return keras.models.Sequential.from_config(entries, custom_objects=custom)


@pytest.mark.framework
def test_real_keras1_weights_files_resume_into_the_users_model(keras, real_checkpoints: Path) -> None:
    """Each real Keras 1 ``save_weights`` file resumes into the model its code builds, auto-named
    here: every tensor as the file converts through the architecture its ``model.json`` records
    (and, for the file with a full-model twin, as that twin holds them), bitwise."""
    import ckptcompat

    pairs = _weights_only_with_json(real_checkpoints)
    assert len(pairs) >= 3, pairs
    for path, config in pairs:
        model = _users_model(keras, path, config)
        run = ckptcompat.resume(path, model=model)
        assert run.report.matching == "structure", path
        want = list(keras_h5.read(path, config=config).weights.values())
        twin = path.parent / "model.h5"
        if twin != path and twin.exists():
            assert [np.asarray(v).tobytes() for v in keras_h5.read(twin, include_optimizer=False).weights.values()] \
                == [np.asarray(v).tobytes() for v in want], twin
        got = [keras.backend.get_value(w) if hasattr(keras.backend, "get_value") else np.asarray(w)
               for w in model.weights]
        assert len(got) == len(want) and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, want))
        print(f"{path.relative_to(real_checkpoints)}: {len(want)} tensors into the user's model "
              f"({run.report.matching})")


@pytest.mark.framework
def test_real_keras1_weights_files_convert_as_keras_2_3_loads_them(real_checkpoints: Path) -> None:
    """The truth above: standalone Keras 2.3.1's own ``load_weights`` (which converts Keras 1 files
    through the live classes) gives the same tensors as ckptcompat's conversion through the file's
    ``model.json``, bitwise."""
    import tensorflow as tf

    if not tf.__version__.startswith("1.") or importlib.util.find_spec("keras") is None:
        pytest.skip("standalone Keras 2.3 (its Keras 1 conversion) runs on TF 1 here (tf115-py37)")
    import keras

    for path, config in _weights_only_with_json(real_checkpoints):
        keras.backend.clear_session()
        model = _keras23_model(keras, path, config)
        model.load_weights(str(path))
        native = keras.backend.batch_get_value([w for layer in model.layers for w in layer.weights])  # layer order
        mine = list(keras_h5.read(path, config=config).weights.values())
        assert len(mine) == len(native) and all(np.array_equal(a, b) and a.dtype == b.dtype
                                                for a, b in zip(mine, native)), path


@pytest.mark.framework
def test_real_keras1_weights_files_rebuild_from_their_model_json_or_name_the_lambda(real_checkpoints: Path) -> None:
    """Without ``model=``, each real Keras 1 ``save_weights`` file takes its architecture from the
    ``model.json`` beside it; all three hold a Lambda (byte-code never run), so resume names that
    and the way on, not a missing config."""
    import ckptcompat
    from ckptcompat.errors import UnsupportedFormatError

    for path, _ in _weights_only_with_json(real_checkpoints):
        with pytest.raises(UnsupportedFormatError, match="Lambda") as info:
            ckptcompat.resume(path)
        assert "resume(path, model=model)" in str(info.value), path
