"""LoRA and int8-quantized models written by every Keras 3 producer of the matrix resume here.

fixtures/_finetuned.py fine-tunes one small functional model per case in each Keras 3 producer
(3.0 and 3.15; TensorFlow, JAX and torch): LoRA on two ``Dense`` layers (Adam, SGD with momentum),
``quantize("int8")`` then trained, and both (QLoRA); it saves ``.keras`` and ``.weights.h5`` with
the truth read from its live objects. Every consumer resumes each file, the ``.keras`` also without
a model (rebuilt from its config), into a fresh model whose generated layer names differ:

- a Keras 3 consumer that can make the case: what every layer computes with (what Keras stores for
  it, LoRA merged) bitwise the producer's, every slot of a variable that is not a LoRA factor
  bitwise, the factors restarted (``*_b`` and the factors' slots zero, ``report.lora_restarted``)
  and the iterations exact. Native ``load_weights`` is measured on the same file, side by side;
- a consumer without LoRA (Keras 2, or a plain model): the optimizer misfit is refused with the way
  on, and ``optimizer="reset"`` restores every weight (the LoRA kernels merged) bitwise;
- a consumer without int8 layers (Keras 2, Keras 3.0): a typed refusal naming what is missing.

Without the matrix (the README command) the committed files of tf221-keras3 are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._frameworks import fresh_graph, keras_backend, keras_flavour
from tests._paths import FIXTURES, corpus_truths, write_cell_report

pytestmark = pytest.mark.fresh_fixtures  # any Keras (2 or 3, any backend); the committed files without a matrix

_FACTOR_MARK = "lora_"


def _fixture_module() -> Any:
    from tests._paths import load_script

    return load_script(FIXTURES / "_finetuned.py", "_finetuned")


def _can_make(keras: Any, mode: str) -> bool:
    """Whether the running Keras has every feature of ``mode`` (LoRA, int8)."""
    return ("int8" not in mode or hasattr(keras.Model, "quantize")) and \
        ("lora" not in mode or hasattr(keras.layers.Dense, "enable_lora"))


def _fresh(keras: Any, ft: Any, case: str, mode: str) -> Any:
    """The case's model with other generated layer names, compiled, its optimizer built; ``mode``
    what this consumer makes of it ("" for the plain model)."""
    ft.build(keras), ft.build(keras)  # the notebook built it twice before
    model = ft.build(keras)
    ft.prepare(keras, model, mode)
    model.compile(ft.optimizer(keras, case), "mse")
    build = getattr(model.optimizer, "build", None)
    if build is not None and hasattr(model.optimizer, "_trainable_variables"):  # Keras 3 / tf.keras 2.11+
        build(model.trainable_variables)
    return model


def _layer_values(keras: Any, ft: Any, model: Any) -> dict[str, str]:
    """Each layer's values as loaded, keyed as the truth's ``stored`` (``_finetuned.loaded``); on
    Keras 2 the layer's weights in order (a plain ``Dense``: kernel, bias, the keys Keras 3 stores)."""
    if hasattr(keras, "ops"):
        return ft.loaded(keras, model)
    return {f"{i}/{j}": ft.sha(w) for i, layer in enumerate(model.layers) for j, w in enumerate(layer.get_weights())}


def _differences(keras: Any, ft: Any, model: Any, want: dict[str, Any], slots: bool) -> list[str]:
    got = _layer_values(keras, ft, model)
    diffs = [f"layer value {k}" for k in want["stored"] if got.get(k) != want["stored"][k]]
    diffs += [f"unexpected value {k}" for k in got if k not in want["stored"]]
    if not slots:
        return diffs
    got_slots = ft.slots(keras, model)
    for key, sha in want["slots"].items():
        if _FACTOR_MARK in key.split("/")[1]:  # a factor restarts: its slots are zero
            slot = _slot_value(keras, ft, model, key)
            if slot is None or np.any(slot):
                diffs.append(f"factor slot {key} not restarted")
        elif got_slots.get(key) != sha:
            diffs.append(f"slot {key}")
    for index in want["lora_layers"]:
        factor_b = [v for v in model.layers[index].weights if ft.short_name(v).endswith("_b")]
        if not factor_b or np.any(ft.to_numpy(keras, factor_b[0])):
            diffs.append(f"layer {index}: LoRA factor b not zeroed")
    iterations = int(ft.to_numpy(keras, model.optimizer.iterations))
    if iterations != want["iterations"]:
        diffs.append(f"iterations {iterations} != {want['iterations']}")
    return diffs


def _slot_value(keras: Any, ft: Any, model: Any, key: str) -> Any:
    variable, attr = key.rsplit("/", 1)
    names, opt = ft.variable_names(model), model.optimizer
    slots = getattr(opt, "_" + attr, None) or getattr(opt, attr, ())
    for var, slot in zip(opt._trainable_variables, slots):  # noqa: SLF001
        if names.get(id(var)) == variable:
            return ft.to_numpy(keras, slot)
    return None


def _native(keras: Any, ft: Any, case: str, mode: str, path: Path, want: dict[str, Any]) -> str:
    """What native ``load_weights`` restores into the same fresh model (Keras 3 consumers)."""
    model = _fresh(keras, ft, case, mode)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 -- the table reports what native does
        return f"fails ({type(exc).__name__})"
    weights = [d for d in _differences(keras, ft, model, want, slots=False)]
    return f"{len(weights)} values differ" if weights else "weights ok"


