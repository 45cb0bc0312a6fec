"""Every built-in optimizer crosses Keras 2 <-> Keras 3, proven on files the real releases wrote.

The producer (``optimizer_producer.py``) runs in the OTHER generation's environment as a
subprocess: it enumerates that release's optimizer classes, trains 3 steps, saves ``.h5``
(and ``.keras``) and the live truth. Here, in the consumer environment, ``ckptcompat.resume``
must restore weights, every slot, iterations and the learning rate bitwise; slots one
generation has and the other has not must be exactly the inert ones (SGD momentum at 0,
...); and one more training step must work. A table optimizer x direction is printed.

Producer environments (skipped with the reason when absent): the dev env (Keras 3), tf-keras
2.21 (``TF_USE_LEGACY_KERAS=1``), TF 2.15. Files go to ``.matrix/optimizers/`` (ignored).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptcompat.names.slot_meaning import is_inert
from ckptcompat.names.variables import canonical_optimizer_class, canonical_slot

ROOT = Path(__file__).resolve().parents[2]
PRODUCER = Path(__file__).with_name("optimizer_producer.py")
OUT = ROOT / ".matrix" / "optimizers"

#: producer label -> (candidate pythons: the matrix env first, then this machine's; extra env; generation)
PRODUCERS: dict[str, tuple[tuple[str, ...], dict[str, str], str]] = {
    "keras-3.15": ((".matrix/tf221-keras3/bin/python", ".venv/bin/python"), {}, "keras3"),
    "tf-keras-2.21": ((".matrix/tf221-tfkeras/bin/python",), {"TF_USE_LEGACY_KERAS": "1"}, "keras2"),
    "tf-2.15": ((".matrix/tf215/bin/python",), {}, "keras2"),
}
#: the producers run other environments' pythons: opt-in, since the version matrix builds its
#: environments concurrently (``CKPTCOMPAT_CROSSGEN=1`` after ``./run.sh matrix`` has built them)
OPT_IN = "CKPTCOMPAT_CROSSGEN"


def _require_opt_in() -> None:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"set {OPT_IN}=1 to run the producers of the other generation's environments")

SAMPLE = ROOT / "fixtures" / "optimizers"


def _consumer_generation() -> str:
    from ckptcompat.runtime import detect

    return detect()


def _produce(label: str) -> Path:
    candidates, env, _ = PRODUCERS[label]
    found = [ROOT / c for c in candidates if (ROOT / c).exists()]
    if not found:
        pytest.skip(f"producer environment {label} is not installed (looked for {', '.join(candidates)})")
    python = str(found[0])
    out = OUT / label
    if (out / "manifest.json").exists():
        return out
    full_env = {**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    if not env:
        full_env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([python, str(PRODUCER), str(out)], env=full_env, capture_output=True,
                          text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"producer {label} failed:\n{proc.stderr[-3000:]}")
    return out


def _live_slots(model: Any) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    from ckptcompat.runtime import capture

    state = capture(model)
    assert state.optimizer is not None
    return state.optimizer.class_name, {v: dict(per) for v, per in state.optimizer.slots.items()}


def check_case(case_dir: Path, filename: str) -> str:
    """Resume ``case_dir/filename`` here and compare with the producer's truth; 'ok' or raise."""
    import ckptcompat

    case = json.loads((case_dir / "case.json").read_text())
    truth = dict(np.load(case_dir / "truth.npz"))
    cls = canonical_optimizer_class(case["class"])
    run = ckptcompat.resume(str(case_dir / filename))
    model = run.model
    for key, value in truth.items():
        if key.startswith("w/"):
            _, layer, weight = key.split("/")
            live = {w.name.split(":")[0].rsplit("/", 1)[-1]: w for w in model.get_layer(layer).weights}
            got = np.asarray(live[weight].numpy())
            assert got.dtype == value.dtype and np.array_equal(got, value), f"weight {layer}/{weight} differs"
    live_cls, live = _live_slots(model)
    assert live_cls == cls
    hyper = {**case["optimizer_config"], **case["config"]}
    expected: dict[str, dict[str, np.ndarray]] = {}
    for key, value in truth.items():
        if key.startswith("s/"):
            _, layer, weight, raw = key.split("/")
            expected.setdefault(f"{layer}/{weight}", {})[canonical_slot(cls, raw)] = value
    for var in set(expected) | set(live):
        want, got = expected.get(var, {}), live.get(var, {})
        for slot in set(want) | set(got):
            if slot in want and slot in got:
                g = np.asarray(got[slot]).astype(want[slot].dtype)
                assert np.array_equal(g, want[slot]), f"slot {var}/{slot} differs"
            elif slot in want:  # the producer's slot was dropped: only an inert or all-zero one may be
                assert is_inert(cls, slot, hyper) or not np.any(want[slot]), \
                    f"slot {var}/{slot} of the producer was lost"
            else:  # created here: must be zeros, and only where the producer had none by meaning
                assert not np.any(got[slot]), f"slot {var}/{slot} created non-zero"
    opt = getattr(model.optimizer, "inner_optimizer", None) or model.optimizer
    iterations = int(np.asarray(opt.iterations.numpy() if hasattr(opt.iterations, "numpy") else opt.iterations))
    assert iterations == int(truth["iterations"]), f"iterations {iterations} != {int(truth['iterations'])}"
    lr = opt.learning_rate
    lr = np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr, dtype=np.float32)
    assert np.array_equal(lr, truth["learning_rate"]), f"learning rate {lr} != {truth['learning_rate']}"
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 4)).astype("float32")
    y = rng.normal(size=(4, 3)).astype("float32")
    before = np.asarray(model.get_layer("d2").weights[0].numpy())
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = np.asarray(model.get_layer("d2").weights[0].numpy())
    iterations2 = int(np.asarray(opt.iterations.numpy() if hasattr(opt.iterations, "numpy") else opt.iterations))
    assert iterations2 == iterations + 1 and np.all(np.isfinite(after)) and not np.array_equal(before, after), \
        "one more training step did not work"
    return "ok"


