"""Stain hue normalisation, the default model's first layer.

Training recolours every crop (hue up to +-0.1 turn, components/trainer/augment.py) so that other
labs' stains do not fool the model. That also hides the colour that tells eosinophils (orange-red
granules) from neutrophils (faint lilac ones). This layer turns each image's colours round the grey
axis, in YIQ's chroma plane, so that the image's mean chroma points at one reference angle: a global
hue shift is undone, while the colours inside the image keep their differences. It is plain
arithmetic, so it runs in TF Serving and TensorFlow.js alike, and it sits after augmentation.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

# Median angle of the mean chroma of nucleus crops of the Kaggle TRAIN images (80 px, 150 a class;
# classes 83-92 degrees). The choice only sets how normalised images look; any fixed angle works.
REFERENCE_ANGLE_DEGREES = 85.0
# Added to the mean chroma in the reference direction: a grey image (no mean chroma) is left as is.
GREY_CHROMA = 1e-4

# Right-multiplied: [r, g, b] @ _RGB_TO_YIQ = [y, i, q]. The inverse is a constant (no inverse op in tfjs).
_RGB_TO_YIQ = np.array([[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def normalise_stain_hue(images: tf.Tensor) -> tf.Tensor:
    """float32 [b, h, w, 3] RGB -> the same images with their mean chroma turned to the reference angle."""
    yiq = tf.tensordot(images, tf.constant(_RGB_TO_YIQ, images.dtype), axes=1)
    ref = math.radians(REFERENCE_ANGLE_DEGREES)
    mean_i = tf.reduce_mean(yiq[..., 1], axis=[1, 2]) + GREY_CHROMA * math.cos(ref)
    mean_q = tf.reduce_mean(yiq[..., 2], axis=[1, 2]) + GREY_CHROMA * math.sin(ref)
    norm = tf.sqrt(mean_i * mean_i + mean_q * mean_q)
    cos_m, sin_m = mean_i / norm, mean_q / norm
    # Rotation by (reference - mean angle), from the angle-difference identities.
    cos_d = math.cos(ref) * cos_m + math.sin(ref) * sin_m
    sin_d = math.sin(ref) * cos_m - math.cos(ref) * sin_m
    cos_d, sin_d = cos_d[:, None, None], sin_d[:, None, None]
    i, q = yiq[..., 1], yiq[..., 2]
    turned = tf.stack([yiq[..., 0], cos_d * i - sin_d * q, sin_d * i + cos_d * q], axis=-1)
    return tf.tensordot(turned, tf.constant(_YIQ_TO_RGB, images.dtype), axes=1)


class StainHueNormalization(keras.layers.Layer):
    """normalise_stain_hue as a Keras layer."""

    def call(self, inputs):
        return normalise_stain_hue(inputs)
