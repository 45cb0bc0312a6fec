from __future__ import annotations

import pytest

from ckptcompat import errors


@pytest.mark.parametrize("cls, builtin", [
    (errors.CheckpointNotFoundError, FileNotFoundError),
    (errors.CorruptCheckpointError, ValueError),
    (errors.UnsupportedFormatError, ValueError),
    (errors.IncompatibleStateError, ValueError),
    (errors.UnsafeCheckpointError, ValueError),
    (errors.MissingDependencyError, ImportError),
])
def test_errors_subclass_base_and_builtin(cls: type, builtin: type) -> None:
    exc = cls("what happened", path="/some/file.h5", hint="do this")
    assert isinstance(exc, errors.CkptCompatError) and isinstance(exc, builtin)
    assert str(exc) == "/some/file.h5: what happened Hint: do this"
    assert exc.path == "/some/file.h5"


def test_incompatible_state_lists_every_mismatch() -> None:
    exc = errors.IncompatibleStateError("model does not match", ["missing dense/kernel", "bias shape (3,) != (4,)"])
    assert exc.mismatches == ["missing dense/kernel", "bias shape (3,) != (4,)"]
    assert "missing dense/kernel" in str(exc) and "bias shape (3,) != (4,)" in str(exc)
    assert "2 problem(s)" in str(exc)
