"""Keras callbacks that work unchanged on Keras 2 and 3 and whose state survives resume."""