def _table(label: str, results: dict[str, str]) -> str:
    lines = [f"optimizer resume table: producer {label} -> consumer {_consumer_generation()}",
             f"{'case / file':60s} result"]
    lines += [f"{k:60s} {v}" for k, v in sorted(results.items())]
    return "\n".join(lines)


def _sample_cases() -> list[tuple[str, str, str]]:
    out = []
    for manifest in sorted(SAMPLE.glob("*/manifest.json")):
        info = json.loads(manifest.read_text())
        for case in info["cases"]:
            for filename in json.loads((manifest.parent / case / "case.json").read_text())["files"]:
                out.append((info["generation"], f"{manifest.parent.name}/{case}", filename))
    return out


@pytest.mark.framework
@pytest.mark.parametrize("generation,case,filename", _sample_cases())
def test_committed_sample_resumes_in_the_other_generation(generation: str, case: str, filename: str) -> None:
    """Plain SGD (workflow 2) and Nadam (non-slot product) files written by the real releases."""
    pytest.importorskip("tensorflow")
    if generation == _consumer_generation():
        pytest.skip(f"{case} was written by this generation ({generation})")
    assert check_case(SAMPLE / case, filename) == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(PRODUCERS))
def test_every_optimizer_crosses_generations(label: str) -> None:
    _require_opt_in()
    pytest.importorskip("tensorflow")
    consumer = _consumer_generation()
    if PRODUCERS[label][2] == consumer:
        pytest.skip(f"{label} is the same generation as this environment ({consumer})")
    out = _produce(label)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cases"], f"producer {label} wrote no case"
    results: dict[str, str] = {}
    for case in manifest["cases"]:
        for filename in json.loads((out / case / "case.json").read_text())["files"]:
            try:
                results[f"{case} {filename}"] = check_case(out / case, filename)
            except Exception as exc:  # noqa: BLE001 - collected into the table, then failed on
                results[f"{case} {filename}"] = f"FAIL {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
    for note in sorted(out.glob("*/*.skipped.txt")) + sorted(out.glob("*/error.txt")):
        what = note.name.replace(".skipped.txt", "") if note.name != "error.txt" else "(case)"
        results[f"{note.parent.name} {what}"] = "not written by the producer: " + \
            note.read_text().strip().splitlines()[-1][:120]
    print(_table(label, results), file=sys.stderr)
    failed = {k: v for k, v in results.items() if v != "ok" and not v.startswith("not written")}
    assert not failed, "\n" + _table(label, failed)


@pytest.mark.slow
def test_workflow_2_example_keras2_run_resumes_on_keras3(tmp_path: Path) -> None:
    """examples/2_ctrl_c_lr_drops.py: phase 1 killed under tf-keras, phase 2 here (Keras 3) at a lower rate."""
    _require_opt_in()
    pytest.importorskip("tensorflow")
    if _consumer_generation() != "keras3":
        pytest.skip("the consumer side of this test is Keras 3")
    candidates, env, _ = PRODUCERS["tf-keras-2.21"]
    found = [ROOT / c for c in candidates if (ROOT / c).exists()]
    if not found:
        pytest.skip(f"tf-keras environment not installed (looked for {', '.join(candidates)})")
    script = str(ROOT / "examples" / "2_ctrl_c_lr_drops.py")
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.run([str(found[0]), script, "--tiny", "--workdir", str(tmp_path), "--epochs", "4",
                            "--stop-after", "2"], env={**base, **env}, capture_output=True, text=True, timeout=600)
    assert first.returncode == -9, first.stderr[-3000:]
    base.pop("TF_USE_LEGACY_KERAS", None)
    second = subprocess.run([sys.executable, script, "--tiny", "--workdir", str(tmp_path), "--epochs", "4",
                             "--lr", "0.01"], env=base, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["started_at"], summary["finished_epoch"]) == (2, 4)
    assert summary["learning_rate"] == pytest.approx(0.01)
