"""Run native ``keras.models.load_model(path, compile=True)`` on files (a child process of the tests).

    python tests/corpora/_real_native.py IN.json OUT.json

IN: a list of paths. OUT: ``{path: [ok, n_optimizer_variables, reason]}``. Runs in a child so
that native Keras (which may deserialize Lambda byte-code under Keras 2) never runs inside
the test process; the caller compares it with ``ckptcompat.resume`` file by file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings


def _keras() -> object:
    import tensorflow as tf  # noqa: PLC0415

    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tf_keras  # noqa: PLC0415

        return tf_keras
    if tuple(int(p) for p in tf.__version__.split(".")[:2]) < (2, 16):
        return tf.keras
    import keras  # noqa: PLC0415

    return keras


def main(src: str, dst: str) -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    keras = _keras()
    out: dict[str, list[object]] = {}
    for path in json.load(open(src, encoding="utf-8")):
        try:
            model = keras.models.load_model(path, compile=True)  # type: ignore[attr-defined]
            opt = getattr(model, "optimizer", None)
            variables = getattr(opt, "variables", []) if opt is not None else []
            variables = variables() if callable(variables) else variables
            out[path] = [True, len(variables), ""]
        except Exception as exc:  # noqa: BLE001 -- the point: record why native refuses
            out[path] = [False, 0, f"{type(exc).__name__}: {str(exc)[:200]}"]
    json.dump(out, open(dst, "w", encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
