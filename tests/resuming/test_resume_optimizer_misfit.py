"""resume of a Keras file whose weights read but whose optimizer variables fit no layout its
configs describe (a real file with one optimizer weight renamed): before, the read failed whole
and resume said "no readable checkpoint" (CheckpointNotFoundError), even with
``optimizer="reset"``. Now it raises the IncompatibleStateError listing the misfits with the way
on, and ``optimizer="reset"`` restores the weights as from the unaltered file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptcompat
from conftest import MISFIT_SOURCE

pytestmark = pytest.mark.framework


def test_optimizer_misfit_is_refused_with_the_way_on(optimizer_misfit_h5: Path) -> None:
    with pytest.raises(ckptcompat.IncompatibleStateError, match="mystery_slot") as caught:
        ckptcompat.resume(optimizer_misfit_h5)
    assert 'optimizer="reset"' in str(caught.value) and str(optimizer_misfit_h5) in str(caught.value)


def test_optimizer_reset_resumes_the_weights(optimizer_misfit_h5: Path, real_checkpoints: Path) -> None:
    run = ckptcompat.resume(optimizer_misfit_h5, optimizer="reset")
    whole = ckptcompat.resume(real_checkpoints / MISFIT_SOURCE)
    assert run.report.optimizer_reset
    assert [np.asarray(w).tobytes() for w in run.model.get_weights()] == \
        [np.asarray(w).tobytes() for w in whole.model.get_weights()]


def test_a_misfit_is_raised_not_skipped(optimizer_misfit_h5: Path, real_checkpoints: Path,
                                        tmp_path: Path) -> None:
    """A misfit is a layout the reader does not know far more often than damage: resume does not
    fall back past it to an older checkpoint (that would drop the run's latest phase silently)."""
    import shutil

    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(real_checkpoints / MISFIT_SOURCE, folder / "model-01.h5")
    shutil.copyfile(optimizer_misfit_h5, folder / "model-02.h5")
    with pytest.raises(ckptcompat.IncompatibleStateError, match="model-02.h5"):
        ckptcompat.resume(folder)
    assert Path(ckptcompat.resume(folder / "model-01.h5").source.path).name == "model-01.h5"
