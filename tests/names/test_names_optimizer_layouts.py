"""The generated optimizer-layout tables and the meaning rules that translate between them.

No framework needed: the tables were written by ``tools/optimizer_layouts.py`` in each
release's environment; these tests hold the library's naming, shape and translation rules
against what the real releases recorded.
"""

from __future__ import annotations

import numpy as np
import pytest

from ckptcompat.formats.keras_zip._optimizer import _fallback_groups
from ckptcompat.names.optimizer_layouts import slot_groups, slot_shape, tables
from ckptcompat.names.slot_meaning import nadam_u_product, translate_slots
from ckptcompat.names.variables import CANONICAL_SLOTS, canonical_optimizer_class, canonical_slot

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "fixtures" / "optimizers"


def _matrix_releases() -> set[str]:
    """The release label of every framework environment of the version matrix (tools/matrix.py)."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from matrix import ENVIRONMENTS

    out = set()
    for env in ENVIRONMENTS:
        pins = dict(p.split("==", 1) for p in env.packages if "==" in p)
        if pins.get("keras", "").startswith("3."):
            out.add(f"keras-{pins['keras']}")
        elif "tf-keras" in pins:
            out.add(f"tf-keras-{pins['tf-keras']}")
        elif "tensorflow-cpu" in pins or "tensorflow" in pins:
            out.add(f"tf-{pins.get('tensorflow-cpu') or pins['tensorflow']}")
    return out


def _entries():
    for label, table in sorted(tables().items()):
        for family, fam in table["families"].items():
            for name, entries in fam["classes"].items():
                for entry in entries:
                    if "variables" in entry:
                        yield label, family, name, entry


def test_tables_of_every_matrix_release_and_every_keras3_release_are_generated() -> None:
    import json

    releases = _matrix_releases()
    assert {"keras-3.0.5", "keras-3.8.0", "keras-3.15.1", "tf-keras-2.21.0", "tf-2.15.1", "tf-2.12.1", "tf-2.11.1",
            "tf-2.4.4", "tf-1.15.5"} <= releases
    assert releases <= set(tables()), sorted(releases - set(tables()))
    for label, table in tables().items():
        assert table["GENERATED"].startswith("by tools/optimizer_layouts.py")
        assert table["release"] == label
    every = json.loads((ROOT / "ckptcompat/names/configs/keras3_releases.json").read_text())["releases"]
    minors = {tuple(v.split(".")[:2]) for v in every}
    assert minors == {tuple(label[len("keras-"):].split(".")[:2]) for label in tables() if label.startswith("keras-")}
    fams = {label: set(t["families"]) for label, t in tables().items()}
    assert fams["tf-keras-2.21.0"] == fams["tf-2.11.1"] == {"new", "legacy"} and fams["keras-3.15.1"] == {"keras3"}
    assert fams["tf-2.4.4"] == fams["tf-1.15.5"] == {"legacy"}  # OptimizerV2 only


def test_every_recorded_slot_has_a_canonical_meaning() -> None:
    unknown = []
    for label, family, name, entry in _entries():
        cls = canonical_optimizer_class(name)
        if cls not in CANONICAL_SLOTS:
            continue
        for var in entry["variables"]:
            if var.get("slot") and canonical_slot(cls, var["slot"]) not in CANONICAL_SLOTS[cls]:
                unknown.append(f"{label} {family} {name} {entry['config']}: {var['slot']}")
    assert not unknown, "\n".join(unknown)


def test_slot_shapes_follow_the_recorded_shapes() -> None:
    bad = []
    for label, family, name, entry in _entries():
        shapes = [tuple(v["shape"]) for v in entry["model_variables"]]
        cls = canonical_optimizer_class(name)
        for var in entry["variables"]:
            if var.get("var") is None or not var.get("slot"):
                continue
            want = slot_shape(cls, canonical_slot(cls, var["slot"]), shapes[var["var"]])
            if canonical_slot(cls, var["slot"]) == "vhat" and var["shape"] == [1] and not entry["config"].get("amsgrad"):
                continue  # standalone Keras 2.3's placeholder without amsgrad (read as inert, not as a slot)
            if tuple(var["shape"]) != want:
                bad.append(f"{label} {name} {var['name']}: {var['shape']} != {want}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("family_release", sorted(label for label in tables() if "new" in tables()[label]["families"]
                                                   or label.startswith("keras-")))
def test_generated_groups_agree_with_the_earlier_rules(family_release: str) -> None:
    generation = "keras3" if family_release.startswith("keras-") else "keras2"
    family = "keras3" if generation == "keras3" else "new"
    checked = 0
    for name, entries in tables()[family_release]["families"][family]["classes"].items():
        for entry in entries:
            if "variables" not in entry or entry["loss_scale"]:
                continue
            cfg = entry["config"]
            old = _fallback_groups(name, cfg, generation)
            if old is None:
                continue
            assert slot_groups(name, cfg, generation, release=family_release) == old, (name, cfg)
            checked += 1
    assert checked >= 14  # tf.keras 2.11: 8 classes and their flag variants


@pytest.mark.parametrize("family", ["keras3", "new", "legacy"])
def test_every_release_creates_the_slots_of_the_newest_in_its_loops(family: str) -> None:
    """Slot groups (which slots, in which creation loops) are the same in every release of a family;
    what differs between releases is where a non-slot variable sits (Nadam's u_product)."""
    from ckptcompat.names.optimizer_layouts import FAMILY_OF_GENERATION, release_key

    generation = {v: k for k, v in FAMILY_OF_GENERATION.items()}[family]
    labels = sorted((x for x in tables() if family in tables()[x]["families"]), key=release_key, reverse=True)
    assert len(labels) >= (16 if family == "keras3" else 4)
    compared = 0
    for label in labels[1:]:
        for name, entries in tables()[label]["families"][family]["classes"].items():
            for entry in entries:
                if "variables" not in entry or entry["loss_scale"]:
                    continue
                own = slot_groups(name, entry["config"], generation, release=label)
                newest = next((slot_groups(name, entry["config"], generation, release=x) for x in labels
                               if name in tables()[x]["families"][family]["classes"]), None)
                assert own == newest, (label, name, entry["config"])
                compared += 1
    assert compared >= 40


def test_nadam_u_product_place_follows_each_keras3_release() -> None:
    """Keras 3.0-3.9 create Nadam's u_product before the slots, 3.10+ after (from the tables)."""
    from ckptcompat.names.optimizer_layouts import release_key, u_product_first

    labels = sorted((x for x in tables() if x.startswith("keras-")), key=release_key)
    assert [u_product_first(x[len("keras-"):]) for x in labels] == [release_key(x) < (3, 10) for x in labels]
    assert u_product_first("3.9.0") and not u_product_first("3.10.1") and not u_product_first(None)
    assert u_product_first("3.9") and not u_product_first("3.10") and not u_product_first("3.10.0rc1")
    assert release_key("tf-keras-2.21.0") == (2, 21, 0) and release_key("3.10") == (3, 10, 0) and release_key("x") == ()
    assert u_product_first("3.0.0") and not u_product_first("3.99.0")


@pytest.mark.parametrize("version,first", [("3.9.2", True), ("3.10.0", False), ("3.0.5", True)])
def test_nadam_written_for_a_release_puts_u_product_where_it_does(tmp_path, version: str, first: bool) -> None:
    """keras_zip.write(keras_version=...) lays Nadam out as that release builds it (3.1-3.9 had it last,
    which their load_model refuses), and reading the file back gives the same state."""
    h5py = pytest.importorskip("h5py")
    import zipfile

    from ckptcompat.formats import keras_zip

    state = keras_zip.read(SAMPLE / "keras-3.15" / "keras3-Nadam-default" / "model.keras")
    out = tmp_path / "m.keras"
    keras_zip.write(out, state, keras_version=version)
    with zipfile.ZipFile(out) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5", "r") as h5:
        stored = [h5[f"optimizer/vars/{i}"][()] for i in range(len(h5["optimizer/vars"]))]
    place = 2 if first else len(stored) - 1
    assert stored[place].shape == () and stored[place] == state.optimizer.extra["u_product"]
    back = keras_zip.read(out)
    assert back.optimizer.extra["u_product"] == state.optimizer.extra["u_product"]
    assert {k: {s: v.tobytes() for s, v in per.items()} for k, per in back.optimizer.slots.items()} == \
        {k: {s: v.tobytes() for s, v in per.items()} for k, per in state.optimizer.slots.items()}


def test_plain_sgd_layouts_differ_between_generations_as_the_issue_says() -> None:
    assert slot_groups("SGD", {"momentum": 0.0}, "keras2") == [("momentum",)]
    assert slot_groups("SGD", {"momentum": 0.0}, "keras3") == []
    assert slot_groups("SGD", {"momentum": 0.9}, "keras3") == [("momentum",)]
    assert slot_groups("Adam", {"amsgrad": True}, "keras3") == [("m", "v"), ("vhat",)]
    assert slot_groups("RMSprop", {"centered": True, "momentum": 0.5}, "keras3") == [("rms",), ("momentum",), ("mg",)]


def test_sgd_momentum_zero_keras2_to_keras3_drops_the_inert_slots() -> None:
    m = np.full((2, 3), -0.05, np.float32)  # tf-keras keeps -lr*g at momentum 0
    out = translate_slots("SGD", {"momentum": 0.0}, {"momentum": 0.0}, {"d/kernel/momentum": m}, {}, 3)
    assert out.slots == {} and len(out.dropped) == 1 and "inert" in out.dropped[0]


def test_sgd_momentum_zero_keras3_to_keras2_creates_zero_slots() -> None:
    out = translate_slots("SGD", {"momentum": 0.0}, {"momentum": 0.0}, {}, {"d/kernel/momentum": (2, 3)}, 3)
    assert list(out.slots) == ["d/kernel/momentum"]
    assert out.slots["d/kernel/momentum"].shape == (2, 3) and not out.slots["d/kernel/momentum"].any()


def test_a_stepped_sgd_without_momentum_slots_and_without_config_had_momentum_zero() -> None:
    """A Keras 3 .keras without optimizer config: a stepped SGD that kept no momentum slot had
    momentum 0 (Keras creates the slot only when it is used); a known momentum decides instead."""
    out = translate_slots("SGD", {"learning_rate": 0.01}, {"learning_rate": 0.01}, {},
                          {"d/kernel/momentum": (2, 3)}, 4)
    assert list(out.slots) == ["d/kernel/momentum"] and not out.slots["d/kernel/momentum"].any()
    assert "created only when used" in out.created[0]
    known = translate_slots("SGD", {"momentum": 0.9}, {"momentum": 0.9}, {}, {"d/kernel/momentum": (2, 3)}, 4)
    assert known.slots == {}  # momentum 0.9 and no slot: a real misfit, left to the caller
    other_kind = translate_slots("Adam", {}, {}, {"d/kernel/m": np.ones(2, np.float32)},
                                 {"d/kernel/m": (2,), "d/kernel/v": (2,)}, 4)
    assert "d/kernel/v" not in other_kind.slots  # v is never conditional: missing stays missing


def test_a_real_misfit_is_left_for_the_caller_to_refuse() -> None:
    m = np.ones((2, 3), np.float32)
    out = translate_slots("SGD", {"momentum": 0.9}, {"momentum": 0.9}, {"d/kernel/momentum": m},
                          {"e/kernel/momentum": (2, 3)}, 3)
    assert "d/kernel/momentum" in out.slots and "e/kernel/momentum" not in out.slots


def test_never_built_optimizer_means_no_slots_yet() -> None:
    out = translate_slots("Adam", {}, {}, {}, {"d/kernel/m": (2,), "d/kernel/v": (2,)}, 0)
    assert set(out.slots) == {"d/kernel/m", "d/kernel/v"}
    assert translate_slots("Adam", {}, {}, {}, {"d/kernel/m": (2,)}, 5).slots == {}


def test_adafactor_scalar_placeholders_cross_both_ways() -> None:
    zero = np.zeros((), np.float32)
    to_k2 = translate_slots("Adafactor", {}, {}, {"b/bias/r": zero, "b/bias/c": zero}, {}, 3)
    assert to_k2.slots == {} and len(to_k2.dropped) == 2
    to_k3 = translate_slots("Adafactor", {}, {}, {}, {"b/bias/r": (), "b/bias/c": ()}, 3)
    assert set(to_k3.slots) == {"b/bias/r", "b/bias/c"}


def test_nadam_u_product_follows_its_definition() -> None:
    assert nadam_u_product(0, 0.9) == np.float32(1.0)
    want = np.float32(1.0)
    for t in (1, 2):  # 0.96 ** t correctly rounded: 0.96 and 0.9216 (0x3f6bedfa)
        power = np.float32(0.96) if t == 1 else np.frombuffer(bytes.fromhex("faed6b3f"), "<f4")[0]
        u_t = np.float32(0.9) * (np.float32(1) - np.float32(0.5) * power)
        want = np.float32(want * u_t)
    assert nadam_u_product(2, 0.9) == want


def test_standalone_keras_m_schedule_follows_what_it_computes() -> None:
    # m_schedule of standalone Keras 2.3.1 Nadam (beta_1 0.9, schedule_decay 0.004) on TF 1.15,
    # read from the live optimizer after 4, 8 and 20 steps; the same on every numpy release
    live = {4: "0x1.50b104p-5", 8: "0x1.bbf92cp-10", 20: "0x1.027eb8p-23"}
    for steps, value in live.items():
        got = nadam_u_product(steps, 0.9, schedule=(0.004, 2))
        assert got.dtype == np.float32 and got.tobytes() == np.float32(float.fromhex(value)).tobytes(), steps
    assert nadam_u_product(0, 0.9, schedule=(0.004, 2)) == np.float32(1.0)


def test_tf1_era_tf_keras_slot_names_are_matched_by_name_and_shape() -> None:
    from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots

    weights = [WeightInfo("dense/kernel", "dense/kernel", (3, 2), True),
               WeightInfo("dense/bias", "dense/bias", (2,), True)]
    k, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.arange(2, dtype=np.float32)
    names = ["training/Adam/iter:0", "training/Adam/dense/kernel/m:0", "training/Adam/dense/bias/m:0",
             "training/Adam/dense/kernel/v:0", "training/Adam/dense/bias/v:0"]
    values = [np.asarray(7, np.int64), k, b, k + 1, b + 1]
    iterations, slots, _ = match_slots("Adam", names, values, weights, "x.h5")
    assert iterations == 7
    assert np.array_equal(slots["dense/kernel"]["v"], k + 1) and np.array_equal(slots["dense/bias"]["m"], b)


def test_optimizer_v2_nadam_momentum_cache_is_the_u_product() -> None:
    from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots

    weights = [WeightInfo("d/bias", "d/bias", (2,), True)]
    names = ["Nadam/iter:0", "Nadam/momentum_cache:0", "Nadam/d/bias/m:0", "Nadam/d/bias/v:0"]
    values = [np.asarray(2, np.int64), np.asarray(0.25, np.float32), np.ones(2, np.float32), np.zeros(2, np.float32)]
    _, slots, extra = match_slots("Nadam", names, values, weights, "x.h5")
    assert extra["u_product"] == np.float32(0.25) and set(slots["d/bias"]) == {"m", "v"}


def test_migrate_plain_sgd_keras2_to_keras3_drops_the_inert_momentum(tmp_path) -> None:
    """tf-keras 2.21 SGD(momentum=0) .h5 (real file) -> Keras 3 .keras, no framework needed."""
    pytest.importorskip("h5py")
    from ckptcompat.formats import keras_h5, keras_zip

    src = SAMPLE / "tf-keras-2.21" / "new-SGD-default" / "model.h5"
    state = keras_h5.read(src)
    assert state.optimizer is not None and state.optimizer.slots  # tf-keras stored -lr*g at momentum 0
    assert any(np.any(v) for per in state.optimizer.slots.values() for v in per.values())
    keras_zip.write(tmp_path / "m.keras", state, keras_version="3.15.1")
    back = keras_zip.read(tmp_path / "m.keras")
    assert back.optimizer is not None and back.optimizer.iterations == state.optimizer.iterations == 3
    assert back.optimizer.slots == {}
    assert all(np.array_equal(back.weights[k], v) for k, v in state.weights.items())


def test_migrate_plain_sgd_keras3_to_keras2_creates_zero_momentum(tmp_path) -> None:
    """Keras 3.15 SGD(momentum=0) .keras (real file) -> Keras 2 .h5 with zero momentum slots."""
    pytest.importorskip("h5py")
    from ckptcompat.formats import keras_h5, keras_zip

    state = keras_zip.read(SAMPLE / "keras-3.15" / "keras3-SGD-default" / "model.keras")
    assert state.optimizer is not None and not state.optimizer.slots
    keras_h5.write(tmp_path / "m.h5", state)
    back = keras_h5.read(tmp_path / "m.h5")
    assert back.optimizer is not None and back.optimizer.iterations == 3
    assert set(back.optimizer.slots) == set(state.weights)
    assert all(not np.any(v["momentum"]) for v in back.optimizer.slots.values())


def test_schedule_valued_momentum_is_momentum() -> None:
    """OptimizerV2's SGD takes a callable momentum, which its config keeps as a dict: the layout
    is the momentum one (``float(dict)`` raised TypeError)."""
    from ckptcompat.names.optimizer_layouts import has_momentum

    schedule = {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.9, "decay_steps": 2,
                                                             "decay_rate": 0.5}}
    assert slot_groups("SGD", {"momentum": schedule}, "legacy") == [("momentum",)]
    assert slot_groups("SGD", {"momentum": 0.0}, "legacy") == []
    assert [has_momentum(v) for v in (schedule, 0.9, 0.0, 0, None, False, True)] == \
        [True, True, False, False, False, False, True]
    import numpy as np  # a hand-built state's numpy hyper-parameters (found by review)

    assert [has_momentum(v) for v in (np.float32(0.9), np.int64(1), np.array(0.9), np.float32(0))] == \
        [True, True, True, False]


