"""TF1: ``Saver`` sessions and their bridge to Keras.

``convert`` (TF1 bundle <-> Keras training state), ``adam`` (:class:`TF1Adam`, a Keras Adam
that continues a TF1 run bit for bit), ``early_stopping`` (iteration-based early stopping
whose counters survive a restart). Live sessions are restored by :mod:`ckptcompat.runtime.tf1`.
"""
