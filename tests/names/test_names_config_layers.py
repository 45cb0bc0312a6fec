"""Config translation over Keras's whole layer space, proven in the running environment.

1. Every class of the running ``keras.layers`` (enumerated, not listed by hand; see
   ``fixtures/generate_layer_configs.py``) is built into a small model; its config goes to the
   OTHER generation and back, and must rebuild into a model with the same weight shapes.
2. The configs + ``.h5`` files written by the OTHER generation's real releases, and by this
   generation's own release or a later one (``fixtures/layer_configs/<env>/``), rebuild here
   and their weights restore bitwise (sha256 of every tensor, from the writer's live model);
   compositions (Sequential with
   ``input_shape``, masked recurrent, seq2seq ``initial_state``, shared, multi-IO, nested,
   ``mixed_float16``) also restore their optimizer slots.

Both print the table: class -> native Keras ok? / ckptcompat ok?  (``-s`` to see it.)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.errors import InvalidArgumentError, UnsupportedFormatError
from ckptcompat.names.configs.table import REMOVED_IN_KERAS3

ROOT = Path(__file__).resolve().parents[2]
LAYER_FIXTURES = ROOT / "fixtures" / "layer_configs"
#: fixture environments written by each generation
ENVS_BY_GENERATION = {"keras2": ("tf221-tfkeras", "tf215"), "keras3": ("tf221-keras3",)}

#: the sha256 of a tensor holding no element
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: classes whose translation is known not to work, reviewed: (direction, class) -> reason
KNOWN_UNTRANSLATABLE: dict[tuple[str, str], str] = {
    # empty: the last six (DepthwiseConv1D/2D kernel naming, Bidirectional and TimeDistributed inner
    # layer naming, both directions) round-trip and resume bitwise since the structure-aware matching
}


pytestmark = [pytest.mark.framework,
              pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")]


@functools.lru_cache(maxsize=None)
def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_layer_configs",
                                                  ROOT / "fixtures" / "generate_layer_configs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flavour() -> str:
    from ckptcompat import runtime

    return str(runtime.detect())


def _keras() -> Any:
    from ckptcompat import runtime

    return runtime.flavour().keras_module()


def _shapes(model: Any) -> list[tuple[int, ...]]:
    return sorted(tuple(int(d) for d in w.shape) for w in model.get_weights())


def _sha(array: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()


def _round_trip(config: dict[str, Any], flavour: str) -> dict[str, Any]:
    """The config translated to the other generation and back to the running one."""
    from ckptcompat.names.config_downgrade import downgrade_model_config
    from ckptcompat.names.config_upgrade import upgrade_model_config

    if flavour == "keras3":
        return upgrade_model_config(downgrade_model_config(config))
    return downgrade_model_config(upgrade_model_config(config))


#: (release, class) whose model, as the generator builds it, the release's own model_from_json cannot
#: rebuild either (checked at run time too): nothing for a translation to do
NATIVE_ROUND_TRIP_FAILS: dict[tuple[str, str], str] = {
    ("3.8", n): "built on two rank-1 inputs (a generator quirk); Keras 3.8's own model_from_json fails on it "
                "too" for n in ("Equalization", "RandomGrayscale")}


def _release(keras: Any) -> str:
    return ".".join(str(getattr(keras, "__version__", "")).split(".")[:2])


def _native_round_trip(keras: Any, model: Any) -> bool:
    try:
        keras.models.model_from_json(model.to_json())
        return True
    except Exception:  # noqa: BLE001 -- Keras raises anything here
        return False


def test_every_running_layer_class_round_trips() -> None:
    """Running generation -> other generation -> running: every enumerated class rebuilds."""
    from ckptcompat.resuming.build import model_from_config

    gen, keras, flavour = _generator(), _keras(), _flavour()
    rows, failures, built = [], [], 0
    for name, cls in gen.layer_classes(keras):
        if name in gen.SKIP_REASONS:
            rows.append(f"{name:28} skipped: {gen.SKIP_REASONS[name]}")
            continue
        model, reason = gen._try_build(name, cls, keras)
        if model is None:
            rows.append(f"{name:28} not built here: {reason[:90]}")
            continue
        built += 1
        config = json.loads(model.to_json())
        try:
            rebuilt = model_from_config(_round_trip(config, flavour), flavour, keras, None, None,
                                        keras3=flavour == "keras3")
            ok = _shapes(rebuilt) == _shapes(model)
            why = "" if ok else f"weight shapes {_shapes(rebuilt)} != {_shapes(model)}"
        except Exception as exc:  # noqa: BLE001 -- collected and reported per class
            ok, why = False, f"{type(exc).__name__}: {str(exc)[-200:]}"
        if not ok and name in REMOVED_IN_KERAS3:  # reviewed: no Keras 3 layer; typed, named refusal
            assert "UnsupportedFormatError" in why and "missing rule" in why, why
            ok, why = True, f"refused (reviewed): {REMOVED_IN_KERAS3[name]}"
        elif not ok and (_release(keras), name) in NATIVE_ROUND_TRIP_FAILS and not _native_round_trip(keras, model) \
                and why.startswith(("UnsupportedFormatError", "InvalidArgumentError")):
            ok, why = True, f"reviewed: {NATIVE_ROUND_TRIP_FAILS[(_release(keras), name)]}"
        rows.append(f"{name:28} round trip {'ok' if ok and not why else why if ok else 'FAILED ' + why}")
        if not ok and (flavour, name) not in KNOWN_UNTRANSLATABLE:
            failures.append(f"{name}: {why}")
    print(f"\n{flavour}: {built} layer classes built and round-tripped\n" + "\n".join(rows))
    assert built >= 60, f"only {built} layer classes could be built: the enumeration is broken"
    assert not failures, "\n".join(failures)


def _other_envs() -> list[str]:
    """The fixture environments written by the other generation, or by this or a later release of
    this one (Keras 3.15's files read by Keras 3.0 and 3.8: arguments and classes added since; and
    by 3.15 itself, whose own ``load_model`` cannot rebuild its masked-recurrent ``.h5``)."""
    from ckptcompat.names.configs.keras2_releases import release_tuple

    flavour = _flavour()
    running = release_tuple(str(getattr(_keras(), "__version__", "0")))
    envs = []
    for generation, names in ENVS_BY_GENERATION.items():
        for env in names:
            manifest = LAYER_FIXTURES / env / "manifest.json"
            if not manifest.exists():
                continue
            if generation != flavour:
                envs.append(env)
                continue
            written = release_tuple(str(json.loads(manifest.read_text(encoding="utf-8"))["keras_version"]))
            if written[0] == running[0] and written >= running:
                envs.append(env)
    return envs


def _check_restored(model: Any, entry: dict[str, Any], got: list[str], name: str, env: str) -> None:
    """Weights bitwise (sha256), an adapted Discretization's bins exact, the same outputs."""
    wanted = [h for h in entry["weights_sha256"] if h != EMPTY_SHA256]
    adapted = entry.get("bin_boundaries", {})
    # a Keras 2 Discretization's adapted summary is a variable; rebuilt with the bins computed from
    # it (checked below, exactly) the layer keeps none, in either generation; Keras 3 writes none
    summaries = [h for h in wanted if h not in got]
    allowed = len(adapted) if env in ENVS_BY_GENERATION["keras2"] else 0
    assert got == [h for h in wanted if h not in summaries] and len(summaries) <= allowed, \
        "weights differ from the writer's (sha256)"
    for layer_name, bins in adapted.items():
        mine = [float(b) for b in model.get_layer(layer_name).bin_boundaries]
        assert np.array_equal(np.float32(mine), np.float32(bins)), f"{layer_name} bins {mine}, written {bins}"
    if "predictions" in entry:
        shape = [list(i.shape[1:]) for i in model.inputs]
        dtype = model.inputs[0].dtype
        data = _generator()._data(shape if len(shape) > 1 else tuple(shape[0]), str(getattr(dtype, "name", dtype)))
        out = model.predict(data, verbose=0)
        for mine, written in zip(out if isinstance(out, list) else [out], entry["predictions"]):
            # float16 layers (mixed_policy) compute to float16's precision: TF 2.15 and 2.21 differ there
            rtol = 4e-3 if name.startswith("mixed_policy") else 1e-5
            np.testing.assert_allclose(np.asarray(mine, "float64"), np.asarray(written), rtol=rtol, atol=rtol / 10,
                                       err_msg=f"{name}: the resumed model computes other outputs")


