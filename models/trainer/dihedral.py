"""Test-time averaging over the 8 symmetries of the square crop (rotations by 90 degrees, and
mirror images). A cell on a slide has no up or left, so the model's answer should not have one
either; averaging also steadies its probabilities. Built from transpose and reverse only, ops that
TensorFlow.js has, so the browser model averages the same way."""
from __future__ import annotations

import tensorflow as tf

NUM_VIEWS = 8


def dihedral_views(images: tf.Tensor) -> tf.Tensor:
    """[B, S, S, C] -> [8B, S, S, C]: view v of image b is row v * B + b."""
    transposed = tf.transpose(images, [0, 2, 1, 3])
    views = []
    for base in (images, transposed):
        views += [base, tf.reverse(base, [1]), tf.reverse(base, [2]), tf.reverse(base, [1, 2])]
    return tf.concat(views, axis=0)


def average_views(values: tf.Tensor) -> tf.Tensor:
    """[8B, ...] -> [B, ...]: the mean over the views of each image."""
    shape = tf.shape(values)
    grouped = tf.reshape(values, tf.concat([[NUM_VIEWS, shape[0] // NUM_VIEWS], shape[1:]], axis=0))
    return tf.reduce_mean(grouped, axis=0)


def run_views(model, images: tf.Tensor, average_symmetries: bool):
    """The model's outputs for a batch, averaged over the crop's 8 symmetries when asked."""
    if not average_symmetries:
        return model(images, training=False)
    outputs = model(dihedral_views(images), training=False)
    if isinstance(outputs, (list, tuple)):
        return [average_views(o) for o in outputs]
    return average_views(outputs)