def _resumed(keras: Any, ft: Any, case: str, mode: str, path: Path, want: dict[str, Any], rebuild: bool) -> str:
    """One file into a model this consumer can make of the case: every value exact."""
    import ckptcompat

    model = None if rebuild else _fresh(keras, ft, case, mode)
    run = ckptcompat.resume(path, model=model, initial_epoch=3)
    diffs = _differences(keras, ft, run.model, want, slots=True)
    if diffs:
        return f"DIFF: {', '.join(diffs[:4])}"
    restarted = sorted(getattr(run.report, "lora_restarted", ()) or ())
    if bool(restarted) != bool(want["lora_layers"]):
        return f"DIFF: LoRA restarted {restarted}, the file's LoRA layers {want['lora_layers']}"
    return f"ok ({run.report.matching}" + (f", LoRA restarted in {len(restarted)} layers)" if restarted else ")")


def _without_lora(keras: Any, ft: Any, case: str, path: Path, want: dict[str, Any]) -> str:
    """A LoRA file into a model without LoRA: refused with the way on; ``optimizer="reset"`` exact."""
    import ckptcompat

    try:
        ckptcompat.resume(path, model=_fresh(keras, ft, case, ""), initial_epoch=3)
        return "DIFF: the optimizer of the LoRA factors was restored into a model without them"
    except ckptcompat.IncompatibleStateError as exc:
        if 'optimizer="reset"' not in str(exc):
            return f"DIFF: the refusal does not give the way on: {str(exc)[:120]}"
    run = ckptcompat.resume(path, model=_fresh(keras, ft, case, ""), optimizer="reset", initial_epoch=3)
    diffs = _differences(keras, ft, run.model, want, slots=False)
    if diffs or not run.report.optimizer_reset:
        return f"DIFF (reset): {', '.join(diffs[:4]) or 'not reported'}"
    return "ok (no LoRA here: refused with the way on; optimizer=\"reset\": merged weights exact)"


def _absent_feature(keras: Any, ft: Any, case: str, path: Path, rebuild: bool) -> str:
    """An int8 file where this Keras has no int8 layers: a typed refusal, rebuilt or into the plain
    model (an int8 kernel and its scale are not a float kernel), is the only right answer."""
    import ckptcompat

    want = ckptcompat.UnsupportedFormatError if rebuild else ckptcompat.IncompatibleStateError
    try:
        ckptcompat.resume(path, model=None if rebuild else _fresh(keras, ft, case, ""), initial_epoch=3)
    except want as exc:
        if rebuild and "quantized" not in str(exc):
            return f"DIFF: the refusal does not say the model is quantized: {str(exc)[:120]}"
        return f"n/a (no int8 layers in this Keras: {type(exc).__name__})"
    return "DIFF: an int8 model resumed where this Keras has no int8 layers"


def _cell(keras: Any, ft: Any, case: str, want: dict[str, Any], path: Path, rebuild: bool) -> str:
    import ckptcompat

    mode = want["mode"]
    try:
        if _can_make(keras, mode):
            return _resumed(keras, ft, case, mode, path, want, rebuild)
        if "int8" in mode:
            return _absent_feature(keras, ft, case, path, rebuild)
        return _without_lora(keras, ft, case, path, want)
    except ckptcompat.errors.CkptCompatError as exc:
        return f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def test_finetuned_files_of_every_keras3_producer_resume_here(capsys: pytest.CaptureFixture[str]) -> None:
    from ckptcompat import runtime

    if keras_flavour() is None and keras_backend() is None:
        pytest.skip("needs Keras (2, or 3 on any backend); this environment has none")
    producers = corpus_truths("finetuned")
    if not producers:
        pytest.skip("no fine-tuned model files committed or generated (fixtures/_finetuned.py)")
    keras, ft = runtime.keras_module(), _fixture_module()
    lines = [f"consumer: {keras_flavour()} (Keras {getattr(keras, '__version__', '?')})"]
    bad: list[str] = []
    cells: list[dict[str, Any]] = []
    for env, folder, truth in producers:
        for case, want in sorted(truth["cases"].items()):
            assert want["stored"] and want["iterations"] > 0, f"{env}/{case}: the truth records no state"
            for rel, rebuild in [(r, False) for r in want["files"]] + [(want["files"][0], True)]:
                fresh_graph()
                path = folder / rel
                native = _native(keras, ft, case, want["mode"], path, want) \
                    if _can_make(keras, want["mode"]) and hasattr(keras, "ops") and not rebuild else "-"
                cell = _cell(keras, ft, case, want, path, rebuild)
                how = "rebuilt" if rebuild else "model="
                lines.append(f"  {env:>15} (Keras {truth['keras']}, {truth['backend']}) {rel:<30} {how:<8} "
                             f"native load_weights: {native:<16} ckptcompat: {cell}")
                cells.append({"producer": env, "file": Path(rel).name, "case": case, "rebuilt": rebuild,
                              "result": cell, "native": native})
                if not cell.startswith(("ok", "n/a")):
                    bad.append(f"{env}/{rel} ({how}): {cell}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    write_cell_report("finetuned_table.json", cells)
    assert not bad, "\n".join(bad)