@pytest.mark.parametrize("era", ["optimizer_v2", "tf211", "keras3_bare"])
def test_a_raw_name_twice_gets_each_slot_of_each_variable(era: str) -> None:
    """Two nested models each holding ``dense/kernel`` (Keras 3.0's ``.h5``: a bare ``kernel``): the
    k-th slot of each kind goes to the k-th variable, in OptimizerV2's all-m-then-all-v order and in
    the per-variable order of the new optimizers (counting calls per name alone put a ``v`` on the
    wrong variable)."""
    from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots

    raw = "kernel" if era == "keras3_bare" else "dense/kernel"
    weights = [WeightInfo("a/dense/kernel", raw, (3, 2), True), WeightInfo("b/dense/kernel", raw, (3, 2), True)]
    values = {(w, s): np.full((3, 2), i * 10 + j, np.float32)
              for i, w in enumerate("ab") for j, s in enumerate("mv")}
    if era == "optimizer_v2":
        order = [("a", "m"), ("b", "m"), ("a", "v"), ("b", "v")]
        names = [f"Adam/dense/kernel/{s}:0" for _, s in order]
    elif era == "tf211":
        order = [("a", "m"), ("a", "v"), ("b", "m"), ("b", "v")]
        names = [f"Adam/{s}/dense/kernel:0" for _, s in order]
    else:
        order = [("a", "m"), ("a", "v"), ("b", "m"), ("b", "v")]
        names = [f"kernel_{'momentum' if s == 'm' else 'velocity'}" for _, s in order]
    _, slots, _ = match_slots("Adam", ["Adam/iter:0", *names],
                              [np.asarray(4, np.int64), *(values[key] for key in order)], weights, "x.h5")
    assert {(var, s): float(v[0, 0]) for var, per in slots.items() for s, v in per.items()} == {
        ("a/dense/kernel", "m"): 0.0, ("a/dense/kernel", "v"): 1.0,
        ("b/dense/kernel", "m"): 10.0, ("b/dense/kernel", "v"): 11.0}


