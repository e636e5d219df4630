"""A square crop centred on the stained white-cell nucleus and sized by it.

Giemsa/Wright stains colour the nucleus purple: blue stays, green is absorbed. So (blue - green) is
high on the nucleus (about 0.25-0.6 on a 0-1 scale in this dataset) and low on red cells and
background (under about 0.1). The crop window is centred on the weighted centroid of that score and
is SIDE_PER_NUCLEUS_WIDTH times the nucleus's width (square root of its area), so a cell seen at
another magnification fills the model's input the same way. The crop is cut with the antialiased
matrix resize: these are plain TensorFlow ops that TensorFlow.js also runs, and Transform and the
browser model use this same function.
"""
from __future__ import annotations

import tensorflow as tf

from models.transform.resize import antialiased_crop_resize

STAIN_MIN = 0.12              # weaker (blue - green) is no nucleus at all
PEAK_SHARE = 0.5              # the nucleus: pixels over half the image's strongest stain
SIDE_PER_NUCLEUS_WIDTH = 2.5  # window side / sqrt(nucleus area)
MIN_SIDE_SHARE = 0.3          # of the image's short side; also the window when no nucleus is found
POOL = 4                      # the score is read on 4x4 blocks: JPEG noise and lone pixels average out


def nucleus_weight(score: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The stain score (blue - green) of POOL x POOL blocks, [b, ...] -> (each block's weight in the
    nucleus, 0 outside it; whether it is over the threshold), [b, ...] each."""
    axes = list(range(1, len(score.shape)))
    peak = tf.reduce_max(score, axis=axes, keepdims=True)
    threshold = tf.maximum(PEAK_SHARE * peak, STAIN_MIN)
    return tf.nn.relu(score - threshold), score > threshold


def nucleus_centres(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """float32 [b, h, w, 3] in [0, 1] -> (row, column, area) of each nucleus in pixels, [b] each.
    The area is 0 where no nucleus is found; the centre is then the image's."""
    shape = tf.cast(tf.shape(images), tf.float32)
    height, width = shape[1], shape[2]
    score = tf.nn.avg_pool2d(images[..., 2:3] - images[..., 1:2], POOL, POOL, "VALID")  # [b, h/4, w/4, 1]
    weight, inside = nucleus_weight(score)
    total = tf.reduce_sum(weight, axis=[1, 2, 3])
    found = total > 0.0
    safe_total = tf.maximum(total, 1e-12)
    pooled = tf.cast(tf.shape(score), tf.float32)
    ys = (tf.range(pooled[1]) + 0.5) * POOL
    xs = (tf.range(pooled[2]) + 0.5) * POOL
    cy = tf.reduce_sum(weight * ys[None, :, None, None], axis=[1, 2, 3]) / safe_total
    cx = tf.reduce_sum(weight * xs[None, None, :, None], axis=[1, 2, 3]) / safe_total
    area = tf.reduce_sum(tf.cast(inside, tf.float32), axis=[1, 2, 3]) * POOL * POOL
    return tf.where(found, cy, height / 2.0), tf.where(found, cx, width / 2.0), area


def nucleus_boxes(images: tf.Tensor) -> tf.Tensor:
    """float32 [b, h, w, 3] in [0, 1] -> boxes [b, 4] = (top, left, side, side) in pixels, inside the image."""
    shape = tf.cast(tf.shape(images), tf.float32)
    height, width = shape[1], shape[2]
    cy, cx, area = nucleus_centres(images)
    short = tf.minimum(height, width)
    side = tf.clip_by_value(SIDE_PER_NUCLEUS_WIDTH * tf.sqrt(area), MIN_SIDE_SHARE * short, short)
    side = tf.where(area > 0.0, side, short)
    top = tf.clip_by_value(cy - side / 2.0, 0.0, height - side)
    left = tf.clip_by_value(cx - side / 2.0, 0.0, width - side)
    return tf.stack([top, left, side, side], axis=1)


def nucleus_crop(images: tf.Tensor, size: int) -> tf.Tensor:
    """float32 [b, h, w, 3] in [0, 1] -> [b, size, size, 3]: the cell, centred and scaled by its nucleus."""
    return antialiased_crop_resize(images, nucleus_boxes(images), size)
