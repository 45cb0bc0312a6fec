"""Producer for the cross-generation optimizer test: run with the PRODUCING release's python.

For every optimizer class the running release ships (enumerated from ``optimizers``: the
members that subclass its base Optimizer, plus flag variants found from each default
config), trains a tiny model 3 steps and saves it natively as ``model.h5`` and, where the
release writes it, ``model.keras``; next to them ``truth.npz`` holds the producer's own
values read from the live objects (never through ckptcompat): ``w/<layer>/<weight>``,
``s/<layer>/<weight>/<raw slot>``, ``iterations``, ``learning_rate``, plus ``case.json``
(class, config, release). Usage: ``python optimizer_producer.py OUT_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from optimizer_layouts import _attr_index, _families, _keras, _variants  # noqa: E402
from ckptcompat._compat import unlink_if_present

_SKIP = {"LossScaleOptimizer", "MultiOptimizer", "Muon", "ScheduleFreeAdamW", "Lamb"}


def _slot_raw(opt_var_name: str, ref: str) -> str | None:
    name = opt_var_name.split(":")[0]
    flat = ref.replace("/", "_") + "_"
    short = name.rsplit("/", 1)[-1]
    if short.startswith(flat):
        return short[len(flat):]
    before, found, after = f"/{name}/".partition(f"/{ref}/")
    if not found:
        return None
    if after.strip("/"):  # OptimizerV2: Adam/d1/kernel/m
        return after.strip("/")
    return before.rsplit("/", 1)[-1] or None  # tf.keras 2.11+: Adam/m/d1/kernel


def _produce(keras, generation, family, cls, config, out: Path) -> None:
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh", name="d1"),
                              keras.layers.Dense(3, name="d2")])
    opt = cls(learning_rate=0.0125, **config)
    model.compile(optimizer=opt, loss="mse")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = rng.normal(size=(12, 3)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, np.ndarray] = {}
    refs = []
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split(":")[0].rsplit("/", 1)[-1]
            truth[f"w/{layer.name}/{short}"] = np.asarray(w.numpy())
            refs.append((f"{layer.name}/{short}", str(getattr(w, "path", None) or w.name).split(":")[0]))
    variables = opt.variables() if callable(opt.variables) else opt.variables
    where = _attr_index(opt)
    for var in variables:
        name = str(getattr(var, "path", None) or var.name).split(":")[0]
        for canon, ref in refs:
            raw = _slot_raw(name, ref)
            if raw:
                truth[f"s/{canon}/{raw}"] = np.asarray(var.numpy())
                break
        else:  # a slot not named after its variable (Keras 3 Adafactor r/c): its list position
            attr, index = where.get(id(var), (None, -1))
            if attr is not None and index >= 0 and len(getattr(opt, attr)) == len(refs):
                truth[f"s/{refs[index][0]}/{attr.lstrip('_')}"] = np.asarray(var.numpy())
    iterations = opt.iterations
    truth["iterations"] = np.asarray(int(np.asarray(iterations.numpy() if hasattr(iterations, "numpy") else iterations)))
    lr = opt.learning_rate
    truth["learning_rate"] = np.asarray(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr), dtype=np.float32)
    files = []
    # .keras first: Keras 3's legacy .h5 save drops the optimizer from the live compile config
    for filename in ("model.keras", "model.h5"):
        try:
            if family == "legacy" and filename == "model.keras":
                raise RuntimeError("Keras 2 .keras files do not store legacy optimizer state")
            model.save(out / filename)
            files.append(filename)
        except Exception as exc:  # noqa: BLE001 - this release cannot write it: recorded
            (out / f"{filename}.skipped.txt").write_text(f"{type(exc).__name__}: {exc}"[:2000])
            unlink_if_present(out / filename)
    np.savez(out / "truth.npz", **truth)
    full = {k: v for k, v in opt.get_config().items() if isinstance(v, (bool, int, float, str, type(None)))}
    (out / "case.json").write_text(json.dumps({"class": cls.__name__, "family": family, "config": config,
                                                "optimizer_config": full, "files": files}))


def main() -> None:
    root = Path(sys.argv[1])
    keras, generation, release = _keras()
    cases = []
    for family, _base, classes in _families(keras, generation):
        for cls in classes:
            if cls.__name__ in _SKIP:
                continue
            for config in _variants(cls):
                tag = "_".join(f"{k}{v}" for k, v in sorted(config.items())) or "default"
                case = f"{family}-{cls.__name__}-{tag}"
                try:
                    _produce(keras, generation, family, cls, config, root / case)
                    cases.append(case)
                except Exception:  # noqa: BLE001 - reported in the manifest
                    (root / case).mkdir(parents=True, exist_ok=True)
                    (root / case / "error.txt").write_text(traceback.format_exc())
    (root / "manifest.json").write_text(json.dumps({"release": release, "generation": generation,
                                                    "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
