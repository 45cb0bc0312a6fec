"""The reviewed gaps of the resume table (tests/matrix/test_resume_table.py) and the format
manifest tests: corpus files that may not resume, each with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests._frameworks import keras_flavour


#: open gaps of the generated corpus (fixtures/_optimizers.py, fixtures/_zoo.py), by path substring:
#: one entry per file (a case folder only where every file of it fails for the reason given).
#: Each is a ckptcompat limitation, not a file that fails on purpose. Fixed so far: Keras 3
#: ``.weights.h5`` layer paths, config stripping, 'adam_w', amsgrad guessed from ``.keras``,
#: ConvLSTM / attention / depthwise layer paths of ``.keras``, SGD(momentum=0) inert slots, Muon and
#: ScheduleFreeAdamW, Adafactor TF bundles, tf-keras MultiHeadAttention ``_query_dense`` groups.
_KNOWN_GAPS: dict[str, str] = {}
#: gaps of the resumed learning rate alone: the cell counts as the gap only when its one difference is
#: exactly this (a weight, slot or iteration difference in the same file still fails); readers unaffected
_RATE_ONLY_GAPS: dict[str, tuple[str, str]] = {}  # none open (tf14-keras208-py36/rate_decay closed: the
#: multi-backend API's lr * (1 / (1 + decay t)) continues as ckptcompat.runtime.product_decay)


#: files that alone cannot say their optimizer's configuration (read without a model, the slots stay
#: positional): the table resumes them into a model compiled by the caller, as a user would
_AMBIGUOUS_WITHOUT_MODEL: dict[str, str] = {
    "tf221-keras3/opt_rmsprop_momentum/model.keras": "Keras 3.15 .keras saved after the .h5 keeps no optimizer config: RMSprop "
                                                     "momentum vs centered fit the same variables (ambiguous)",
    "tf221-keras3/opt_rmsprop_centered/model.keras": "as opt_rmsprop_momentum: momentum vs centered ambiguous",
}
#: files whose reader names differ from the live walk's although resume matches them (the format
#: manifest tests compare reader names; the table resumes): reader-level gaps only
_READER_NAME_GAPS: dict[str, str] = {
    **{f"tf14-keras208-py36/{case}/model.h5": "TF 1.4's tf.keras stores a Bidirectional's directions under "
                                               "their variable scopes (lstm, lstm_1), not forward_/backward_; "
                                               "resume matches them by structure (values exact)"
       for case in ("zoo_rank3", "zoo_rank3_portable")},
    "tf221-keras3/zoo_rank3/tf_checkpoint/": "the TF bundle reader keeps TimeDistributed's inner scope "
                                             "(td/dense/kernel); resume matches it to td/kernel by structure",
    "tf221-keras3/zoo_rank2/tf_checkpoint/": "the TF bundle reader keeps SpectralNormalization's inner scope "
                                             "(sn/dense/bias); resume matches it to sn/bias by structure",
    "tf221-keras3/zoo_rank2/model.weights.h5": "as tf221-tfkeras/zoo_rank2/model.weights.h5: the kernel counts "
                                               "twice when read without a config",
    "tf221-tfkeras/zoo_rank2/model.weights.h5": "read without a config, SpectralNormalization's kernel (stored "
                                                "under layer/ and again in its own vars) counts twice; resume "
                                                "reads it through the model's config once",
}
#: gaps of one consumer generation only (the flavour running the table), by path substring
_KNOWN_GAPS_BY_CONSUMER: dict[str, dict[str, str]] = {
}


def gap_marks(path: str) -> list[Any]:
    """A non-strict xfail naming the reviewed gap of a corpus file (``_KNOWN_GAPS``), else none:
    the format manifest tests read the same files the table resumes."""
    gaps = {**_KNOWN_GAPS, **_AMBIGUOUS_WITHOUT_MODEL, **_READER_NAME_GAPS}
    gap = next((why for key, why in gaps.items() if key in path), None)
    return [pytest.mark.xfail(reason=gap, strict=False)] if gap else []


def _consumer_keys() -> list[str]:
    from ckptcompat._compat import PackageNotFoundError, distribution_version

    keys = [str(keras_flavour())]
    try:
        if keys[0] == "keras3" and distribution_version("keras").startswith("3.0."):
            keys.append("keras3.0")
    except PackageNotFoundError:
        pass
    return keys


def known_gap(path: str, cell: str = "") -> str | None:
    """The reviewed reason ``path`` may not resume in this consumer (its ``cell``), or None."""
    consumer = {g: why for key in _consumer_keys() for g, why in _KNOWN_GAPS_BY_CONSUMER.get(key, {}).items()}
    found = next((why for g, why in {**_KNOWN_GAPS, **consumer}.items() if g in path), None)
    rate = next((gap for g, gap in _RATE_ONLY_GAPS.items() if g in path), None)
    return found or (rate[1] if rate and cell == rate[0] else None)