@pytest.mark.parametrize("with_config", [True, False])
def test_where_both_nadam_layouts_fit_the_writing_release_decides(tmp_path, with_config: bool) -> None:
    """Only scalar trainable variables: u_product first or last fits every shape; the file's Keras
    version decides (3.0-3.9 first, 3.10+ last), with and without the optimizer's config."""
    h5py = pytest.importorskip("h5py")
    from ckptcompat.formats.keras_zip._weights import read_optimizer

    stored = [np.asarray(5, np.int64)] + [np.asarray(v, np.float32) for v in (0.01, 0.2, 0.3, 0.4)]
    with h5py.File(tmp_path / "w.h5", "w") as h5:
        for i, value in enumerate(stored):
            h5[f"optimizer/vars/{i}"] = value
        h5["optimizer/vars"].attrs["name"] = "nadam"
        got = {}
        for version in ("3.9.2", "3.15.1"):
            opt = read_optimizer(h5, {"class_name": "Nadam", "config": {}} if with_config else None, "keras3",
                                 [("s/w", ())], tmp_path / "w.h5", lambda cfg: {}, ordered=True, version=version)
            got[version] = (float(opt.extra["u_product"]), float(opt.slots["s/w"]["m"]), float(opt.slots["s/w"]["v"]))
    assert got == {"3.9.2": (np.float32(0.2), np.float32(0.3), np.float32(0.4)),
                   "3.15.1": (np.float32(0.4), np.float32(0.2), np.float32(0.3))}


