from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.trainer import augment


def _disc(size=80, radius=16):
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size, 3), 0.9, np.float32)
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2] = (0.4, 0.2, 0.6)
    return tf.constant(image)


def _dark_area(image):
    return int((np.asarray(image).mean(axis=-1) < 0.6).sum())


def test_augment_keeps_shape_and_range_and_is_reproducible_per_seed():
    image = _disc()
    a = augment.augment(image, tf.constant([1, 2], tf.int64)).numpy()
    b = augment.augment(image, tf.constant([1, 2], tf.int64)).numpy()
    c = augment.augment(image, tf.constant([1, 3], tf.int64)).numpy()
    assert a.shape == (80, 80, 3) and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zoom_covers_the_configured_range_of_apparent_sizes():
    image = _disc()
    base = _dark_area(image)
    ratios = [_dark_area(augment.zoom_and_shift(image, tf.constant([s, 0], tf.int64))) / base for s in range(60)]
    # Area scales with the square of the zoom.
    assert min(ratios) < 0.7 and max(ratios) > 1.5
    assert min(ratios) > augment.MIN_ZOOM ** 2 * 0.85 and max(ratios) < augment.MAX_ZOOM ** 2 * 1.15


def test_recolour_changes_colour_but_not_geometry():
    image = _disc()
    out = augment.recolour(image, tf.constant([5, 7], tf.int64)).numpy()
    assert not np.allclose(out, image.numpy(), atol=0.02)
    assert _dark_area(np.clip(out, 0, 1)) in range(_dark_area(image) - 40, _dark_area(image) + 40)


def test_recoloured_dataset_keeps_order_and_labels_and_changes_only_colour():
    from models.trainer.data import recoloured

    images = tf.stack([_disc(radius=r) for r in (8, 12, 16, 20, 24)])
    labels = tf.constant([0, 1, 2, 3, 0], tf.int64)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    out = list(recoloured(ds, seed=3, batch_size=2).unbatch().as_numpy_iterator())
    again = list(recoloured(ds, seed=3, batch_size=2).unbatch().as_numpy_iterator())
    assert [y for _, y in out] == [0, 1, 2, 3, 0]
    for (x, _), (x2, _), original in zip(out, again, images.numpy()):
        np.testing.assert_array_equal(x, x2)                              # reproducible per seed
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert not np.allclose(x, original, atol=0.02)
        assert abs(_dark_area(x) - _dark_area(original)) < 40             # the same cell, in place
