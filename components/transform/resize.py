"""Antialiased bilinear resize built from matrix products.

tf.image.resize(..., antialias=True), which Transform uses, runs the ScaleAndTranslate op, and
TensorFlow.js has no such op. This computes the same thing (the triangle filter, widened by the
downscale factor, normalised per output pixel) as two matrix products whose weights are built from
ops every runtime has, so the browser model can contain exactly Transform's resize.
"""
from __future__ import annotations

import tensorflow as tf


def _triangle_weights(n_in: tf.Tensor, n_out: int) -> tf.Tensor:
    """[n_out, n_in] interpolation weights along one axis."""
    n_in = tf.cast(n_in, tf.float32)
    inv_scale = n_in / float(n_out)
    support = tf.maximum(inv_scale, 1.0)  # antialiasing: the kernel widens when shrinking
    centers = (tf.range(float(n_out)) + 0.5) * inv_scale
    pixels = tf.range(n_in) + 0.5
    weights = tf.nn.relu(1.0 - tf.abs(pixels[None, :] - centers[:, None]) / support)
    return weights / tf.reduce_sum(weights, axis=1, keepdims=True)


def antialiased_resize(images: tf.Tensor, size: int) -> tf.Tensor:
    """float32 [batch, height, width, channels] -> [batch, size, size, channels]."""
    shape = tf.shape(images)
    wy = _triangle_weights(shape[1], size)              # [size, height]
    wx = _triangle_weights(shape[2], size)              # [size, width]
    x = tf.transpose(images, [0, 3, 1, 2])              # [b, c, h, w]
    x = tf.matmul(tf.matmul(wy, x), wx, transpose_b=True)  # [b, c, size, size]
    return tf.transpose(x, [0, 2, 3, 1])
