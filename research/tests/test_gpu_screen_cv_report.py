"""Cross-validation by cell (research/gpu_screen/cv_report.py): folds keep cells whole, held-out
results join per model, and TEST-like draws follow the cells' shares."""
import numpy as np
import pytest

from research.gpu_screen.cv_report import (cell_shares, draw_test_like, fold_of_groups, out_of_fold,
                                             derived_held_out)


def _groups(sizes_per_class):
    labels, groups = [], []
    for c, sizes in enumerate(sizes_per_class):
        for size in sizes:
            groups += [len(set(groups))] * size
            labels += [c] * size
    return np.array(groups), np.array(labels)


def test_folds_keep_each_cell_whole_and_share_every_class():
    groups, labels = _groups([[60, 40, 30, 30, 20, 10, 5, 1], [50, 50, 50, 50, 50], [155, 150, 140, 90, 60],
                              [13] * 40])
    fold = fold_of_groups(groups, labels, 5)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    for c in range(4):
        per_fold = np.bincount(fold[labels == c], minlength=5)
        assert per_fold.min() > 0
        assert per_fold.max() - per_fold.min() <= np.bincount(groups[labels == c]).max()
    assert (fold == fold_of_groups(groups, labels, 5)).all()


def test_held_out_probabilities_join_per_model_and_an_unfinished_model_is_left_out():
    def result(variant, seed, fold, index, cls):
        prob = np.eye(4)[[cls] * len(index)].tolist()
        return {"variant": variant, "fold": fold, "heldout_index": index, "runs": [{"seed": seed, "eight_view_prob": prob}]}

    results = [result("a", 1, 0, [0, 2], 1), result("a", 1, 1, [1, 3], 2),
               result("b", 1, 0, [0, 2], 0)]  # b's fold 1 did not finish
    merged = out_of_fold(results, 4)
    assert list(merged) == ["a seed 1"]
    assert merged["a seed 1"].argmax(1).tolist() == [1, 2, 1, 2]


def test_cell_shares_leave_out_stray_copies():
    groups = np.array([0] * 5 + [1] * 2 + [2] * 6)
    labels = np.array([2] * 7 + [3] * 6)
    pred = np.array([2, 2, 2, 3, 3] + [2, 2] + [3] * 6)
    shares = cell_shares(np.eye(4)[pred], labels, groups)
    assert shares == {0: (2, pytest.approx(0.6)), 2: (3, 1.0)}


def test_test_like_draws_follow_the_cells():
    perfect = {g: (g % 4, 1.0) for g in range(40)}
    t = draw_test_like(perfect, draws=2000)
    assert t["accuracy_median"] == 1.0 and t["p_whole_goal"] == 1.0
    # two of eight monocyte cells are never right: 4 drawn monocytes are all right 0.75^4 of the time
    shares = {g: (c, 1.0) for g, c in enumerate([0] * 8 + [1] * 8 + [3] * 8)}
    shares.update({100 + i: (2, 0.0 if i < 2 else 1.0) for i in range(8)})
    t = draw_test_like(shares, draws=20000)
    assert t["p_recall_goal_per_class"][2] == pytest.approx(0.75 ** 4, abs=0.02)
    assert t["p_recall_goal_per_class"][0] == 1.0
    assert t["p_whole_goal"] == pytest.approx(0.75 ** 4, abs=0.02)
    # TEST_SIMPLE-like: 71 cells with about one monocyte wrong, so 67 or more nearly always
    assert t["p_simple_goal"] > 0.95


def test_recoloured_figures_are_weighted_by_each_fold_s_held_out_images():
    def result(fold, n, right, wrong):
        return {"variant": "a", "fold": fold, "heldout_index": list(range(n)),
                "runs": [{"seed": 1, "recoloured_eight_view": right, "recoloured_confident_wrong": wrong}]}

    got = derived_held_out([result(0, 100, 0.9, 0.05), result(1, 300, 0.5, 0.25),
                               {"variant": "b", "fold": 0, "heldout_index": [0], "runs": [{"seed": 1}]}])
    assert list(got) == ["a seed 1"]
    assert got["a seed 1"]["recoloured"] == pytest.approx(0.6)
    assert got["a seed 1"]["recoloured_confident_wrong"] == pytest.approx(0.2)


def test_frame_recoloured_figures_are_weighted_by_the_images_recoloured():
    # export_cells.py --recoloured-every: each fold answers only its recoloured share of the held-out images
    def result(fold, held_out, recoloured, right):
        return {"variant": "a", "fold": fold, "heldout_index": list(range(held_out)),
                "runs": [{"seed": 1, "recoloured_eight_view": right, "recoloured_confident_wrong": 0.0,
                          "recoloured_images": recoloured}]}

    got = derived_held_out([result(0, 300, 10, 1.0), result(1, 100, 30, 0.0)])
    assert got["a seed 1"]["recoloured"] == pytest.approx(0.25)


def test_magnified_figures_are_kept_apart_from_the_recoloured_ones():
    run = {"seed": 1, "recoloured_eight_view": 0.8, "recoloured_confident_wrong": 0.1, "recoloured_images": 10,
           "magnified_eight_view": 0.5, "magnified_confident_wrong": 0.3, "magnified_images": 30}
    got = derived_held_out([{"variant": "a", "fold": 0, "heldout_index": list(range(90)), "runs": [run]}])
    assert got["a seed 1"] == pytest.approx({"recoloured": 0.8, "recoloured_confident_wrong": 0.1,
                                             "magnified": 0.5, "magnified_confident_wrong": 0.3})
