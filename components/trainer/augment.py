"""Training-time augmentation that suits stained cells: orientation carries no meaning, and stain
intensity and hue vary a little between slides."""
from __future__ import annotations

import tensorflow as tf


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """image: float32 [H, W, 3] in [0, 1]; seed: int [2] (stateless ops, reproducible per seed)."""
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    k = tf.random.stateless_uniform([], seeds[1], minval=0, maxval=4, dtype=tf.int32)
    image = tf.image.rot90(image, k)
    image = tf.image.stateless_random_brightness(image, 0.05, seeds[2])
    image = tf.image.stateless_random_contrast(image, 0.9, 1.1, seeds[3])
    image = tf.image.stateless_random_saturation(image, 0.9, 1.1, seeds[4])
    image = tf.image.stateless_random_hue(image, 0.02, seeds[5])
    return tf.clip_by_value(image, 0.0, 1.0)
