"""The review-score variants of research/flag_probe.py."""
from __future__ import annotations

import numpy as np

from models.trainer import typicality
from research import flag_probe


def _labs(rng):
    base = rng.normal(size=(400, 4)).astype(np.float32)
    lab = rng.normal(size=(40, 4)).astype(np.float32)
    lab[:, 0] *= 4.0  # the lab's cells vary along one direction the base's barely do
    lab += 10.0
    return base, np.arange(400) % 2, lab, np.arange(40) % 2


def test_the_pooled_covariance_widens_the_score_only_along_the_lab_cells_spread():
    rng = np.random.default_rng(0)
    base, base_y, lab, lab_y = _labs(rng)
    val = rng.normal(size=(400, 4)).astype(np.float32)
    means, precision = flag_probe.pooled_fit(base, base_y, lab, lab_y, 2, lab_share=0.25)
    assert means.shape == (4, 4)
    limit = typicality.threshold(typicality.min_distance(val, means, precision))
    limits = np.full(len(means), limit, np.float32)
    new_lab = rng.normal(size=(200, 4)).astype(np.float32)
    new_lab[:, 0] *= 4.0
    new_lab += 10.0
    along = lab.mean(axis=0) + np.array([[6.0, 0, 0, 0]], np.float32)   # where the lab's cells do vary
    across = lab.mean(axis=0) + np.array([[0, 6.0, 0, 0]], np.float32)  # where they do not
    shared_means, shared_precision, _ = typicality.fit(base, base_y, 2)
    shared_means = typicality.with_lab_means(shared_means, lab, lab_y)
    shared_limit = typicality.threshold(typicality.min_distance(val, shared_means, shared_precision))
    shared = flag_probe.scores(shared_means, shared_precision, np.full(4, shared_limit, np.float32), new_lab)
    pooled = flag_probe.scores(means, precision, limits, new_lab)
    assert (pooled > 1).mean() < 0.2 < 0.35 < (shared > 1).mean()
    assert flag_probe.scores(means, precision, limits, along)[0] < 1 < flag_probe.scores(means, precision, limits, across)[0]


def test_summary_counts_flags_among_right_and_wrong_answers():
    atypicality = np.array([2.0, 0.5, 0.5, 0.5])
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.95, 0.05], [0.1, 0.9]])
    out = flag_probe.summary(atypicality, probabilities, np.array([0, 0, 1, 1]))
    assert out == {"n": 4, "unlike": 0.25, "flagged": 0.5, "right": 3, "errors_flagged": 0.0,
                   "right_flagged": 2 / 3}
