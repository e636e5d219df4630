"""The model-quality harness's figures (benchmarks/quality): metrics and derived images."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.quality import derived, metrics


def test_confusion_recall_precision():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[.9, .1], [.2, .8], [.3, .7], [.4, .6], [.6, .4]])
    out = metrics.summarize(probs, labels, ["A", "B"], review_threshold=0.75)
    assert out["confusion_matrix"] == [[1, 1], [1, 2]]
    assert out["accuracy"] == 0.6 and out["correct"] == 3
    assert out["per_class"]["A"] == {"recall": 0.5, "precision": 0.5}
    assert out["per_class"]["B"]["recall"] == 2 / 3
    assert out["review_flag_rate"] == 0.6 and out["accuracy_unflagged"] == 0.5
    unusual = metrics.summarize(probs, labels, ["A", "B"], 0.75, atypicality=np.array([0, 2, 0, 0, 0.5]))
    assert unusual["unlike_training_rate"] == 0.2 and unusual["low_confidence_rate"] == 0.6
    assert unusual["review_flag_rate"] == 0.8  # a confident but atypical answer is flagged too


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    labels = np.array([0, 0, 0, 1])                     # top class right 3 times in 4
    honest = np.tile([0.75, 0.25], (4, 1))
    assert metrics.expected_calibration_error(honest, labels) < 1e-9
    overconfident = np.tile([0.99, 0.01], (4, 1))
    assert abs(metrics.expected_calibration_error(overconfident, labels) - 0.24) < 1e-9


def test_derived_images_keep_shape_and_change_what_they_should():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (240, 320, 3)).astype(np.float32)
    img[100:140, 140:180] = [90, 40, 160]   # a purple "nucleus" in the centre
    for name, fn in derived.VARIANTS.items():
        out = fn(img)
        assert out.shape == img.shape and out.dtype == np.float32, name
    big = derived.magnified(img, 3.0)
    assert np.allclose(big[120, 160], [90, 40, 160], atol=2)      # the centre stays the nucleus...
    assert (np.abs(big - [90, 40, 160]).sum(-1) < 10).mean() > 5 * (np.abs(img - [90, 40, 160]).sum(-1) < 10).mean()
    shuffled = derived.not_a_cell(img)
    assert np.allclose(np.sort(shuffled.ravel()), np.sort(img.ravel()))  # same colours, rearranged
    assert not np.allclose(shuffled, img)
    assert not np.allclose(derived.recoloured(img), img)
    # The far stain turns the nucleus's hue further round the colour wheel than the near one.
    purple = np.full((8, 8, 3), [90, 40, 160], np.float32)

    def hue_turns(x):
        return np.asarray(Image.fromarray(x.astype(np.uint8)).convert("HSV"), np.float32)[0, 0, 0] / 256

    def turned(x):
        d = abs(hue_turns(x) - hue_turns(purple)) % 1.0
        return min(d, 1.0 - d)
    assert abs(turned(derived.recoloured(purple)) - 0.08) < 0.02
    assert abs(turned(derived.recoloured_far(purple)) - 0.3) < 0.02


def test_magnified_frame_is_centred_on_the_cell_not_on_the_frame():
    img = np.full((240, 320, 3), [220, 180, 190], np.float32)   # pink film
    img[40:80, 230:270] = [90, 40, 160]                         # the nucleus, far from the frame's centre
    assert np.allclose(derived.cell_centre(img), (59.5, 249.5), atol=3)
    big = derived.magnified(img, 3.0)
    # Its window (80 x 107 pixels) sits on the nucleus: the nucleus, 3x wider, is in the middle of the frame
    # and covers 9 times the share it had (the frame's own centre would show none of it).
    purple = np.abs(big - [90, 40, 160]).sum(-1) < 30
    assert purple[120, 160] and purple.mean() > 8 * 1600 / (240 * 320)


def test_outcome_per_cell_names_the_cells_most_images_of_which_are_wrong():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 1, 0, 0, 0, 1])
    cells = ["a", "a", "a", "b", "b", "b", "c"]
    out = metrics.by_cell(labels, predicted, cells, ["A", "B"])
    assert out["cells"] == 3 and out["cells_right"] == 2
    assert out["wrong"] == [{"cell": "b", "class": "B", "images": 3, "share_right": 0.0, "majority": "A"}]
    assert out["per_cell"][0] == {"cell": "a", "class": "A", "images": 3, "share_right": 2 / 3, "majority": "A"}


def test_a_cell_is_right_by_its_most_common_answer_and_a_tie_goes_to_the_first_class():
    # As by_cell's docstring and the report say: a plurality, not a strict majority of the images.
    labels = np.array([2, 2, 2, 2, 2, 1, 1])
    predicted = np.array([2, 2, 0, 1, 3, 0, 1])
    out = metrics.by_cell(labels, predicted, ["a"] * 5 + ["b"] * 2, ["A", "B", "C", "D"])
    a, b = out["per_cell"]
    assert a["share_right"] == 0.4 and a["majority"] == "C"       # right with 2 of 5 images
    assert b["share_right"] == 0.5 and b["majority"] == "A"       # a tie: the first class wins
    assert out["cells_right"] == 1 and [c["cell"] for c in out["wrong"]] == ["b"]


def test_an_image_without_finite_probabilities_is_no_answer_not_the_first_class():
    """argmax of a NaN row is 0: such an image counted as a right EOSINOPHIL answer, and ECE and the
    mean confidence came out NaN."""
    names = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    probs = np.array([[np.nan] * 4, [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0]], np.float32)
    summary = metrics.summarize(probs, np.array([0, 0, 1]), names, 0.8)
    assert summary["accuracy"] == pytest.approx(1 / 3) and summary["correct"] == 1
    assert summary["no_answer"] == 1
    assert summary["per_class"]["EOSINOPHIL"]["recall"] == 0.5
    assert np.isfinite(summary["ece"]) and summary["mean_confidence"] == pytest.approx(0.9)
    assert summary["errors_flagged"] == 0.5  # the image without an answer; not the confident wrong one


def test_no_images_give_no_figures_not_an_error():
    names = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    summary = metrics.summarize(np.zeros((0, 4), np.float32), np.array([]), names, 0.8)
    assert summary["n"] == 0 and summary["ece"] is None and summary["per_class"]["EOSINOPHIL"]["recall"] is None


def test_every_cell_weighs_alike_in_the_mean_share_right_and_no_answer_is_wrong_without_a_vote():
    # Cell a: 1 of 4 right; cell b: 1 of 1; cell c: no answer at all. Per image that is 2/6 right.
    labels = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 1, 1, -1, 1, -1])
    out = metrics.by_cell(labels, predicted, ["a", "a", "a", "a", "b", "c"], ["A", "B"])
    assert out["mean_share_right"] == pytest.approx((1 / 4 + 1 + 0) / 3)
    a, b, c = out["per_cell"]
    assert a["majority"] == "B" and b["majority"] == "B" and c["majority"] is None
    assert out["cells_right"] == 1
    probs = np.array([[0.2, 0.8], [np.nan, np.nan]])
    assert metrics.answers(probs).tolist() == [1, -1]
