"""Antialiased bilinear crop-and-resize built from matrix products.

tf.image.resize(..., antialias=True) runs the ScaleAndTranslate op, which TensorFlow.js lacks, and
tf.image.crop_and_resize does not antialias. This computes the antialiased resize of a window of each
image (the triangle filter, widened by the downscale factor, normalised per output pixel) as two
batched matrix products whose weights come from ops every runtime has, so that Transform and the
browser model run exactly the same code.
"""
from __future__ import annotations

import tensorflow as tf


def _window_weights(n_in: tf.Tensor, start: tf.Tensor, length: tf.Tensor, n_out: int) -> tf.Tensor:
    """[batch, n_out, n_in] weights sampling [start, start + length) of an axis of n_in pixels."""
    scale = length / float(n_out)                                   # [b]
    support = tf.maximum(scale, 1.0)[:, None, None]                 # the kernel widens when shrinking
    centers = start[:, None] + (tf.range(float(n_out))[None, :] + 0.5) * scale[:, None]   # [b, n_out]
    pixels = tf.range(tf.cast(n_in, tf.float32)) + 0.5              # [n_in]
    weights = tf.nn.relu(1.0 - tf.abs(pixels[None, None, :] - centers[:, :, None]) / support)
    return weights / tf.maximum(tf.reduce_sum(weights, axis=2, keepdims=True), 1e-12)


def antialiased_crop_resize(images: tf.Tensor, boxes: tf.Tensor, size: int) -> tf.Tensor:
    """float32 [b, h, w, c] and boxes [b, 4] = (top, left, height, width) in pixels, inside the image
    -> [b, size, size, c]."""
    shape = tf.shape(images)
    channels = images.shape[-1]
    wy = _window_weights(shape[1], boxes[:, 0], boxes[:, 2], size)   # [b, size, h]
    wx = _window_weights(shape[2], boxes[:, 1], boxes[:, 3], size)   # [b, size, w]
    # One weight matrix per channel too: plain batched products, no broadcasting rules needed.
    wy = tf.tile(wy[:, None], [1, channels, 1, 1])
    wx = tf.tile(wx[:, None], [1, channels, 1, 1])
    x = tf.transpose(images, [0, 3, 1, 2])                          # [b, c, h, w]
    x = tf.matmul(tf.matmul(wy, x), wx, transpose_b=True)          # [b, c, size, size]
    return tf.transpose(x, [0, 2, 3, 1])


def antialiased_resize(images: tf.Tensor, size: int) -> tf.Tensor:
    """float32 [b, h, w, c] -> [b, size, size, c]: the whole frame, as tf.image.resize(antialias=True)."""
    shape = tf.cast(tf.shape(images), tf.float32)
    whole = tf.stack([tf.zeros_like(shape[0]), tf.zeros_like(shape[0]), shape[1], shape[2]])
    return antialiased_crop_resize(images, tf.tile(whole[None], [tf.shape(images)[0], 1]), size)
