"""Live capture/apply against the golden fixtures written by this very environment.

A fixture file is loaded with the framework's own ``load_model`` (reliable in the
environment that wrote it), captured with :mod:`ckptcompat.runtime`, and every tensor of
fixtures/manifest.json is compared by sha256; the state is then applied to a freshly built
model of the same case and compared again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from ckptcompat import runtime

from _frameworks import keras_flavour
from _paths import FIXTURES, is_corpus

MANIFEST = FIXTURES / "manifest.json"
_KINDS = ("full_model", "keras_zip")  # files load_model reads with their optimizer


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_ckpt_fixture_generate", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries(this_env_only: bool = True) -> list[dict[str, Any]]:
    """Manifest entries of loadable kinds (written by this environment unless told otherwise)."""
    if not MANIFEST.exists():
        return []
    entries = [f for f in json.loads(MANIFEST.read_text())["fixtures"]
               if f["kind"] in _KINDS and not is_corpus(f)]  # the corpus: tests/matrix/test_resume_table.py
    if this_env_only:
        env = _generator().detect_env() if keras_flavour() else None
        entries = [f for f in entries if f["producer"] == env]
    return entries


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _check(state: Any, entry: dict[str, Any], optimizer: bool = True) -> None:
    bad = []
    for t in entry["tensors"]:
        if t["kind"] != "weight" and not optimizer:
            continue
        if t["kind"] == "weight":
            value = state.weights.get(t["owner"])
        else:
            value = (state.optimizer.slots.get(t["owner"], {}).get(t["slot"])
                     if state.optimizer else None)
        if value is None or _sha(value) != t["sha256"] or str(value.dtype) != t["dtype"] \
                or list(value.shape) != t["shape"]:
            bad.append(f"{t['owner']}/{t['slot'] or ''}")
    assert bad == [], f"{entry['path']}: tensors differ from the manifest: {bad}"
    if optimizer and entry.get("optimizer"):
        want = entry["optimizer"]
        assert state.optimizer.class_name == want["class"]
        assert state.optimizer.iterations == want["iterations"]
        assert state.optimizer.learning_rate == want["learning_rate"]


@pytest.mark.framework
@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["path"] if isinstance(e, dict) else str(e))
def test_capture_and_apply_match_manifest(entry: dict[str, Any], keras: ModuleType) -> None:
    gen = _generator()
    rt = runtime.flavour()
    path = Path(FIXTURES / entry["path"])
    with_optimizer = bool(entry.get("optimizer"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.models.load_model(str(path), compile=with_optimizer)
    state = rt.capture(model, include_optimizer=with_optimizer)
    dropped = with_optimizer and (
        state.optimizer.class_name != entry["optimizer"]["class"]
        or (not state.optimizer.slots and any(t["kind"] == "slot" for t in entry["tensors"])))
    if dropped or any("Skipping variable loading" in str(w.message) for w in caught):
        # Keras 3.0 load_model loses optimizer slots: .keras warns "Skipping variable
        # loading for optimizer"; legacy .h5 builds the optimizer on an empty variable
        # list and drops them silently; an SGD .keras comes back as RMSprop holding the
        # momenta positionally. Compare the weights only.
        with_optimizer = False
        state = state.replace(optimizer=None)
    _check(state, entry, optimizer=with_optimizer)

    keras.backend.clear_session()  # default layer names (dense, dense_1) as in the file
    fresh = gen.build_model(keras, entry["case"])
    fresh.compile(optimizer=gen.build_optimizer(keras, entry["case"]), loss="mse")
    report = rt.apply(state, fresh)
    assert report.skipped == ()
    _check(rt.capture(fresh), entry, optimizer=with_optimizer)


def test_manifest_has_entries_when_present() -> None:
    if MANIFEST.exists():
        assert _entries(this_env_only=False), "fixtures/manifest.json lists no full-model / .keras fixture"
