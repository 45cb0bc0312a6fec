"""An adapted ``Normalization`` resumed on Keras 3's JAX and torch backends computes what it did.

The same check as ``test_resume_adapted_state.py`` (which runs wherever TensorFlow is), here
where Keras 3 runs without it: ``finalize_state`` derives the mean and variance tensors from the
restored statistics on every backend. (Keras 3's ``Discretization.adapt`` needs TensorFlow on
every backend, so its bins are checked only there.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.backend,
              pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                                 reason="TensorFlow is installed: test_resume_adapted_state.py runs it")]


def test_a_resumed_adapted_normalization_computes_what_it_did_without_tensorflow(tmp_path: Path) -> None:
    from test_resume_adapted_state import test_a_resumed_adapted_normalization_computes_what_it_did

    test_a_resumed_adapted_normalization_computes_what_it_did(tmp_path)