def _kept_as_built(result: Any) -> list[str]:
    """The sha256 of each live slot the resume reports as kept as built (Keras 3.0 tracks a layer
    rebuilt with ``trainable=False`` and builds slots the file never had)."""
    from ckptcompat import runtime

    slots = runtime.capture(result.model).optimizer.slots
    kept = [note.split()[1] for note in result.report.translated if note.startswith("kept ")]
    return [_sha(slots[var][slot]) for var, _, slot in (k.rpartition("/") for k in kept)]


def _resume_files(env: str, entry: dict[str, Any], name: str) -> str:
    """Resume the entry's ``.h5`` (and ``.keras``, where written): weights, bins, outputs, slots."""
    import ckptcompat

    done = []
    for kind in ("h5", "keras"):
        if not entry.get(kind):
            continue
        result = ckptcompat.resume(LAYER_FIXTURES / env / entry[kind])
        # a tensor holding no element (tf-keras's unadapted Discretization summary, which Keras 3
        # keeps no variable for) carries nothing to compare; lookup layers: their vocabularies
        got = sorted(_sha(w) for w in _generator().model_weights(result.model) if np.size(w))
        _check_restored(result.model, entry, got, f"{name}.{kind}", env)
        assert _generator().vocabularies(result.model) == entry.get("vocabularies", {}), \
            f"{name}.{kind}: the adapted vocabularies differ from the writer's"
        slots = result.state.optimizer.slot_count if result.state.optimizer else 0
        if "optimizer" in entry:
            assert slots and len(result.report.restored_slots) == slots, \
                f".{kind} optimizer: {len(result.report.restored_slots)} of {slots} slots restored"
            live = _generator()._truth(result.model).get("optimizer", {}).get("variables_sha256", [])
            for built in _kept_as_built(result):  # Keras 3.0: slots of a layer frozen in its constructor
                live.remove(built)
            assert live == entry["optimizer"]["variables_sha256"], f".{kind} optimizer: slot values differ (sha256)"
        done.append(f".{kind}")
    return f"ok (bitwise, {' and '.join(done)}{f', {slots} slots' if slots else ''})"


