"""Keras 2 ``Adam`` that steps like TF1's ``AdamOptimizer`` (tf.keras 2.11+ optimizers; see
:mod:`ckptcompat.tf1.adam`). Import only when Keras 2 is running (:mod:`ckptcompat.runtime.keras2`)."""

from __future__ import annotations

from typing import Any

from ckptcompat.errors import MissingDependencyError
from ckptcompat.runtime import keras_module

__all__ = ["tf1_adam_class"]


def tf1_adam_class(mixin: type) -> type:
    """Keras 2 ``Adam`` stepping like TF1's ``AdamOptimizer`` (see :mod:`ckptcompat.tf1.adam`):
    ``mixin`` keeps the ``beta1_power``/``beta2_power`` variables."""
    import tensorflow as tf

    keras = keras_module()
    if not hasattr(keras.optimizers.Adam, "update_step"):  # OptimizerV2 only: tf.keras <= 2.10
        raise MissingDependencyError(
            f"TF1Adam needs the optimizer API of tf.keras 2.11+; this tf.keras "
            f"{getattr(keras, '__version__', '?')} has only OptimizerV2",
            hint="continue a TF1 run in TensorFlow 1 itself (ckptcompat.resume(path, session=sess)), "
                 "or restore it with tf1_to_keras into a plain Adam (last-bit differences)")

    class Adam(mixin, keras.optimizers.Adam):  # type: ignore[misc,valid-type]
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