def test_the_tables_record_which_variants_their_release_could_not_build() -> None:
    """Generation failures are recorded, never hidden; this pins them (a new one fails here)."""
    failed = sorted((label, name, bool(entry["loss_scale"])) for label, table in tables().items()
                    for fam in table["families"].values() for name, entries in fam["classes"].items()
                    for entry in entries if "error" in entry)
    muon = [(f"keras-3.{m}", "Muon", wrap) for m in ("10.0", "11.3", "12.4") for wrap in (False, True)]
    tf211 = [("tf-2.11.1", name, True) for name in ("Adadelta", "Adagrad", "Adam", "Adamax", "Ftrl", "Nadam",
                                                    "RMSprop", "SGD")]
    assert failed == sorted(muon + tf211)


def test_a_raw_name_of_a_frozen_and_a_trained_variable_gives_the_slots_to_the_trained_one() -> None:
    from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots

    weights = [WeightInfo("a/dense/kernel", "dense/kernel", (3, 2), False),
               WeightInfo("b/dense/kernel", "dense/kernel", (3, 2), True)]
    m, v = np.zeros((3, 2), np.float32), np.ones((3, 2), np.float32)
    _, slots, _ = match_slots("Adam", ["Adam/iter:0", "Adam/dense/kernel/m:0", "Adam/dense/kernel/v:0"],
                              [np.asarray(1, np.int64), m, v], weights, "x.h5")
    assert list(slots) == ["b/dense/kernel"] and slots["b/dense/kernel"]["v"] is v