@pytest.mark.parametrize("env", ["tf221-tfkeras", "tf215", "tf221-keras3"])
def test_other_generation_layer_files_restore_bitwise(env: str) -> None:
    """Files written by the other generation's real release: rebuild + weights bitwise + slots."""
    from ckptcompat.resuming.build import model_from_config

    if env not in _other_envs():
        pytest.skip(f"{env} is written by the running generation (or absent)")
    keras, flavour = _keras(), _flavour()
    # Keras 3 on TF 2.16 (3.0 and 3.8 measured) loops in a TF container's __repr__ while its own
    # load_model reports a foreign layer config (tf216-keras30/-keras38 matrix envs): their native
    # column is not run
    import tensorflow as tf

    native_loops = flavour == "keras3" and tf.__version__.startswith("2.16.")
    manifest = json.loads((LAYER_FIXTURES / env / "manifest.json").read_text(encoding="utf-8"))
    entries = {**manifest["layers"], **manifest["compositions"]}
    native_shapes: list[tuple[int, ...]] = []
    rows, failures, native_ok, ours_ok, n = [], [], 0, 0, 0
    logging.disable(logging.WARNING)
    try:
        for name, entry in sorted(entries.items()):
            if not entry.get("built"):
                continue
            n += 1
            native_shapes = []
            text = (LAYER_FIXTURES / env / f"{name}.json").read_text(encoding="utf-8")
            try:
                if native_loops:
                    raise RuntimeError("not run")
                if entry.get("h5") or entry.get("keras"):
                    keras.models.load_model(str(LAYER_FIXTURES / env / (entry.get("h5") or entry["keras"])),
                                            compile=False)
                else:
                    native_shapes = _shapes(keras.models.model_from_json(text))
                native = "ok"
                native_ok += 1
            except Exception as exc:  # noqa: BLE001 -- native result is reported, not asserted
                native = "not run" if native_loops else f"no ({type(exc).__name__})"
            try:
                if entry.get("h5") or entry.get("keras"):
                    ours = _resume_files(env, entry, name)
                else:
                    model = model_from_config(json.loads(text), flavour, keras, None, None)
                    # weightless when written; a lookup layer's empty vocabulary is (0,), as natively, and
                    # tf-keras's unadapted Discretization keeps a (2, 0) summary: only empty tensors
                    assert _shapes(model) in ([], native_shapes) or not any(np.prod(s) for s in _shapes(model)), \
                        "a weightless layer rebuilt with weights"
                    ours = "ok (rebuilt)"
                ours_ok += 1
            except Exception as exc:  # noqa: BLE001 -- collected and reported per class
                ours = f"FAILED {type(exc).__name__}: {str(exc)[-160:]}"
                if flavour == "keras3" and name in REMOVED_IN_KERAS3:
                    # reviewed: no Keras 3 layer exists; the refusal must be typed and name the rule
                    assert isinstance(exc, UnsupportedFormatError) and "missing rule" in str(exc), ours
                    ours = f"refused (reviewed): {REMOVED_IN_KERAS3[name]}"
                elif flavour == "keras2" and name in manifest["layers"] and not hasattr(keras.layers, name):
                    # reviewed: a layer class added in Keras 3; the refusal must name it
                    assert isinstance(exc, (InvalidArgumentError, UnsupportedFormatError)) and name in str(exc), ours
                    ours = "refused (reviewed): class added in Keras 3, this Keras has none"
                elif flavour == "keras3" and name in manifest["layers"] and not hasattr(keras.layers, name):
                    # reviewed: a layer class a later Keras 3 release added; the refusal names it and
                    # the release (from the generated release table), and custom_objects as the way on
                    assert isinstance(exc, InvalidArgumentError) and f"Keras added {name} in 3." in str(exc) \
                        and "custom_objects" in str(exc), ours
                    ours = "refused (reviewed): class added in a later Keras 3, this Keras has none"
                elif native_loops and _release(keras) == "3.0" and name == "Dot":
                    # reviewed: Keras 3.0's Dot.build refuses the list of two shapes it is given
                    ours = "refused (reviewed): Keras 3.0 Dot.build bug"
                elif (flavour, name) not in KNOWN_UNTRANSLATABLE:
                    failures.append(f"{name}: {ours}")
            rows.append(f"{name:28} | native {native:24} | ckptcompat {ours}")
    finally:
        logging.disable(logging.NOTSET)
    print(f"\n{flavour} reading {env} ({manifest['keras_version']}): native {native_ok}/{n}, "
          f"ckptcompat {ours_ok}/{n}\n" + "\n".join(rows))
    assert n >= 60
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("env", ["tf221-tfkeras", "tf215", "tf221-keras3"])
def test_other_generation_lookup_file_migrated_loads_natively(env: str, tmp_path: Path) -> None:
    """``migrate`` into the running generation's own format: the other generation's adapted_lookup
    ``.keras`` (adapted tf_idf StringLookup, IntegerLookup and TextVectorization; native
    ``load_model`` of it fails across generations) loads in the running Keras's own ``load_model``
    with the writer's weights, vocabularies and outputs: vocabularies and idf weights travel in the
    layer config and the idf weights again where Keras loads them."""
    import ckptcompat

    if env not in _other_envs():
        pytest.skip(f"{env} is written by the running generation (or absent)")
    manifest = json.loads((LAYER_FIXTURES / env / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["compositions"]["adapted_lookup"]
    keras3 = _flavour() == "keras3"
    out = tmp_path / ("model.keras" if keras3 else "model.h5")
    ckptcompat.migrate(LAYER_FIXTURES / env / entry["keras"], out, to="keras3" if keras3 else "h5")
    model = _keras().models.load_model(str(out))
    got = sorted(_sha(w) for w in _generator().model_weights(model) if np.size(w))
    _check_restored(model, entry, got, "adapted_lookup (migrated)", env)
    assert _generator().vocabularies(model) == entry["vocabularies"]


#: (release, object) this release's own deserializer cannot read at all (checked at run time too)
NATIVE_OBJECT_FAILS: dict[tuple[str, str], str] = {
    (release, "initializers.Identity"): f"Keras {release}'s initializers.get knows no Identity (not in its "
                                        "ALL_OBJECTS): its own models with one fail to load too"
    for release in ("3.0", "3.1")}


def _native_object(keras: Any, family: str, entry: dict[str, Any]) -> bool:
    """Whether the running Keras's own ``<family>.get`` reads the object as the writer serialized it."""
    wanted = [lay for lay in entry["config"]["config"]["layers"] if lay["class_name"] == "Dense"][0]
    try:
        getattr(keras, family).get(wanted["config"][entry["argument"]])
        return True
    except Exception:  # noqa: BLE001 -- Keras raises anything here
        return False


def _plain(value: Any) -> Any:
    """A config value without serialization bookkeeping, tuples as lists, floats at float32 (tf-keras
    keeps a regularizer's factor as float32: its own config says 0.009999999776482582 for 0.01)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("module", "registered_name")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(np.float32(value))
    return value


@pytest.mark.parametrize("env", ["tf221-tfkeras", "tf221-keras3"])
def test_every_initializer_regularizer_and_constraint_rebuilds(env: str) -> None:
    """Every initializer, regularizer and constraint class of a real release (``objects.json``,
    enumerated by the generator), inside a Dense: it rebuilds here as the same class with the same
    settings, or a typed refusal names a class this Keras lacks."""
    from ckptcompat.names.configs.keras3_releases import later_keras3_classes
    from ckptcompat.resuming.build import model_from_config

    path = LAYER_FIXTURES / env / "objects.json"
    if env not in _other_envs() or not path.exists():
        pytest.skip(f"{env} is written by an earlier release of the running generation (or absent)")
    keras, flavour = _keras(), _flavour()
    written = json.loads(path.read_text(encoding="utf-8"))
    rows, failures, ok = [], [], 0
    for key, entry in sorted(written["objects"].items()):
        if not entry["built"]:
            rows.append(f"{key:36} not written: {entry['reason'][:80]}")
            continue
        family, name = key.split(".")
        try:
            model = model_from_config(entry["config"], flavour, keras, None, None)
            dense = [layer for layer in model.layers if hasattr(layer, entry["argument"])][0]
            got = getattr(dense, entry["argument"])
            wanted = [lay for lay in entry["config"]["config"]["layers"] if lay["class_name"] == "Dense"]
            settings = _plain(wanted[0]["config"][entry["argument"]]["config"])
            mine = _plain(got.get_config())
            same = {k: v for k, v in settings.items() if k in mine and mine[k] != v}
            assert getattr(getattr(keras, family), name, None) is type(got) or type(got).__name__ == name or \
                (name, type(got).__name__) == ("Orthogonal", "OrthogonalInitializer"), f"rebuilt as {type(got)}"
            assert not same, f"settings differ: {same} (rebuilt {mine})"
            ok += 1
            rows.append(f"{key:36} ok ({type(got).__name__})")
        except Exception as exc:  # noqa: BLE001 -- collected per class
            text = f"{type(exc).__name__}: {str(exc)[-200:]}"
            lacks = not hasattr(getattr(keras, family), name) or later_keras3_classes([name], keras.__version__)
            if lacks and isinstance(exc, (InvalidArgumentError, UnsupportedFormatError)) and name in str(exc):
                rows.append(f"{key:36} refused (reviewed): this Keras has no {name}")
                continue
            if (_release(keras), key) in NATIVE_OBJECT_FAILS and isinstance(exc, UnsupportedFormatError) \
                    and name in str(exc) and not _native_object(keras, family, entry):
                rows.append(f"{key:36} refused (reviewed): {NATIVE_OBJECT_FAILS[(_release(keras), key)]}")
                continue
            failures.append(f"{key}: {text}")
            rows.append(f"{key:36} FAILED {text}")
    print(f"\n{flavour} reading {env}'s objects ({written['keras_version']}): {ok} rebuilt\n" + "\n".join(rows))
    assert ok >= 15, "the enumeration is broken"
    assert not failures, "\n".join(failures)
