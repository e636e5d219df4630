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


def _base_and_lab(rng, lab_spread):
    base = rng.normal(size=(400, 6)).astype(np.float32)
    val = rng.normal(size=(400, 6)).astype(np.float32)
    lab = (rng.normal(size=(240, 6)) * lab_spread + 8.0).astype(np.float32)  # another lab: far from every base cell
    return base, np.arange(400) % 2, val, lab, np.arange(240) % 2


def _with_copies(features, labels, rng):
    """Each lab cell and a slightly changed copy of it (the recoloured one), numbered as the Trainer does."""
    copies = features + rng.normal(size=features.shape).astype(np.float32) * 0.1
    return np.concatenate([features, copies]), np.tile(labels, 2), np.tile(np.arange(len(features)), 2)


def test_a_labs_own_cells_add_means_so_an_adapted_model_does_not_flag_that_lab_wholesale():
    rng = np.random.default_rng(0)
    base, labels, val, lab, lab_labels = _base_and_lab(rng, lab_spread=1.0)
    plain = typicality.fit_score(base, labels, val, 2)
    adapted = typicality.fit_score(base, labels, val, 2, _with_copies(lab[:40], lab_labels[:40], rng))
    assert adapted["means"].shape == (4, 6) and np.array_equal(adapted["means"][:2], plain["means"])
    new_lab = lab[40:]
    before = typicality.atypicality(new_lab, plain["means"], plain["precision"], plain["limits"])
    after = typicality.atypicality(new_lab, adapted["means"], adapted["precision"], adapted["limits"])
    assert before.min() > 10 and (after > 1).mean() < 0.1
    # The base cells keep their scores: their own means and limit are still there.
    np.testing.assert_allclose(typicality.atypicality(val, adapted["means"], adapted["precision"], adapted["limits"]),
                               typicality.atypicality(val, plain["means"], plain["precision"], plain["limits"]))


def test_a_lab_spread_wider_than_the_base_lab_is_measured_by_its_own_limit():
    """Another lab's cells spread wider under the base lab's covariance (Tecom's did). Measured against
    the base's limit, most of that lab's new cells, and most of the very cells adapted on, read as
    unlike the training images; against the limit its own train cells set (each left out of its
    class's mean), about as few as the base's own val cells do. An input unlike both is still flagged."""
    rng = np.random.default_rng(3)
    base, labels, val, lab, lab_labels = _base_and_lab(rng, lab_spread=2.5)
    train_lab, new_lab = lab[:40], lab[40:]
    score = typicality.fit_score(base, labels, val, 2, _with_copies(train_lab, lab_labels[:40], rng))
    means, precision, limits = score["means"], score["precision"], score["limits"]
    base_limit = limits[0]
    assert np.all(limits[:2] == base_limit) and np.all(limits[2:] > 3 * base_limit)
    with_base_limit = typicality.min_distance(new_lab, means, precision) / base_limit
    assert (with_base_limit > 1).mean() > 0.5
    assert (typicality.min_distance(train_lab, means, precision) / base_limit > 1).mean() > 0.5
    assert (typicality.atypicality(new_lab, means, precision, limits) > 1).mean() < 0.1
    assert (typicality.atypicality(val, means, precision, limits) > 1).mean() < 0.05
    unlike_both = np.full((1, 6), -20.0, np.float32)
    assert typicality.atypicality(unlike_both, means, precision, limits)[0] > 1


def test_a_lab_class_of_one_cell_gets_a_mean_and_the_base_limit():
    rng = np.random.default_rng(4)
    base, labels, val, lab, _ = _base_and_lab(rng, lab_spread=2.5)
    score = typicality.fit_score(base, labels, val, 2, _with_copies(lab[:1], np.array([1]), rng))
    assert score["means"].shape == (3, 6)
    assert np.all(score["limits"] == score["limits"][0])
    no_lab = typicality.fit_score(base, labels, val, 2, (lab[:0], np.zeros(0, int), np.zeros(0, int)))
    assert no_lab["means"].shape == (2, 6)


def test_each_lab_cell_is_measured_against_its_classs_other_cells_with_its_copy_left_out():
    """One feature, unit precision. Class 0: cells at 0, 2 and 7, each with an identical copy (its
    recoloured self). Cell 0 against the others' mean 4.5: 20.25, scaled by (n+1)(n-1)/n^2 = 8/9 for
    n = 3. Left in, its copy would pull the mean toward it. Class 1 has one cell: no distance."""
    feats = np.array([[0.0], [2.0], [7.0], [5.0], [0.0], [2.0], [7.0], [5.0]])
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    cells = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    got = typicality.left_out_distances(feats, labels, cells, np.eye(1))
    expected = np.array([4.5 ** 2, 1.5 ** 2, 6.0 ** 2] * 2) * 8 / 9
    np.testing.assert_allclose(np.sort(got), np.sort(expected))
    np.testing.assert_allclose(typicality.lab_means(feats, labels), [[3.0], [5.0]])


def test_the_lab_limit_scales_the_base_limit_by_the_lab_cells_spread_and_one_odd_cell_barely_moves_it():
    rng = np.random.default_rng(6)
    base, labels, val, lab, lab_labels = _base_and_lab(rng, lab_spread=2.0)
    score = typicality.fit_score(base, labels, val, 2, _with_copies(lab[:40], lab_labels[:40], rng))
    assert 3.0 < score["lab_limit"] / score["base_limit"] < 5.5  # about 2.0 ** 2
    odd = lab[:40].copy()
    odd[0] += 10.0  # a mis-cropped cell among the reviewed ones, five spreads away (a 99th percentile: x11)
    with_odd = typicality.fit_score(base, labels, val, 2, _with_copies(odd, lab_labels[:40], rng))
    assert abs(with_odd["lab_limit"] / score["lab_limit"] - 1) < 0.25


def test_a_lab_tighter_than_the_base_keeps_the_base_limit():
    rng = np.random.default_rng(7)
    base, labels, val, lab, lab_labels = _base_and_lab(rng, lab_spread=0.3)
    score = typicality.fit_score(base, labels, val, 2, _with_copies(lab[:40], lab_labels[:40], rng))
    assert score["lab_limit"] < score["base_limit"]
    assert np.all(score["limits"] == np.float32(score["base_limit"]))


def test_numpy_and_tensorflow_atypicality_agree():
    rng = np.random.default_rng(5)
    base, labels, val, lab, lab_labels = _base_and_lab(rng, lab_spread=2.5)
    score = typicality.fit_score(base, labels, val, 2, _with_copies(lab[:40], lab_labels[:40], rng))
    query = np.concatenate([val[:5], lab[40:45]])
    got = typicality.atypicality(tf.constant(query), tf.constant(score["means"]), tf.constant(score["precision"]),
                                 tf.constant(score["limits"])).numpy()
    np.testing.assert_allclose(got, typicality.atypicality(query, score["means"], score["precision"], score["limits"]),
                               rtol=1e-3)
