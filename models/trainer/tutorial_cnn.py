"""The original tutorial's CNN, written once for both Keras generations.

The pipeline builds it with tf_keras (models/trainer/architectures.py); the benchmark's published-recipe
run builds it with Keras 3 (benchmarks/quality/tutorial_recipe.py), which also trains on JAX or PyTorch
on a GPU machine without TensorFlow. The layer API used here is the same in both.
"""
from __future__ import annotations


def tutorial_layers(keras, num_classes: int) -> list:
    """Conv80-Conv64-Pool-Conv64-Dropout-Dense128-Dropout, softmax output (~10.7 M weights at 80x80)."""
    layers = keras.layers
    return [
        layers.Conv2D(80, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        # float32 output keeps softmax stable under mixed precision.
        layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities"),
    ]
