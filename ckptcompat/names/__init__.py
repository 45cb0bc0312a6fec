"""Normalisation tables between TF1, Keras 2 and Keras 3: pure data and small pure functions."""
