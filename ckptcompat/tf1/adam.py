"""A Keras Adam that steps exactly like TF1's ``tf.compat.v1.train.AdamOptimizer``.

Keras Adam and TF1 ``AdamOptimizer`` compute the same formula, but Keras recomputes the
bias-correction powers as ``beta ** t`` every step while TF1 keeps ``beta1_power`` and
``beta2_power`` variables that start at ``beta`` and are multiplied by ``beta`` (in float32)
after every step; the two can differ in the last bit, and so can the weights. Keras also
computes ``1 - beta_1`` on the Python float, TF1 in float32 on the float32 ``beta1``.

:func:`TF1Adam` makes an optimizer of the running Keras (Keras 3, tf.keras 2.12+ or tf-keras)
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
    flavour = runtime.detect()
    if flavour not in ("keras2", "keras3"):
        raise InvalidArgumentError(f"TF1Adam needs Keras 2 or 3, this environment runs {flavour}")
    cls = _class_for(flavour)
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
    from ckptcompat import runtime

    keras = runtime.flavour(flavour).keras_module()
    return _keras3_class(keras) if flavour == "keras3" else _keras2_class(keras)


def _keras3_class(keras: Any) -> type:
    ops = keras.ops

    class Adam(_PowersMixin, keras.optimizers.Adam):  # type: ignore[misc,name-defined]
        """Keras 3 Adam with TF1's bias-correction powers (see :mod:`ckptcompat.tf1.adam`)."""

        def build(self, var_list: Any) -> None:
            if self.built:
                return
            super().build(var_list)
            b1, b2 = self._power_values()
            self.beta1_power = self.add_variable(
                shape=(), dtype="float32", name="beta1_power",
                initializer=keras.initializers.Constant(float(b1)))
            self.beta2_power = self.add_variable(
                shape=(), dtype="float32", name="beta2_power",
                initializer=keras.initializers.Constant(float(b2)))

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            # TF1's ApplyAdam kernel, op for op: alpha = lr * sqrt(1 - b2p) / (1 - b1p);
            # m += (g - m) * (1 - b1); v += (g^2 - v) * (1 - b2); w -= m * alpha / (sqrt(v) + eps)
            lr = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            b1p = ops.cast(self.beta1_power, variable.dtype)
            b2p = ops.cast(self.beta2_power, variable.dtype)
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            alpha = lr * ops.sqrt(1 - b2p) / (1 - b1p)
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
            self.assign_sub(variable, ops.divide(ops.multiply(m, alpha),
                                                 ops.add(ops.sqrt(v), self.epsilon)))

        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            result = super().apply(grads, trainable_variables)
            self._advance_powers()  # after every variable's update, as TF1's _finish
            return result

    return Adam


def _keras2_class(keras: Any) -> type:
    import tensorflow as tf

    class Adam(_PowersMixin, keras.optimizers.Adam):  # type: ignore[misc,name-defined]
        """Keras 2 Adam with TF1's bias-correction powers (see :mod:`ckptcompat.tf1.adam`)."""

        def build(self, var_list: Any) -> None:
            super().build(var_list)
            if getattr(self, "beta1_power", None) is not None:
                return
            b1, b2 = self._power_values()
            self.beta1_power = self.add_variable(
                shape=(), dtype=tf.float32, name="beta1_power",
                initializer=keras.initializers.Constant(float(b1)))
            self.beta2_power = self.add_variable(
                shape=(), dtype=tf.float32, name="beta2_power",
                initializer=keras.initializers.Constant(float(b2)))

        def update_step(self, gradient: Any, variable: Any) -> None:
            if isinstance(gradient, tf.IndexedSlices):
                gradient = tf.convert_to_tensor(gradient)  # TF1's dense ApplyAdam semantics
            lr = tf.cast(self.learning_rate, variable.dtype)
            b1p = tf.cast(self.beta1_power, variable.dtype)
            b2p = tf.cast(self.beta2_power, variable.dtype)
            index = self._index_dict[self._var_key(variable)]
            m, v = self._momentums[index], self._velocities[index]
            alpha = lr * tf.sqrt(1 - b2p) / (1 - b1p)
            m.assign_add((gradient - m) * (1 - self.beta_1))
            v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
            variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))

        def apply_gradients(self, grads_and_vars: Any, *args: Any, **kwargs: Any) -> Any:
            result = super().apply_gradients(grads_and_vars, *args, **kwargs)
            self._advance_powers()  # after every variable's update, as TF1's _finish
            return result

    return Adam
