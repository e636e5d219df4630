"""The review score's fit (models/trainer/typicality.py): stable under float32-sized changes of
the features when there are few training images, and close to the plain Mahalanobis distance when
there are many."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.trainer import typicality


def test_few_images_score_is_not_magnified_by_rounding():
    """Training features that span 120 of 256 directions (few images, each also recoloured); new
    images stray a little outside that span. A change of 1e-3 of the features' spread, as another
    backend's float32 arithmetic makes, must move the score by well under 1 % (the fixed 1e-3 ridge
    used before moved it by about 1 % here)."""
    rng = np.random.default_rng(0)
    dim, rank = 256, 120
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    shifts = rng.normal(size=(4, rank)) * 2

    def draw(labels, outside):
        inside = rng.normal(size=(len(labels), rank)) + shifts[labels]
        return np.concatenate([inside, rng.normal(size=(len(labels), dim - rank)) * outside], 1) @ basis.T

    labels = rng.integers(0, 4, 288)
    means, precision, shrinkage = typicality.fit(draw(labels, 0.0), labels, 4)
    assert shrinkage > 0.05
    query = draw(rng.integers(0, 4, 48), 0.05)
    rounded = query + rng.normal(size=query.shape) * 1e-3 * query.std()
    a = typicality.min_distance(query, means, precision)
    b = typicality.min_distance(rounded, means, precision)
    assert np.abs(b - a).max() < 0.003 * np.median(a)


def test_many_images_shrink_little_and_keep_the_mahalanobis_distance():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 20000)
    train = rng.normal(size=(20000, 256)) * np.linspace(0.3, 3, 256) + rng.normal(size=(4, 256))[labels] * 3
    means, precision, shrinkage = typicality.fit(train, labels, 4)
    assert typicality.MIN_SHRINKAGE <= shrinkage < 0.05
    exact = np.linalg.inv(np.cov((train - means[labels]).T))
    query = train[:100]
    ratio = typicality.min_distance(query, means, precision) / typicality.min_distance(query, means, exact)
    assert np.abs(ratio - 1).max() < 0.1


def test_numpy_and_tensorflow_distances_agree():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 500)
    train = rng.normal(size=(500, 32)) + rng.normal(size=(4, 32))[labels]
    means, precision, _ = typicality.fit(train, labels, 4)
    query = train[:10].astype(np.float32)
    got = typicality.min_distance(tf.constant(query), tf.constant(means), tf.constant(precision)).numpy()
    np.testing.assert_allclose(got, typicality.min_distance(query, means, precision), rtol=1e-3)


def test_fit_subset_takes_every_kth_image_up_to_the_cap():
    """The review fit's training subset: spread over the whole split (its files are in class order,
    so the first images would all be one class), at most the cap, and counted right."""
    from models.trainer.data import spread_subset

    images = tf.zeros([100, 2, 2, 3])
    ds = tf.data.Dataset.from_tensor_slices((images, tf.range(100))).batch(8)
    subset, used, total = spread_subset(ds, 30, batch_size=8)
    labels = np.concatenate([y.numpy() for _, y in subset])
    assert (used, total) == (25, 100)
    np.testing.assert_array_equal(labels, np.arange(0, 100, 4))
    whole, used, total = spread_subset(ds, 1000, batch_size=8)
    assert (used, total) == (100, 100)
    assert np.concatenate([y.numpy() for _, y in whole]).tolist() == list(range(100))


def test_a_labs_own_cells_add_means_so_an_adapted_model_does_not_flag_that_lab_wholesale():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 6)).astype(np.float32)
    labels = np.arange(400) % 2
    means, precision, _ = typicality.fit(base, labels, 2)
    lab = (rng.normal(size=(20, 6)) + 8.0).astype(np.float32)  # another lab: far from every base cell
    lab_labels = np.arange(20) % 2
    before = typicality.min_distance(lab, means, precision)
    extended = typicality.with_lab_means(means, lab[:10], lab_labels[:10])
    assert extended.shape == (4, 6) and np.array_equal(extended[:2], means)
    after = typicality.min_distance(lab[10:], extended, precision)
    assert after.max() < before.min() / 10
    # The base cells keep their distances: their own means are still there.
    assert np.allclose(typicality.min_distance(base, extended, precision), typicality.min_distance(base, means, precision))
    assert typicality.with_lab_means(means, lab[:0], lab_labels[:0]) is means


def test_the_exported_score_fits_float16_where_the_precision_does_not():
    """Features of tiny spread (a barely trained model: the bundled sample's) give a precision matrix
    with entries over float16's 65504, which the browser model's float16 weights turn into infinities.
    The exported constant is its square root, scaled by the limit: the same score, within float16."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 320)
    train = (rng.normal(size=(320, 256)) + rng.normal(size=(4, 256))[labels]) * 3e-4
    means, precision, _ = typicality.fit(train, labels, 4)
    assert np.abs(precision).max() > 65504
    limit = typicality.threshold(typicality.min_distance(train, means, precision))
    w = typicality.whitening(precision, limit)
    query = train[:50] + rng.normal(size=(50, 256)) * 3e-4
    exact = typicality.min_distance(query, means, precision) / limit
    got = typicality.min_whitened_distance(tf.constant(query, tf.float32), tf.constant(means), tf.constant(w)).numpy()
    assert np.allclose(got, exact, rtol=1e-3)
    as_float16 = w.astype(np.float16)
    assert np.isfinite(as_float16).all()
    browser = typicality.min_whitened_distance(tf.constant(query, tf.float32),
                                               tf.constant(means.astype(np.float16).astype(np.float32)),
                                               tf.constant(as_float16.astype(np.float32))).numpy()
    assert np.allclose(browser, exact, rtol=0.01)


def test_a_class_absent_from_the_fitted_images_gets_no_centre():
    # Its centre had been the mean of all features: between the real classes, near none of them, so an
    # input unlike every class read as typical.
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-5, 1, (200, 4)), rng.normal(5, 1, (200, 4))]).astype(np.float32)
    labels = np.array([0] * 200 + [1] * 200)
    means, precision, _ = typicality.fit(features, labels, num_classes=3)
    assert means.shape == (2, 4)
    midway = np.zeros((1, 4), np.float32)
    assert typicality.min_distance(midway, means, precision)[0] > 50
