"""Placeholder for tensorflow_decision_forests inside the tfjs converter's environment.

tensorflowjs 4.22 imports TF-DF at module load, but TF-DF has no build for TensorFlow 2.21 or
Python 3.13. Our models hold no decision-forest ops, so the converter never uses it; a model that
did would fail conversion with an unknown-op error, not silently.
"""
