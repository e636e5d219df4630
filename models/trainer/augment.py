"""Training-time augmentation that suits stained cells: orientation carries no meaning, the nucleus
crop's size and centre are estimates, and stain colour and illumination differ between labs."""
from __future__ import annotations

import math

import tensorflow as tf

# Apparent cell size relative to the nucleus crop: 0.75x (zoomed out) to 1.4x (zoomed in). Covers the
# crop's own error, and a crop clamped to the frame when the cell is magnified about 3x.
MIN_ZOOM, MAX_ZOOM = 0.75, 1.4
MAX_SHIFT = 0.08              # the crop centre moves by up to this share of the side
HUE_DELTA = 0.1               # turns of the colour wheel: other stains
SATURATION = (0.6, 1.4)
BRIGHTNESS_DELTA = 0.08
CONTRAST = (0.8, 1.25)
CHANNEL_GAIN = 0.1            # each of R, G, B scaled by 1 +- this: colour cast of the lamp or camera


def zoom_and_shift(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A random window of the square crop, resized back to its size. Zooming out shows mirrored
    borders, as flat and cell-free as the blood film around them."""
    size = image.shape[0]
    pad = int(math.ceil(size * (1.0 / MIN_ZOOM - 1.0) / 2.0)) + int(math.ceil(size * MAX_SHIFT))
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    full = size + 2 * pad
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    log_zoom = tf.random.stateless_uniform([], seeds[0], math.log(MIN_ZOOM), math.log(MAX_ZOOM))
    side = size / tf.exp(log_zoom)
    centre = full / 2.0 + tf.random.stateless_uniform([2], seeds[1], -MAX_SHIFT, MAX_SHIFT) * size
    lo = (centre - side / 2.0) / (full - 1)
    hi = (centre + side / 2.0) / (full - 1)
    box = tf.reshape(tf.concat([lo, hi], axis=0), [1, 4])
    return tf.image.crop_and_resize(padded[None], box, [0], [size, size], method="bilinear")[0]


def recolour(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS_DELTA, seeds[0])
    image = tf.image.stateless_random_contrast(image, *CONTRAST, seeds[1])
    image = tf.image.stateless_random_saturation(image, *SATURATION, seeds[2])
    image = tf.image.stateless_random_hue(image, HUE_DELTA, seeds[3])
    gain = tf.random.stateless_uniform([3], seeds[4], 1.0 - CHANNEL_GAIN, 1.0 + CHANNEL_GAIN)
    return image * gain


def recolour_only(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Stain and illumination changes alone: what the review score should treat as typical."""
    return tf.clip_by_value(recolour(image, seed), 0.0, 1.0)


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """image: float32 [S, S, 3] in [0, 1]; seed: int [2] (stateless ops, reproducible per seed)."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    image = zoom_and_shift(image, seeds[0])
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    k = tf.random.stateless_uniform([], seeds[2], minval=0, maxval=4, dtype=tf.int32)
    image = tf.image.rot90(image, k)
    image = recolour(tf.clip_by_value(image, 0.0, 1.0), seeds[3])
    return tf.clip_by_value(image, 0.0, 1.0)
