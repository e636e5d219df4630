from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from components.trainer import stain_hue


def _cell(hue_shift=0.0):
    """A lilac disc (nucleus) and a pink one (red cell) on a pale background, hue optionally shifted."""
    yy, xx = np.mgrid[:40, :40]
    image = np.full((40, 40, 3), (0.92, 0.88, 0.9), np.float32)
    image[(yy - 14) ** 2 + (xx - 14) ** 2 < 64] = (0.45, 0.25, 0.6)
    image[(yy - 28) ** 2 + (xx - 28) ** 2 < 49] = (0.85, 0.55, 0.6)
    return tf.image.adjust_hue(tf.constant(image), hue_shift)


def _mean_chroma_angle(images):
    yiq = np.tensordot(np.asarray(images), stain_hue._RGB_TO_YIQ, axes=1)
    return math.degrees(math.atan2(yiq[..., 2].mean(), yiq[..., 1].mean()))


def test_mean_chroma_is_turned_to_the_reference_angle_and_brightness_kept():
    images = tf.stack([_cell(0.0), _cell(0.1), _cell(-0.08)])
    out = stain_hue.normalise_stain_hue(images).numpy()
    for image in out:
        assert abs(_mean_chroma_angle(image) - stain_hue.REFERENCE_ANGLE_DEGREES) < 0.5
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(out @ luma, images.numpy() @ luma, atol=1e-5)


def _chroma(images):
    return (np.asarray(images) @ stain_hue._RGB_TO_YIQ)[..., 1:]


def test_the_chroma_of_a_global_hue_shift_is_mostly_undone():
    # An HSV hue shift (what augmentation and other stains do) also changes luma, which this layer keeps.
    plain = stain_hue.normalise_stain_hue(_cell(0.0)[None])
    for shift in (0.05, -0.1):
        shifted = _cell(shift)[None]
        before = np.abs(_chroma(shifted) - _chroma(_cell(0.0)[None])).mean()
        after = np.abs(_chroma(stain_hue.normalise_stain_hue(shifted)) - _chroma(plain)).mean()
        assert after < before / 2


def test_an_exact_chroma_rotation_is_undone_exactly():
    image = _cell(0.0).numpy()
    yiq = image @ stain_hue._RGB_TO_YIQ
    turn = math.radians(40)
    i, q = yiq[..., 1], yiq[..., 2]
    yiq = np.stack([yiq[..., 0], math.cos(turn) * i - math.sin(turn) * q, math.sin(turn) * i + math.cos(turn) * q], -1)
    rotated = yiq @ stain_hue._YIQ_TO_RGB
    a = stain_hue.normalise_stain_hue(tf.constant(image[None])).numpy()
    b = stain_hue.normalise_stain_hue(tf.constant(rotated[None])).numpy()
    np.testing.assert_allclose(a, b, atol=1e-3)  # up to the grey-image guard


def test_grey_images_are_left_as_they_are():
    grey = tf.constant(np.linspace(0.0, 1.0, 2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3).mean(-1, keepdims=True)
                       * np.ones(3, np.float32))
    np.testing.assert_allclose(stain_hue.normalise_stain_hue(grey).numpy(), grey.numpy(), atol=1e-5)
