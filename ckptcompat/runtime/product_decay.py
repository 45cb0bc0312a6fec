"""The multi-backend Keras API's decayed learning rate, continued in any later Keras.

The multi-backend Keras API (Keras 1 to 2.3, tf.keras of TF 1.4 to 1.12) applies ``decay`` as
``lr * (1 / (1 + decay * t))``; OptimizerV2's ``decay`` and every ``InverseTimeDecay`` compute
``lr / (1 + decay * t)``, which can be 1 float32 ulp apart at some steps. :func:`product_decay`
is an ``InverseTimeDecay`` of the running Keras that computes the product, in float32 as those
releases did (measured bitwise against TF 1.4's tf.keras). It serializes exactly as the
``InverseTimeDecay`` it subclasses, named :data:`~ckptcompat.names.lr_decay.PRODUCT_DECAY_NAME`:
a file saved with it loads in Keras without ckptcompat (as that quotient), and ckptcompat's resume
rebuilds the product from the name.

Imports the running Keras only (``keras.ops`` on Keras 3, TensorFlow under Keras 2).
"""

from __future__ import annotations

import functools
from typing import Any

from ckptcompat.names.lr_decay import PRODUCT_DECAY_NAME

__all__ = ["product_decay", "is_product_decay"]


def product_decay(keras: Any, learning_rate: float, decay: float) -> Any:
    """``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)`` of ``keras`` whose rate at
    step ``t`` is ``learning_rate * (1 / (1 + decay * t))``."""
    cls = _product_class(keras.optimizers.schedules.InverseTimeDecay, keras if hasattr(keras, "ops") else None)
    return cls(float(learning_rate), decay_steps=1, decay_rate=float(decay), staircase=False,
               name=PRODUCT_DECAY_NAME)


def is_product_decay(schedule: Any) -> bool:
    """True for a schedule made by :func:`product_decay`."""
    return bool(getattr(type(schedule), "_ckptcompat_product", False))


@functools.lru_cache(maxsize=None)
def _product_class(base: type, keras3: Any) -> type:
    """A subclass of ``base`` (the running Keras's ``InverseTimeDecay``) computing the product, which
    Keras serializes as ``base``."""

    def __call__(self: Any, step: Any) -> Any:  # noqa: N807 -- the schedule's call
        if keras3:
            ops = keras3.ops
            rate = ops.convert_to_tensor(self.initial_learning_rate)
            dtype = rate.dtype
            one = ops.cast(1, dtype)
            denominator = ops.add(one, ops.multiply(ops.cast(self.decay_rate, dtype), ops.cast(step, dtype)))
            return ops.multiply(rate, ops.divide(one, denominator))
        import tensorflow as tf

        rate = tf.convert_to_tensor(self.initial_learning_rate)
        dtype = rate.dtype
        one = tf.constant(1, dtype)
        return rate * (one / (one + tf.cast(self.decay_rate, dtype) * tf.cast(step, dtype)))

    def __reduce__(self: Any) -> tuple[Any, tuple[float, float]]:  # pickle and copy: the product again
        return _rebuild, (float(self.initial_learning_rate), float(self.decay_rate))

    # ``__class__`` answers the base: Keras serializes an object by its ``__class__`` (the public name
    # ``keras.optimizers.schedules.InverseTimeDecay``, as for its own); ``type()`` still tells them apart.
    # The base's module: autograph calls a Keras module's objects as they are (not its __call__ converted)
    return type("ProductInverseTimeDecay", (base,), {
        "__call__": __call__, "__reduce__": __reduce__, "_ckptcompat_product": True,
        "__class__": property(lambda self: base), "__module__": base.__module__,
        "__doc__": "InverseTimeDecay computing lr * (1 / (1 + decay * t))."})


def _rebuild(learning_rate: float, decay: float) -> Any:
    """A pickled or copied product schedule, rebuilt for the running Keras."""
    from ckptcompat import runtime

    return product_decay(runtime.keras_module(), learning_rate, decay)
