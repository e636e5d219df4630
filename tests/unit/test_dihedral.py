from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.trainer import dihedral


def test_views_are_the_eight_symmetries_of_the_square():
    image = np.random.default_rng(0).random((1, 5, 5, 3)).astype(np.float32)
    views = dihedral.dihedral_views(tf.constant(image)).numpy()
    expected = []
    for k in range(4):
        rotated = np.rot90(image[0], k)
        expected += [rotated, rotated[:, ::-1]]
    assert views.shape == (8, 5, 5, 3)
    found = {np.round(v, 6).tobytes() for v in views}
    assert found == {np.round(e, 6).tobytes() for e in expected}


def test_average_undoes_the_view_layout_per_image():
    images = np.random.default_rng(1).random((3, 4, 4, 1)).astype(np.float32)
    views = dihedral.dihedral_views(tf.constant(images))
    per_view_mean = tf.reduce_mean(views, axis=[1, 2, 3])            # invariant to the symmetry
    averaged = dihedral.average_views(per_view_mean[:, None]).numpy()[:, 0]
    np.testing.assert_allclose(averaged, images.mean(axis=(1, 2, 3)), rtol=1e-6)


def test_average_makes_an_orientation_dependent_model_invariant():
    images = tf.constant(np.random.default_rng(2).random((2, 6, 6, 3)).astype(np.float32))
    weights = tf.constant(np.random.default_rng(3).random((6 * 6 * 3, 4)).astype(np.float32))

    def model(x):
        return tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), weights)

    direct = model(images).numpy()
    rotated = model(tf.image.rot90(images)).numpy()
    assert not np.allclose(direct, rotated)
    averaged = dihedral.average_views(model(dihedral.dihedral_views(images))).numpy()
    averaged_rotated = dihedral.average_views(model(dihedral.dihedral_views(tf.image.rot90(images)))).numpy()
    np.testing.assert_allclose(averaged, averaged_rotated, rtol=1e-5)
