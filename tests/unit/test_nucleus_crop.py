"""The nucleus-centred crop: finds a purple nucleus wherever it is, sizes the window by it, and falls
back to the centre when there is none."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.transform.nucleus_crop import nucleus_boxes, nucleus_crop
from models.transform.resize import antialiased_crop_resize, antialiased_resize

PINK, PURPLE = (0.85, 0.65, 0.7), (0.45, 0.2, 0.7)


def frame(center, radius, h=240, w=320):
    img = np.ones((h, w, 3), np.float32) * np.array(PINK, np.float32)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2] = PURPLE
    return img


def test_window_is_centred_on_the_nucleus_and_sized_by_it():
    boxes = nucleus_boxes(tf.constant(np.stack([frame((120, 160), 20), frame((60, 250), 20),
                                                frame((120, 160), 40)]))).numpy()
    top, left, side, _ = boxes[0]
    assert abs(top + side / 2 - 120) < 3 and abs(left + side / 2 - 160) < 3
    assert abs(boxes[1][0] + boxes[1][2] / 2 - 60) < 3 and abs(boxes[1][1] + boxes[1][3] / 2 - 250) < 3
    # Twice the nucleus width, twice the window: the cell fills the input the same way.
    assert abs(boxes[2][2] / boxes[0][2] - 2) < 0.1


def test_window_stays_inside_the_image_and_without_a_nucleus_takes_the_centre():
    boxes = nucleus_boxes(tf.constant(np.stack([frame((5, 5), 30), frame((0, 0), 0)]))).numpy()
    top, left, side, _ = boxes[0]
    assert top >= 0 and left >= 0 and top + side <= 240 and left + side <= 320
    np.testing.assert_allclose(boxes[1], [0, 40, 240, 240])


def test_magnified_cell_gives_nearly_the_same_crop():
    small = frame((120, 160), 15)
    big = frame((120, 160), 45)   # three times the magnification
    crops = nucleus_crop(tf.constant(np.stack([small, big])), 64).numpy()
    assert np.abs(crops[0] - crops[1]).mean() < 0.03


def test_full_frame_crop_is_the_antialiased_resize():
    images = tf.constant(np.random.default_rng(0).random((2, 240, 320, 3), dtype=np.float32))
    whole = tf.constant([[0, 0, 240, 320]] * 2, tf.float32)
    np.testing.assert_allclose(antialiased_crop_resize(images, whole, 80).numpy(),
                               antialiased_resize(images, 80).numpy(), atol=1e-6)
    window = tf.constant([[40, 60, 120, 120]] * 2, tf.float32)
    expected = tf.image.resize(images[:, 40:160, 60:180], [80, 80], antialias=True).numpy()
    got = antialiased_crop_resize(images, window, 80).numpy()
    # At the window's edges the filter also reads the pixels just outside it (a slice cannot): compare inside.
    np.testing.assert_allclose(got[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], atol=1e-5)
