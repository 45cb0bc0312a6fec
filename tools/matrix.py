#!/usr/bin/env python3
"""Run the test suite in every environment of the TensorFlow/Keras version matrix.

Each environment is a fresh virtual environment made with uv under ``.matrix/<name>``.
Two phases: first every environment is set up and runs its fixture generators with that
version's native APIs (writing into ``.matrix/<name>/fixtures``: the whole generated corpus
wherever ``fixtures/<name>/`` commits one or a sample of it); then every environment runs its
tests, the resume table reading every corpus of phase 1 besides the committed fixtures
($CKPTCOMPAT_FRESH_CORPORA). The run ends with a table environment x passed/skipped/failed and
exits 1 if any failed.

    python tools/matrix.py                 # all environments
    python tools/matrix.py -e tf212 -e tf221-keras3
    python tools/matrix.py --list
    python tools/matrix.py -j 1            # one environment at a time
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX_DIR = ROOT / ".matrix"


@dataclass(frozen=True)
class Environment:
    name: str
    packages: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""
    #: installed with the venv's own pip BEFORE the rest (find-links from pip's config: the
    #: local CPU wheel, never the CUDA build uv would resolve); ``forbid``: packages that
    #: must not end up installed (setup fails)
    pip_first: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    #: the fixture generator of this environment; pytest paths/-m of a subset run (empty: all)
    generator: str = "fixtures/generate.py"
    pytest_subset: tuple[str, ...] = ()
    #: what the subset leaves out and where that runs instead (printed by --list, in the README)
    subset_note: str = ""
    #: the producer whose committed corpus sample this environment regenerates whole (its core
    #: fixtures come from another env, or need TensorFlow: Keras 3 on JAX / torch writes the corpus
    #: only): ``fixtures/generate.py --env NAME --add-corpus``
    corpus_env: str = ""
    #: rough minutes on 2 cores: the longest environments start first (-j N)
    minutes: int = 5
    #: the interpreter (major.minor): 3.11 from PATH, older/newer ones from pyenv (python_for)
    python: str = "3.11"


#: the end-to-end suites (SIGKILL + resume, the examples, multi-worker) that take ~12 of a Keras 2
#: environment's ~25 minutes. The newest Keras 2 (tf221-tfkeras) runs them all; the oldest
#: (tf24-py38, tf211-py310) the SIGKILL/exact-resume ones (_KERAS2_EDGES), one case of each
#: kind; tf212 and tf215 none.
_KERAS2_EDGES = ("tests/matrix/test_callbacks_sigkill.py", "tests/matrix/test_resume_exact.py")
_KERAS2_NEWEST = ("tests/matrix/test_examples.py", "tests/matrix/test_checkpoint_rerun.py",
                  "tests/matrix/test_multiworker.py")
_END_TO_END = _KERAS2_EDGES + _KERAS2_NEWEST

#: the tests that need no framework (readers, store, CLI, hostile input: ~7,000 of ~7,800) give
#: the same answer whatever TensorFlow/Keras is installed; they run in the README test command
#: (Python 3.11, the newest numpy/h5py) and in noframework-py37 (the floor). The framework
#: environments run what needs or compares with their framework:
_FRAMEWORK_TESTS = ("-m", "framework or keras2 or keras3 or backend or slow or fresh_fixtures")

#: the SIGKILL suites' other cases (whole epochs, a plain save_freq), the demo and the TF1
#: workflow on the releases between the edges: the newest of each generation runs them all
_EDGE_CASES_ELSEWHERE = tuple(f"--deselect=tests/matrix/{case}" for case in (
    "test_callbacks_sigkill.py::test_sigkill_resume_matches_uninterrupted[epochs]",
    "test_resume_exact.py::test_sigkill_resume_is_bitwise_exact[epoch]",
    "test_resume_exact.py::test_sigkill_resume_is_bitwise_exact[batch]"))
_DEMO = "--deselect=tests/cli/test_demo.py::test_demo_resumes_bitwise"
_TF1_WORKFLOW = "--deselect=tests/matrix/test_tf1_workflow4.py"
#: TF1-style graph execution: natively in tf115-py37, through tf.compat.v1 in tf221-tfkeras
_GRAPH_MODE = "--deselect=tests/matrix/test_graph_mode.py"
#: the TF1 session workflow and example use no Keras: tf221-keras3 runs them on the TensorFlow
#: (2.21) of tf221-tfkeras
_TF1_ON_TF221 = (_TF1_WORKFLOW, "--deselect=tests/matrix/test_examples.py::test_4_tf1_iteration_early_stopping")

#: what an old-stack consumer runs: every committed and freshly generated fixture resumed
#: (weights, slots, iterations, learning rate, epoch compared), the generator's reproducibility,
#: and the real public checkpoints, native vs ckptcompat
_OLD_CONSUMER = ("tests/matrix/test_resume_table.py", "tests/matrix/test_generated_fixtures.py",
                 "tests/corpora/test_real_checkpoints.py", "tests/matrix/test_subclassed_corpus.py",
                 "tests/matrix/test_save_walk_corpus.py", "tests/matrix/test_finetuned_corpus.py",
                 "tests/matrix/test_optimizer_tables_live.py")
_OLD_CONSUMER_NOTE = ("the resume table (every producer's fixtures, and this release's own, generated "
                      "here by fixtures/generate_legacy.py, with the whole corpus where a sample is committed), the "
                      "generator check, the real "
                      "checkpoints, every Keras 3 producer's subclassed models and LoRA / int8 fine-tuned models, and "
                      "Keras 3's own pairing (the save walk) "
                      "on every Keras 3 corpus file (Keras 3 consumers), the release's optimizer-layout table "
                      "checked against its own optimizers; the rest runs on the Python 3.11 rows")
#: a newer Python under the packages of tf221-keras3: what the Python changes (every file read and
#: resumed, the real checkpoints, this Python's own corpus); Keras 3's own pairing and the fine-tuned
#: corpora are the same Keras release's behaviour, run in tf221-keras3
_SAME_KERAS_AS_TF221 = ("tests/matrix/test_save_walk_corpus.py", "tests/matrix/test_finetuned_corpus.py")
_NEW_PYTHON_CONSUMER = tuple(t for t in _OLD_CONSUMER if t not in _SAME_KERAS_AS_TF221)
_NEW_PYTHON_CONSUMER_NOTE = ("the resume table (every producer's fixtures, and this Python's own corpus, generated "
                             "here by fixtures/generate_legacy.py), the generator check, the real checkpoints, every "
                             "Keras 3 producer's subclassed models and the optimizer-layout table; Keras 3's own "
                             "pairing and the fine-tuned corpora (the same Keras 3.15.1) and the rest run in "
                             "tf221-keras3 and the Python 3.11 rows")
#: the old TF 2 consumers also run the callbacks' suite, the data objects, the TF1 conversions and
#: one SIGKILL/exact-resume case of each kind (the Keras 2 end-to-end edges; the other cases run
#: in tf221-tfkeras)
_OLD_TF2_CONSUMER = (*_OLD_CONSUMER, "tests/callbacks", "tests/data/test_data.py", "tests/tf1",
                     "tests/resuming/test_resume_decay.py", "tests/resuming/test_resume_product_decay.py",
                     "tests/resuming/test_resume_loss_scale.py",
                     "tests/formats/test_keras_h5_optimizer_v2.py",
                     *_KERAS2_EDGES, *_EDGE_CASES_ELSEWHERE)
_OLD_TF2_CONSUMER_NOTE = (_OLD_CONSUMER_NOTE[:-len("; the rest runs on the Python 3.11 rows")]
                          + ", the callbacks, the data objects, the TF1 conversions, Keras 2's decay, Nadam "
                          "schedule and mixed-precision .h5 resumed into OptimizerV2, a store's .h5 loaded by its own "
                          "load_model and one SIGKILL/"
                          "exact-resume case of each kind (the other cases run in tf221-tfkeras); the rest "
                          "runs on the Python 3.11 rows")
#: what the TF 1.15 consumer runs: Keras 2 and 3 files of other generations resumed into live
#: graph-mode tf.keras models, Checkpoint and TF1 Saver runs SIGKILLed and resumed bitwise
_TF1_CONSUMER = ("tests/matrix/test_resume_table.py", "tests/matrix/test_generated_fixtures.py",
                 "tests/matrix/test_graph_mode.py",
                 "tests/matrix/test_tf1_workflow4.py", "tests/matrix/test_standalone_keras.py",
                 "tests/data/test_data.py", "tests/tf1", "tests/matrix/test_finetuned_corpus.py",
                 "tests/matrix/test_optimizer_tables_live.py", "tests/corpora/test_keras1_real_files.py")
_TF1_CONSUMER_NOTE = ("the resume table (every producer's fixtures into graph-mode tf.keras 2.2.4-tf; tf.keras "
                      "2.2.4-tf's whole corpus of every optimizer and the layer zoo generated here, for every "
                      "consumer, and checked against its committed sample), "
                      "graph-mode resume of other generations' files into tf.keras and standalone Keras "
                      "2.3.1 models, Checkpoint and TF1 Saver runs SIGKILLed and resumed bitwise, every "
                      "standalone Keras optimizer resumed bitwise, the TF1 early-stopping workflow, the "
                      "data objects, the TF1 conversions, every Keras 3 producer's LoRA / int8 "
                      "fine-tuned models, the tf.keras 1.15 and standalone Keras 2.3.1 optimizer-layout "
                      "tables checked against their own optimizers, and every real Keras 1 model read as "
                      "Keras 2.3.1's own loading converts it")
_FRAMEWORK_NOTE = "the tests that need or compare with a framework (the framework-free ones run in the README test command and noframework-py37)"


ENVIRONMENTS: tuple[Environment, ...] = (
    Environment("tf212", ("tensorflow-cpu==2.12.1",),
                description="TF 2.12 with its bundled Keras 2.12 (first release on Python 3.11)", minutes=5,
                pytest_subset=(*_OLD_CONSUMER, "tests/runtime/test_runtime.py",
                               "tests/formats/test_formats_saved_model.py"),
                subset_note="the resume table (every producer's fixtures, and this release's own, generated "
                            "here), the generator check, the real checkpoints, the flavour's capture/apply "
                            "round trips, the SavedModels (its own generated here) and its optimizer-layout table; the other framework tests run in tf211-py310 and tf221-tfkeras (the "
                            "Keras 2 releases either side: callbacks, data objects, SIGKILL suites)"),
    Environment("tf215", ("tensorflow-cpu==2.15.1",),
                description="TF 2.15, last release with Keras 2 as tf.keras", minutes=5,
                generator="fixtures/generate.py", pytest_subset=_OLD_CONSUMER,
                subset_note="the resume table (every producer's fixtures, and this release's own, "
                            "generated here), the generator check, the real checkpoints and its optimizer-layout "
                            "table; the other "
                            "framework tests run in tf211-py310 and tf221-tfkeras (the Keras 2 releases "
                            "either side)"),
    Environment("tf216-keras30", ("tensorflow-cpu==2.16.2", "keras==3.0.5"),
                description="TF 2.16 with the oldest Keras 3 line it accepts (3.0.x, pinned 3.0.5)", minutes=10,
                pytest_subset=(*_FRAMEWORK_TESTS, *_EDGE_CASES_ELSEWHERE, _DEMO, _TF1_WORKFLOW),
                subset_note=_FRAMEWORK_NOTE + "; of the SIGKILL suites one case of each kind, no demo or "
                            "TF1 workflow (all run in tf221-keras3)"),
    Environment("tf216-keras38", ("tensorflow-cpu==2.16.2", "keras==3.8.0"),
                description="TF 2.16 with Keras 3.8, a release between the Keras 3 edges (no quantization_config, "
                            "lora_alpha, renorm; consumer only)", minutes=5, generator="",
                pytest_subset=(*_OLD_CONSUMER, "tests/names/test_keras3_releases.py",
                               "tests/names/test_names_config_layers.py", "tests/names/test_optimizer_layouts_live.py"),
                subset_note="consumer only: the resume table (every producer's fixtures and generated corpora "
                            "into Keras 3.8), the real checkpoints, the subclassed, save-walk and fine-tuned "
                            "corpora, the Keras 3 release table, every layer class's files of Keras 3.15 and "
                            "Keras 2, its optimizer-layout table and Nadam's layout; it writes no fixtures"),
    Environment("tf221-keras3", ("tensorflow-cpu==2.21.0", "keras==3.15.1"),
                description="TF 2.21 with the newest Keras 3", minutes=18,
                pytest_subset=("-m", "slow or fresh_fixtures"),
                subset_note="the slow tests and the fresh_fixtures ones (the resume table and the corpus "
                            "tables: every committed fixture and every environment's generated corpus); the rest "
                            "is the README test command's run on the same packages (run.sh)"),
    Environment("tf221-tfkeras", ("tensorflow-cpu==2.21.0", "tf-keras==2.21.0"),
                {"TF_USE_LEGACY_KERAS": "1"},
                description="TF 2.21 with tf-keras 2.21 and TF_USE_LEGACY_KERAS=1", minutes=22,
                pytest_subset=(*_FRAMEWORK_TESTS, _GRAPH_MODE, *_TF1_ON_TF221),
                subset_note=_FRAMEWORK_NOTE + "; graph execution (tests/matrix/test_graph_mode.py) "
                            "runs natively in tf115-py37; the TF1 session workflow and example (no Keras) "
                            "run in tf221-keras3 on the same TensorFlow"),
    Environment("keras3-jax", ("keras==3.15.1", "jax[cpu]", "h5py"), {"KERAS_BACKEND": "jax"},
                description="Keras 3.15 on JAX (CPU), no TensorFlow",
                forbid=("tensorflow", "tensorflow-cpu", "torch"),
                generator="fixtures/generate_backends.py", corpus_env="keras3-jax", minutes=5,
                pytest_subset=_FRAMEWORK_TESTS, subset_note=_FRAMEWORK_NOTE),
    Environment("keras3-torch", ("keras==3.15.1", "h5py"), {"KERAS_BACKEND": "torch"},
                description="Keras 3.15 on torch 2.13 (CPU wheel, pip), no TensorFlow",
                pip_first=("torch==2.13.0",), forbid=("tensorflow", "tensorflow-cpu", "jax", "nvidia-*"),
                generator="fixtures/generate_backends.py", corpus_env="keras3-torch", minutes=5,
                pytest_subset=_FRAMEWORK_TESTS, subset_note=_FRAMEWORK_NOTE),
    Environment("tf24-py38", ("tensorflow-cpu==2.4.4", "protobuf<3.21"), python="3.8",
                description="TF 2.4 (tf.keras 2.4: OptimizerV2 only; h5py 2.10, numpy 1.19) on Python 3.8",
                generator="fixtures/generate_legacy.py", pytest_subset=_OLD_TF2_CONSUMER,
                subset_note=_OLD_TF2_CONSUMER_NOTE, minutes=6),
    Environment("tf211-py310", ("tensorflow-cpu==2.11.1", "protobuf<3.20", "numpy<2"), python="3.10",
                description="TF 2.11 (tf.keras 2.11, the first new optimizers) on Python 3.10",
                generator="fixtures/generate_legacy.py", pytest_subset=_OLD_TF2_CONSUMER,
                subset_note=_OLD_TF2_CONSUMER_NOTE, minutes=7),
    Environment("tf221-keras3-py313", ("tensorflow-cpu==2.21.0", "keras==3.15.1"), python="3.13",
                description="TF 2.21 + Keras 3.15 on Python 3.13",
                generator="fixtures/generate_legacy.py", pytest_subset=_NEW_PYTHON_CONSUMER,
                subset_note=_NEW_PYTHON_CONSUMER_NOTE, minutes=5),
    Environment("tf115-py37", ("tensorflow==1.15.5", "keras==2.3.1", "h5py<3", "protobuf<3.21"), python="3.7",
                description="TF 1.15 (graph execution, tf.keras 2.2.4-tf and standalone Keras 2.3.1; h5py "
                            "2.10, numpy 1.18) on Python 3.7",
                generator="", corpus_env="tf115-keras224-py37", pytest_subset=_TF1_CONSUMER,
                subset_note=_TF1_CONSUMER_NOTE, minutes=9),
    Environment("noframework-py37", (), python="3.7",
                description="Python 3.7 (the floor: numpy 1.21, h5py 3.8, pytest 7.4), no framework",
                minutes=3),
)


def python_for(version: str) -> str:
    """The interpreter for ``uv venv -p``: a pyenv-installed ``<version>.x`` when there is one
    (on PATH pyenv's shims answer only for its global versions, and uv would otherwise try to
    download a Python), else the version itself for uv to find."""
    if version == "3.11":  # the README's Python, found on PATH as before
        return version
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()])
    return str(found[-1]) if found else version


def find_uv() -> str:
    """uv from PATH, else installed once into .matrix/_uv with pip."""
    found = shutil.which("uv")
    if found:
        return found
    boot = MATRIX_DIR / "_uv"
    uv = boot / "bin" / "uv"
    if not uv.exists():
        subprocess.run([sys.executable, "-m", "venv", str(boot)], check=True)
        subprocess.run([str(boot / "bin" / "pip"), "install", "-q", "uv"], check=True)
    return str(uv)


def run(cmd: list[str], log: Path, env: dict[str, str] | None = None, timeout: float | None = None) -> int:
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            code = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\nTIMEOUT after {timeout}s\n")
            return 124
        out.write(f"\n[exit {code} after {time.monotonic() - started:.0f}s]\n")
        return code


def junit_counts(path: Path) -> dict[str, int]:
    counts = {"passed": 0, "skipped": 0, "failed": 0}
    if not path.exists():
        return counts
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts["failed"] += failed
        counts["skipped"] += skipped
        counts["passed"] += total - failed - skipped
    return counts


@dataclass
class Prepared:
    """An environment after phase 1 (setup and generators): its result so far, the variables its
    tests run with, and the corpus it generated (None when its generator wrote none or failed)."""
    spec: Environment
    result: dict[str, object]
    env: dict[str, str]
    started: float
    python: str = ""
    fresh: Path | None = None
    seconds: float = 0.0  # phase 1's duration


def prepare_environment(spec: Environment, uv: str) -> Prepared:
    """Phase 1: a fresh venv, then the environment's fixture generators (the whole generated
    corpus wherever fixtures/<env>/ commits one or a sample of it: every consumer reads it in phase 2)."""
    venv = MATRIX_DIR / spec.name
    log = MATRIX_DIR / f"{spec.name}.log"
    log.unlink(missing_ok=True)
    MATRIX_DIR.mkdir(exist_ok=True)
    result: dict[str, object] = {"name": spec.name, "passed": 0, "skipped": 0, "failed": 0, "note": ""}
    if venv.exists():
        shutil.rmtree(venv)
    python = str(venv / "bin" / "python")
    env = {**os.environ, **spec.env, "CKPTCOMPAT_MATRIX_ENV": spec.name,
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    env.pop("VIRTUAL_ENV", None)
    prepared = Prepared(spec, result, env, time.monotonic())
    if not _setup(spec, uv, python, venv, log, env):
        result.update(failed=1, note=f"setup failed, see {log.relative_to(ROOT)}")
        return prepared
    prepared.python = python
    fixtures = venv / "fixtures"
    if (ROOT / "fixtures" / "backends" / spec.name).is_dir():  # cross-backend fixtures committed here
        backend_fixtures = venv / "backend_fixtures"
        if run([python, "fixtures/generate_backends.py", "--out", str(backend_fixtures)], log, env,
               timeout=900) != 0:
            result.update(failed=1, note="backend fixture generator failed; ")
        env["CKPTCOMPAT_GENERATED_BACKEND_FIXTURES"] = str(backend_fixtures)
    generated = True
    if spec.generator == "fixtures/generate.py" and spec.packages:
        # --fresh: as committed (fixtures/generate.py corpus_mode), the corpus whole where a sample is
        if run([python, "fixtures/generate.py", "--fresh", "--out", str(fixtures)], log, env, timeout=900) != 0:
            result["note"] = "fixture generator failed; "
            result["failed"] = 1
            generated = False
        saved_models = venv / "fixtures_saved_model"  # Keras 2 envs only; the others write nothing
        if run([python, "fixtures/generate_saved_model.py", "--out", str(saved_models)], log, env, timeout=900) != 0:
            result["note"] = str(result["note"]) + "SavedModel fixture generator failed; "
            result["failed"] = 1
        env["CKPTCOMPAT_GENERATED_SAVED_MODELS"] = str(saved_models)
    if spec.generator == "fixtures/generate_legacy.py":  # an old stack: the self-contained generator
        if run([python, spec.generator, "--out", str(fixtures), "--env", spec.name], log, env,
               timeout=900) != 0:
            result.update(failed=1, note="legacy fixture generator failed; ")
            generated = False
        # + the whole corpus (every optimizer, the layer zoo) where fixtures/<env>/ commits one
        elif run([python, "fixtures/generate.py", "--add-corpus", str(fixtures)], log, env,
                 timeout=900) != 0:
            result.update(failed=1, note="corpus generator failed; ")
            generated = False
    if spec.corpus_env:  # the corpus alone, as the producer the committed sample names
        if run([python, "fixtures/generate.py", "--env", spec.corpus_env, "--add-corpus", str(fixtures)],
               log, env, timeout=900) != 0:
            result.update(failed=1, note=f"{result['note']}corpus generator failed; ")
            generated = False
    env["CKPTCOMPAT_GENERATED_FIXTURES"] = str(fixtures)
    if generated and (fixtures / "manifest.json").is_file():
        prepared.fresh = fixtures
    prepared.seconds = time.monotonic() - prepared.started
    return prepared


def _prepare_or_fail(spec: Environment, uv: str) -> Prepared:
    """:func:`prepare_environment`; an unexpected error fails this environment only (the others
    still run their tests, and the summary table is printed)."""
    try:
        return prepare_environment(spec, uv)
    except Exception as exc:  # noqa: BLE001 -- reported in the environment's row
        result: dict[str, object] = {"name": spec.name, "passed": 0, "skipped": 0, "failed": 1,
                                     "note": f"phase 1 raised {type(exc).__name__}: {exc}; "}
        return Prepared(spec, result, {}, time.monotonic())


def run_tests(prepared: Prepared, fresh: list[Path], pytest_args: list[str]) -> dict[str, object]:
    """Phase 2: the environment's tests; ``fresh``: every corpus phase 1 generated (the resume
    table reads the files of it that are not committed: $CKPTCOMPAT_FRESH_CORPORA)."""
    spec, result, env = prepared.spec, prepared.result, dict(prepared.env)
    started = time.monotonic()
    if prepared.python:
        venv = MATRIX_DIR / spec.name
        env["CKPTCOMPAT_FRESH_CORPORA"] = os.pathsep.join(str(f) for f in fresh)
        env["CKPTCOMPAT_REPORT_DIR"] = str(venv / "report")
        junit = venv / "junit.xml"
        run([prepared.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
             *spec.pytest_subset, *pytest_args], MATRIX_DIR / f"{spec.name}.log", env, timeout=2400)
        counts = junit_counts(junit)
        for key, value in counts.items():
            result[key] = int(result[key]) + value  # type: ignore[call-overload]
        if not junit.exists():
            result["failed"] = int(result["failed"]) + 1  # type: ignore[call-overload]
            result["note"] = str(result["note"]) + "pytest produced no report; "
    result["note"] = str(result["note"]) + (f"setup and generators {prepared.seconds:.0f}s, "
                                            f"tests {time.monotonic() - started:.0f}s")
    return result


def _setup(spec: Environment, uv: str, python: str, venv: Path, log: Path, env: dict[str, str]) -> bool:
    """The venv: ``pip_first`` with the venv's pip (seeded), then ckptcompat and the packages
    with uv; False when a step fails or a forbidden package got installed."""
    steps = [[uv, "venv", "-q", "-p", python_for(spec.python), *(["--seed"] if spec.pip_first else []), str(venv)]]
    if spec.pip_first:
        steps.append([python, "-m", "pip", "install", "-q", "--only-binary", ":all:", *spec.pip_first])
    # this checkout's ckptcompat, rebuilt: uv's cache would keep an older build of the same version
    steps.append([uv, "pip", "install", "-q", "--python", python, "--reinstall-package", "ckptcompat", ".[test]",
                  *spec.packages])
    if any(run(cmd, log, env) != 0 for cmd in steps):
        return False
    if not spec.forbid:
        return True
    listed = subprocess.run([uv, "pip", "list", "--python", python, "--format", "freeze"], cwd=ROOT,
                            capture_output=True, text=True, env=env).stdout.lower().splitlines()
    import fnmatch

    bad = [line for line in listed for pat in spec.forbid if fnmatch.fnmatch(line.split("==")[0], pat)]
    if bad:
        with log.open("a") as out:
            out.write(f"\nforbidden packages installed: {bad}\n")
    return not bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-e", "--env", action="append", help="run only this environment (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the environments and exit")
    parser.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("CKPTCOMPAT_MATRIX_JOBS", "2")),
                        help="environments run at the same time (default 2, or $CKPTCOMPAT_MATRIX_JOBS)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)
    if args.list:
        for spec in ENVIRONMENTS:
            print(f"{spec.name:16} {' '.join(spec.packages) or '-':45} {spec.description}"
                  + (f"; tests: {spec.subset_note}" if spec.subset_note else ""))
        return 0
    chosen = [s for s in ENVIRONMENTS if not args.env or s.name in args.env]
    unknown = set(args.env or ()) - {s.name for s in ENVIRONMENTS}
    if unknown:
        parser.error(f"unknown environment(s): {', '.join(sorted(unknown))}")
    uv = find_uv()
    MATRIX_DIR.mkdir(exist_ok=True)
    by_name: dict[str, dict[str, object]] = {}
    order = sorted(chosen, key=lambda e: -e.minutes)  # longest first: the shortest wall time
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # phase 1: every environment's venv and generators, so that phase 2 reads every fresh corpus
        for spec in order:
            print(f"[matrix] {spec.name}: setup and generators ({spec.description})", flush=True)
        prepared = list(pool.map(lambda spec: _prepare_or_fail(spec, uv), order))
        fresh = [p.fresh for p in prepared if p.fresh is not None]
        print(f"[matrix] generated corpora: {', '.join(p.spec.name for p in prepared if p.fresh) or 'none'}",
              flush=True)
        futures = {pool.submit(run_tests, p, fresh, args.pytest_args): p.spec for p in prepared}
        for future in concurrent.futures.as_completed(futures):
            spec = futures[future]
            r = by_name[spec.name] = future.result()
            print(f"[matrix] {spec.name}: passed={r['passed']} skipped={r['skipped']} failed={r['failed']} "
                  f"({r['note']})", flush=True)
            if r["failed"]:
                tail = (MATRIX_DIR / f"{spec.name}.log").read_text(errors="replace").splitlines()[-60:]
                print("\n".join("    " + line for line in tail), flush=True)
    results = [by_name[spec.name] for spec in chosen]
    if len(chosen) == len(ENVIRONMENTS):  # a full run: regenerate the compatibility page from its reports
        try:
            subprocess.run([sys.executable, str(ROOT / "tools" / "compat_page.py")], check=True)
        except subprocess.CalledProcessError:
            print("[matrix] could not build docs/compatibility.md from the reports", flush=True)
    print()
    print(f"{'environment':16} {'passed':>7} {'skipped':>8} {'failed':>7}  note")
    for r in results:
        print(f"{r['name']:16} {r['passed']:>7} {r['skipped']:>8} {r['failed']:>7}  {r['note']}")
    total = {k: sum(int(r[k]) for r in results) for k in ("passed", "skipped", "failed")}  # type: ignore[call-overload]
    print(f"matrix: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
