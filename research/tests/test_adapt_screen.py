"""The adaptation screen's folds, variants and pooled scores (research/adapt_screen.py)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from research import adapt_screen


def test_variants_parse_into_known_settings_only():
    assert adapt_screen.parse_variant("default:") == ("default", {})
    assert adapt_screen.parse_variant("b:balanced=1,steps=600,lr=1e-3") == (
        "b", {"balanced": 1, "steps": 600, "lr": 1e-3})
    with pytest.raises(argparse.ArgumentTypeError, match="unknown setting 'epochs'"):
        adapt_screen.parse_variant("x:epochs=3")
    with pytest.raises(argparse.ArgumentTypeError, match="needs a name"):
        adapt_screen.parse_variant(":steps=3")


def test_folds_deal_each_class_evenly_and_depend_on_the_seed():
    labels = np.array([0] * 7 + [1] * 3 + [2] * 12)
    fold = adapt_screen.stratified_folds(labels, 3, seed=1)
    for c, n in ((0, 7), (1, 3), (2, 12)):
        counts = np.bincount(fold[labels == c], minlength=3)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert not np.array_equal(fold, adapt_screen.stratified_folds(labels, 3, seed=2))


def test_pooled_scores_count_every_fold_and_class():
    folds = [{"n": 4, "correct": 3, "per_class_right": [2, 1], "per_class_n": [2, 2]},
             {"n": 2, "correct": 1, "per_class_right": [0, 1], "per_class_n": [1, 1]}]
    assert adapt_screen.pooled(folds) == {"n": 6, "accuracy": 0.6667, "recall": [0.667, 0.667]}


def test_colour_transfer_gives_the_target_cells_channel_mean_and_spread():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.7, size=(16, 16, 3)).astype(np.float32)
    target_mean, target_std = np.array([0.6, 0.5, 0.4], np.float32), np.array([0.05, 0.08, 0.02], np.float32)
    moved = adapt_screen.colour_transfer(image, target_mean, target_std).numpy()
    mean, std = adapt_screen.channel_stats(moved[None])
    np.testing.assert_allclose(mean[0], target_mean, atol=1e-4)
    np.testing.assert_allclose(std[0], target_std, rtol=0.02)  # the 1e-3 guard on a flat channel
    assert moved.min() >= 0.0 and moved.max() <= 1.0