def test_standalone_keras_optimizer_weights_are_read_as_the_release_creates_them() -> None:
    """Standalone Keras 2.3.1's optimizers (table generated on TF 1.15) name each slot
    ``<slot>_<index>``, one creation loop per slot kind: ``match_slots`` puts every value on the
    variable its index names, the k-th loop as the k-th slot of ``CANONICAL_SLOTS`` (the order
    Keras <= 2.2.5's unnamed, positional slots are read in), Nadam's ``m_schedule`` as u_product."""
    from ckptcompat.formats.keras_h5._optimizer import WeightInfo, match_slots

    checked = 0
    for name, entries in tables()["standalone-keras-2.3.1"]["families"]["standalone"]["classes"].items():
        cls = canonical_optimizer_class(name)
        for entry in entries:
            model_vars = [v["name"] for v in entry["model_variables"]]
            weights = [WeightInfo(v["name"], v["name"], tuple(v["shape"]), True) for v in entry["model_variables"]]
            loops = list(dict.fromkeys(v["slot"] for v in entry["variables"] if v.get("var") is not None))
            values = [np.full(v["shape"], i, dtype=v["dtype"]) for i, v in enumerate(entry["variables"])]
            iterations, slots, extra = match_slots(name, [v["name"] + ":0" for v in entry["variables"]], values,
                                                   weights, "x.h5")
            want = {(model_vars[v["var"]], CANONICAL_SLOTS[cls][loops.index(v["slot"])]): i
                    for i, v in enumerate(entry["variables"]) if v.get("shape_rel") == "same"}
            assert {(k, s): int(v.reshape(-1)[0]) for k, per in slots.items() for s, v in per.items()} == want, \
                (name, entry["config"])
            assert iterations == 0  # the iterations variable is the first one recorded
            assert ("u_product" in extra) == (name == "Nadam")
            checked += 1
    assert checked >= 10
