"""Stain normalisation of the whole frame, referenced to three anchors of the frame itself.

Labs stain and light their slides differently. Absorbance (optical density, -log of the transmitted
light) is what stains add, so the frame's densities are mapped by one affine map that puts three
anchors where the reference has them: the background (lightest 5 % of the slide), the typical pixel
(median: red cells and plasma, which fill most of the frame) and the nucleus (its stain-weighted mean,
found as nucleus_crop.py finds it). A map of two anchors per channel moves the red cells back but
leaves a turned hue on the nucleus; the third anchor turns it back. The cytoplasm and granules, which
tell the classes apart, are not anchors: they follow the map.

The black fill of the dataset's rotated copies is left out. Only plain TensorFlow ops (top_k, one_hot,
reductions; the 3x3 inverse and cross products written out) are used, so the browser model runs the same function.
"""
from __future__ import annotations

import tensorflow as tf

from components.transform.nucleus_crop import POOL, nucleus_weight

DARK = 0.1               # a block whose mean channel value is below this is fill, not slide
BACKGROUND_SHARE = 0.05  # the background anchor: this share of the slide's blocks is lighter
MIN_DETERMINANT = 1e-4   # anchors nearly in line (no nucleus, a blank frame): the frame is left as it is
# The anchors' means over 240 TRAIN frames (60 a class, random.seed(0)):
# `infra/env/run.sh python benchmarks/stain_reference.py --train ../shared/data/blood-cells/images/TRAIN`
REFERENCE_BACKGROUND = (0.1584, 0.1558, 0.1561)
REFERENCE_TYPICAL = (0.2425, 0.2867, 0.2623)
REFERENCE_NUCLEUS = (0.5911, 0.8529, 0.1499)


def density(images: tf.Tensor) -> tf.Tensor:
    """Transmitted light in [0, 1] -> optical density, 0 (white) to about 5.5 (black)."""
    return -tf.math.log(tf.clip_by_value(images, 1.0 / 255.0, 1.0))


def frame_anchors(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """float32 [b, h, w, 3] in [0, 1] -> the background, typical and nucleus densities [b, 3], and
    whether the frame has slide and a nucleus [b]."""
    blocks = tf.nn.avg_pool2d(images, POOL, POOL, "VALID")
    batch = tf.shape(blocks)[0]
    flat = tf.reshape(blocks, [batch, -1, 3])
    slide = tf.reduce_mean(flat, axis=2) > DARK                                  # [b, n]
    od = density(flat)
    ascending = -tf.math.top_k(-tf.transpose(tf.where(slide[..., None], od, 1e3), [0, 2, 1]),
                               k=tf.shape(od)[1]).values                         # [b, 3, n], fill last
    count = tf.reduce_sum(tf.cast(slide, tf.float32), axis=1)                    # [b]

    def at(share: float) -> tf.Tensor:
        index = tf.cast(tf.floor(share * tf.maximum(count - 1.0, 0.0)), tf.int32)
        return tf.reduce_sum(ascending * tf.one_hot(index, tf.shape(od)[1])[:, None, :], axis=2)

    weight, _ = nucleus_weight(flat[..., 2] - flat[..., 1])                      # [b, n]; 0 on the fill
    total = tf.reduce_sum(weight, axis=1)
    nucleus = tf.reduce_sum(od * weight[..., None], axis=1) / tf.maximum(total, 1e-12)[:, None]
    return at(BACKGROUND_SHARE), at(0.5), nucleus, (count > 0.0) & (total > 0.0)


def _cross(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[b, 3] x [b, 3] -> [b, 3]. Written out: TensorFlow.js has no Cross op."""
    a0, a1, a2 = tf.unstack(a, axis=1)
    b0, b1, b2 = tf.unstack(b, axis=1)
    return tf.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=1)


def _columns(background: tf.Tensor, typical: tf.Tensor, nucleus: tf.Tensor) -> tf.Tensor:
    """[b, 3] anchors -> [b, 3, 3] columns: typical and nucleus from the background, and their cross."""
    u, v = typical - background, nucleus - background
    return tf.stack([u, v, _cross(u, v)], axis=2)


def _inverse(m: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """[b, 3, 3] -> (inverse, determinant): rows of the inverse are crosses of the columns."""
    c0, c1, c2 = m[:, :, 0], m[:, :, 1], m[:, :, 2]
    det = tf.reduce_sum(c0 * _cross(c1, c2), axis=1)
    rows = tf.stack([_cross(c1, c2), _cross(c2, c0), _cross(c0, c1)], axis=1)
    safe = tf.where(tf.abs(det) < MIN_DETERMINANT, tf.ones_like(det), det)
    return rows / safe[:, None, None], det


def normalise_stain(images: tf.Tensor) -> tf.Tensor:
    """float32 [b, h, w, 3] in [0, 1] -> the same frames as if stained and lit like the reference.
    A frame without slide or nucleus, or with anchors nearly in line, is returned unchanged."""
    background, typical, nucleus, usable = frame_anchors(images)
    columns = _columns(background, typical, nucleus)
    inverse, det = _inverse(columns)
    reference = [tf.constant(a, tf.float32)[None] for a in (REFERENCE_BACKGROUND, REFERENCE_TYPICAL,
                                                            REFERENCE_NUCLEUS)]
    target = _columns(*[tf.tile(a, [tf.shape(images)[0], 1]) for a in reference])
    linear = tf.matmul(target, inverse)                                          # [b, 3, 3]
    shape = tf.shape(images)
    od = tf.reshape(density(images), [shape[0], -1, 3]) - background[:, None, :]
    mapped = tf.matmul(od, linear, transpose_b=True) + reference[0][:, None, :]
    normalised = tf.reshape(tf.exp(-tf.nn.relu(mapped)), shape)
    keep = usable & (tf.abs(det) >= MIN_DETERMINANT)
    return tf.where(keep[:, None, None, None], tf.clip_by_value(normalised, 0.0, 1.0), images)
