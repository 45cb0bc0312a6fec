"""A Keras Adam that steps exactly like TF1's ``tf.compat.v1.train.AdamOptimizer``.

Keras Adam and TF1 ``AdamOptimizer`` compute the same formula, but Keras recomputes the
bias-correction powers as ``beta ** t`` every step while TF1 keeps ``beta1_power`` and
``beta2_power`` variables that start at ``beta`` and are multiplied by ``beta`` (in float32)
after every step; the two can differ in the last bit, and so can the weights. Keras also
computes ``1 - beta_1`` on the Python float, TF1 in float32 on the float32 ``beta1``.

:func:`TF1Adam` makes an optimizer of the running Keras (Keras 3, tf.keras 2.11+ or tf-keras)
that keeps TF1's power variables and float32 constants, so a model converted with
:func:`ckptcompat.tf1.convert.tf1_to_keras` continues bit for bit as the TF1 graph would::

    model.compile(optimizer=TF1Adam(learning_rate=1e-3), loss=...)
    tf1_to_keras("old_run/", model)      # weights, m, v, iterations and the exact powers

Its class is named ``Adam`` (a subclass of the running Keras's Adam), so checkpoints record
plain Adam state. The powers are not stored: after a restore they are rebuilt from the step
count by the same float32 multiplications TF1 performs (:func:`tf1_beta_power`), unless the
source file holds them (a TF1 checkpoint does).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["TF1Adam", "tf1_beta_power"]

_CHUNK = 1 << 20


def tf1_beta_power(beta: float, iterations: int) -> np.float32:
    """TF1's ``beta_power`` after ``iterations`` steps: ``beta`` multiplied by ``beta`` that
    many times, each product rounded to float32 (what ``AdamOptimizer._finish`` does)."""
    b = np.float32(beta)
    power = b
    left = int(iterations)
    while left > 0:
        n = min(left, _CHUNK)
        # ufunc accumulate multiplies left to right in float32: out[i] = out[i-1] * b
        power = np.multiply.accumulate(np.concatenate(([power], np.full(n, b, np.float32))))[-1]
        left -= n
    return np.float32(power)


def TF1Adam(learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
            epsilon: float = 1e-8, **kwargs: Any) -> Any:
    """An Adam optimizer of the running Keras that updates like TF1's ``AdamOptimizer``.

    Defaults are TF1's (note ``epsilon=1e-8``; Keras's default is 1e-7). ``beta_1``,
    ``beta_2`` and ``epsilon`` are rounded to float32 as TF1 does. Other keyword arguments go
    to Keras's ``Adam`` (``amsgrad`` is refused: TF1 has none).
    """
    from ckptcompat import runtime
    from ckptcompat.errors import InvalidArgumentError

    if kwargs.get("amsgrad"):
        raise InvalidArgumentError("TF1's AdamOptimizer has no amsgrad", hint="use keras Adam")
    cls = _class_for(runtime.detect())
    return cls(learning_rate=learning_rate, beta_1=float(np.float32(beta_1)),
               beta_2=float(np.float32(beta_2)), epsilon=float(np.float32(epsilon)), **kwargs)


class _PowersMixin:
    """The power variables and their upkeep, shared by both flavours."""

    beta_1: float
    beta_2: float
    beta1_power: Any
    beta2_power: Any

    def _power_values(self) -> tuple[np.float32, np.float32]:
        import tensorflow as tf

        with tf.init_scope():  # build() may run while a train function is being traced
            steps = int(np.asarray(self.iterations))  # type: ignore[attr-defined]
        return tf1_beta_power(self.beta_1, steps), tf1_beta_power(self.beta_2, steps)

    def set_beta_powers(self, beta1_power: Any, beta2_power: Any) -> None:
        """Set the powers (e.g. from a TF1 checkpoint's ``beta1_power``/``beta2_power``)."""
        self.beta1_power.assign(np.float32(np.asarray(beta1_power).reshape(())))
        self.beta2_power.assign(np.float32(np.asarray(beta2_power).reshape(())))

    def ckptcompat_after_restore(self) -> None:
        """Called by :func:`ckptcompat.runtime.apply` once ``iterations`` is restored."""
        if getattr(self, "beta1_power", None) is not None:
            self.set_beta_powers(*self._power_values())

    def _advance_powers(self) -> None:
        self.beta1_power.assign(self.beta1_power * self.beta_1)
        self.beta2_power.assign(self.beta2_power * self.beta_2)


@functools.lru_cache(maxsize=None)
def _class_for(flavour: str) -> type:
    """The flavour's Adam with :class:`_PowersMixin` (each flavour knows its optimizer API)."""
    from ckptcompat import runtime

    cls: type = runtime.flavour(flavour).tf1_adam_class(_PowersMixin)
    return cls
