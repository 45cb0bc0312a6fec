"""Generate the optimizer-layout table of one framework release (run in each matrix env).

Enumerates the optimizer classes the running release ships (every ``optimizers`` member
that subclasses the base Optimizer, plus the legacy ``OptimizerV2`` family on Keras 2 and
the loss-scale wrapper), builds each on a tiny model (``Dense(2)`` on 3 features: a 2-D
``kernel`` and a 1-D ``bias``), trains one step and records every optimizer variable in
creation order: raw name, the model variable it belongs to (if any), the raw slot name,
the attribute holding it, and its shape relative to the model variable. Flag variants
(``amsgrad``, ``centered``, ``nesterov``, ``momentum`` > 0) are found from each class's
default config, not listed by hand.

Usage (from the repository root)::

    .venv/bin/python tools/optimizer_layouts.py                       # Keras 3
    TF_USE_LEGACY_KERAS=1 .matrix/tf221-tfkeras/bin/python tools/optimizer_layouts.py
    .matrix/tf215/bin/python tools/optimizer_layouts.py
    .matrix/tf115-py37/bin/python tools/optimizer_layouts.py --standalone  # standalone Keras 2.3.1

writes ``ckptcompat/names/optimizer_layouts/<release>.json`` (``--out`` to override).
The output is GENERATED: never edit it by hand, rerun this tool. Every Keras 3 minor release
(its newest patch on the package index; ``--wheels DIR`` for wheels already downloaded), each
run from its own wheel on ``PYTHONPATH`` under one TensorFlow 2.16 environment::

    python tools/optimizer_layouts.py --keras3-releases .matrix/tf216-keras38/bin/python
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_FLAG_VARIANTS = {"amsgrad": True, "centered": True, "nesterov": True}
_MOMENTUM_VALUE = 0.5
#: attributes that collect every variable of an optimizer (not one kind of state)
_CONTAINERS = {"_variables", "_trainable_variables", "_non_trainable_variables", "_weights",
               "_layers", "_tracked", "_self_tracked_trackables", "_trainable_weights",
               "_non_trainable_weights", "_var_list", "_variables_created"}


def _keras() -> tuple[Any, str, str]:
    """(keras module, generation, release label)."""
    import tensorflow as tf

    tf_version = tf.__version__
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tf_keras as keras

        return keras, "keras2", f"tf-keras-{keras.__version__}"
    major = int(tf_version.split(".")[0]), int(tf_version.split(".")[1])
    if major <= (2, 15):
        return tf.keras, "keras2", f"tf-{tf_version}"
    import keras

    return keras, "keras3", f"keras-{keras.__version__}"


def _families(keras: Any, generation: str) -> list[tuple[str, Any, list[type]]]:
    """(family, base class, optimizer classes) for every optimizer family the release ships."""
    fams: list[tuple[str, Any, list[type]]] = []

    def members(module: Any, base: type) -> list[type]:
        out = []
        for name in sorted(dir(module)):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, base) and obj is not base and obj.__name__ == name:
                out.append(obj)
        return out

    base = keras.optimizers.Optimizer
    if generation == "keras2" and "optimizer_v2" in base.__module__:  # TF <= 2.10: OptimizerV2 only
        return [("legacy", base, members(keras.optimizers, base))]
    fams.append(("keras3" if generation == "keras3" else "new", base, members(keras.optimizers, base)))
    legacy = getattr(keras.optimizers, "legacy", None)
    if generation == "keras2" and legacy is not None and hasattr(legacy, "Optimizer"):
        fams.append(("legacy", legacy.Optimizer, members(legacy, legacy.Optimizer)))
    return fams


def _variants(cls: type) -> list[dict[str, Any]]:
    """The default config plus each flag switched on, found from the default config."""
    try:
        defaults = cls().get_config()
    except Exception:  # noqa: BLE001 - a class that cannot be built with defaults is skipped
        return []
    out: list[dict[str, Any]] = [{}]
    for key, value in _FLAG_VARIANTS.items():
        if defaults.get(key) is False:
            extra = {key: value}
            if key == "nesterov":
                extra["momentum"] = _MOMENTUM_VALUE
            out.append(extra)
    if defaults.get("momentum") in (0, 0.0):
        out.append({"momentum": _MOMENTUM_VALUE})
        if defaults.get("centered") is False:
            out.append({"momentum": _MOMENTUM_VALUE, "centered": True})
    return out


def _tiny_model(keras: Any) -> Any:
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, name="dense")(inputs)
    return keras.Model(inputs, outputs)


def _name(var: Any) -> str:
    return str(getattr(var, "path", None) or var.name).split(":")[0]


def _attr_index(opt: Any) -> dict[int, tuple[str, int]]:
    """id(variable) -> (attribute, index) for every list-of-variables attribute of ``opt``."""
    out: dict[int, tuple[str, int]] = {}
    for attr, value in vars(opt).items():
        if attr in _CONTAINERS:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ in ("ListWrapper", "TrackedList"):
            for i, item in enumerate(value):
                if item is not None and hasattr(item, "shape"):
                    out.setdefault(id(item), (attr, i))
        elif hasattr(value, "shape") and hasattr(value, "assign"):
            out.setdefault(id(value), (attr, -1))
    return out


def _raw_slot(name: str, ref: str, family: str) -> str:
    """Raw slot name of optimizer variable ``name`` that belongs to model variable ``ref``."""
    parts = name.split("/")
    if family == "keras3":
        base = parts[-1]
        flat = ref.replace("/", "_")
        return base[len(flat) + 1:] if base.startswith(flat + "_") else base
    before, _, after = f"/{name}/".partition(f"/{ref}/")
    if family == "new":  # [LSO/]Adam/m/dense/kernel: the component before the variable path
        return before.rsplit("/", 1)[-1] or parts[-1]
    return after.strip("/") or parts[-1]  # legacy: Adam/dense/kernel/m


def _describe(keras: Any, family: str, cls: type, config: dict[str, Any], wrap: bool) -> dict[str, Any]:
    model = _tiny_model(keras)
    opt = cls(**config)
    if wrap:
        lso = getattr(keras.optimizers, "LossScaleOptimizer", None) or keras.mixed_precision.LossScaleOptimizer
        opt = lso(opt)
    model.compile(optimizer=opt, loss="mse")
    x = np.arange(12, dtype="float32").reshape(4, 3) / 10
    y = np.ones((4, 2), dtype="float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    inner = getattr(opt, "inner_optimizer", None) or opt
    model_vars = [(_name(v), tuple(int(d) for d in v.shape)) for v in model.trainable_variables]
    variables = opt.variables() if callable(opt.variables) else opt.variables
    where = _attr_index(inner)
    outer_where = _attr_index(opt) if inner is not opt else {}
    records = []
    for var in variables:
        name = _name(var)
        shape = [int(d) for d in var.shape]
        rec: dict[str, Any] = {"name": name, "shape": shape, "dtype": str(np.dtype(var.dtype.name if hasattr(var.dtype, "name") else str(var.dtype)))}
        attr = where.get(id(var)) or outer_where.get(id(var))
        if attr is not None:
            rec["attr"], rec["index"] = attr[0], attr[1]
        ref = None
        for i, (ref_name, ref_shape) in enumerate(model_vars):
            flat = ref_name.replace("/", "_")
            if f"/{ref_name}/" in f"/{name}/" or name.rsplit("/", 1)[-1].startswith(flat + "_"):
                ref = i
                break
        by_attr = False
        if ref is None and attr is not None and attr[1] >= 0 \
                and len(getattr(inner, attr[0], ())) == len(model_vars):
            ref, by_attr = attr[1], True  # e.g. Adafactor's factored r/c, named after the variable
        if ref is not None:
            rec["var"] = ref
            rec["slot"] = attr[0].lstrip("_") if by_attr and attr else _raw_slot(name, model_vars[ref][0], family)
            rec["shape_rel"] = "same" if tuple(shape) == model_vars[ref][1] else shape
        else:
            rec["slot"] = None
        records.append(rec)
    return {"model_variables": [{"name": n, "shape": list(s)} for n, s in model_vars],
            "variables": records}


_INDEXED_NAME = re.compile(r"(?:^|/)([A-Za-z]+(?:_[A-Za-z]+)*)_(\d+)(?:_\d+)?$")  # training/Adam/m_0_1


def _describe_standalone(keras: Any, cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """Standalone Keras (2.x on TF 1): ``optimizer.weights`` after one step, in order; a slot is
    ``<slot>_<index of the trainable weight>`` (``m_0``), the rest are found by attribute."""
    from keras import backend as K

    inputs = keras.layers.Input((3,))
    model = keras.models.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    opt = cls(**config)
    model.compile(optimizer=opt, loss="mse")
    model.fit(np.arange(12, dtype="float32").reshape(4, 3) / 10, np.ones((4, 2), "float32"), batch_size=4,
              verbose=0)
    model_vars = [(_name(v), tuple(int(d) for d in K.int_shape(v))) for v in model.trainable_weights]
    by_attr = {id(v): attr for attr, v in vars(opt).items() if hasattr(v, "shape") and attr != "weights"}
    records = []
    for var in opt.weights:
        shape = [int(d) for d in K.int_shape(var)]
        rec: dict[str, Any] = {"name": _name(var), "shape": shape, "dtype": str(np.dtype(K.dtype(var)))}
        indexed = _INDEXED_NAME.search(rec["name"])
        if indexed and int(indexed.group(2)) < len(model_vars):
            ref = int(indexed.group(2))
            rec.update(var=ref, slot=indexed.group(1),
                       shape_rel="same" if tuple(shape) == model_vars[ref][1] else shape)
        else:
            rec.update(slot=None, attr=by_attr.get(id(var)))
        records.append(rec)
    return {"model_variables": [{"name": n, "shape": list(s)} for n, s in model_vars], "variables": records}


def _table(release: str, generation: str, tensorflow: str) -> dict[str, Any]:
    """An empty table of one release (its families are filled in by the caller)."""
    return {"GENERATED": "by tools/optimizer_layouts.py; do not edit, rerun the tool", "release": release,
            "generation": generation, "tensorflow": tensorflow, "python": sys.version.split()[0], "families": {}}


def generate_standalone() -> dict[str, Any]:
    """The table of standalone Keras (``import keras``, 2.x on TF 1): family ``standalone``."""
    import keras
    import tensorflow as tf

    out = _table(f"standalone-keras-{keras.__version__}", "standalone", tf.__version__)
    base = keras.optimizers.Optimizer
    fam: dict[str, Any] = {"base": f"{base.__module__}.{base.__qualname__}", "classes": {}}
    for cls in _families(keras, "standalone")[0][2]:
        entries = []
        for config in _variants(cls):
            try:
                desc = _describe_standalone(keras, cls, config)
            except Exception as exc:  # noqa: BLE001 - recorded, not hidden
                desc = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            entries.append({"config": config, "loss_scale": False, **desc})
        if entries:
            fam["classes"][cls.__name__] = entries
    out["families"]["standalone"] = fam
    return out


def generate() -> dict[str, Any]:
    keras, generation, release = _keras()
    import tensorflow as tf

    out = _table(release, generation, tf.__version__)
    for family, base, classes in _families(keras, generation):
        fam: dict[str, Any] = {"base": f"{base.__module__}.{base.__qualname__}", "classes": {}}
        for cls in classes:
            entries = []
            for config in _variants(cls):
                for wrap in ((False, True) if family != "legacy" and not config else (False,)):
                    try:
                        desc = _describe(keras, family, cls, config, wrap)
                    except Exception as exc:  # noqa: BLE001 - recorded, not hidden
                        desc = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                    entries.append({"config": config, "loss_scale": wrap, **desc})
            fam["classes"][cls.__name__] = entries
            print(f"{release} {family} {cls.__name__}: {len(entries)} variant(s)", file=sys.stderr)
        out["families"][family] = fam
    return out


def _every_keras3_release(python: str, wheel_dir: str | None) -> None:
    """Run this tool under ``python`` once per Keras 3 release, that release's wheel first on its path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from keras3_releases import _download, _index_versions, _wheels

    with tempfile.TemporaryDirectory() as tmp:
        wheels = _wheels(Path(wheel_dir)) if wheel_dir else _download(_index_versions(), Path(tmp))
        newest = {version.rsplit(".", 1)[0]: version for version in wheels}  # sorted: the newest patch last
        wheels = {version: wheels[version] for version in newest.values()}
        for version, wheel in wheels.items():
            unpacked = Path(tmp) / f"keras-{version}"
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
            env = {**os.environ, "PYTHONPATH": str(unpacked), "KERAS_BACKEND": "tensorflow"}
            env.pop("TF_USE_LEGACY_KERAS", None)
            subprocess.run([python, __file__], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output file (default ckptcompat/names/optimizer_layouts/<release>.json)")
    parser.add_argument("--keras3-releases", metavar="PYTHON",
                        help="generate every Keras 3 release's table, each run by PYTHON (TensorFlow 2.16)")
    parser.add_argument("--wheels", help="with --keras3-releases: a folder of keras-3.*.whl (default: download)")
    parser.add_argument("--standalone", action="store_true", help="standalone Keras 2.x (import keras) on TF 1")
    args = parser.parse_args()
    if args.keras3_releases:
        _every_keras3_release(args.keras3_releases, args.wheels)
        return
    table = generate_standalone() if args.standalone else generate()
    path = Path(args.out) if args.out else (Path(__file__).resolve().parent.parent / "ckptcompat" / "names"
                                            / "optimizer_layouts" / f"{table['release']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    print(path)


if __name__ == "__main__":
    main()
