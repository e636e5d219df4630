"""research/classical_cv.py: nucleus features, the trees' cross-validation by cell, and its mean with
a CNN's held-out answers."""
from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from research import classical_cv
from research.gpu_screen.cv_report import fold_of_groups

PINK, PURPLE = (230, 180, 190), (120, 60, 160)
CLASS_COLOURS = [(120, 60, 160), (90, 60, 200), (150, 80, 140), (110, 40, 120)]


def crop(discs, colour=PURPLE, size=80):
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3), np.uint8) + np.array(PINK, np.uint8)
    for cy, cx, r in discs:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour
    return img


def test_otsu_splits_two_modes():
    values = np.concatenate([np.full(100, 0.1), np.full(50, 0.8)])
    assert 0.1 < classical_cv.otsu(values) < 0.8


def test_features_see_the_nucleus_size_and_its_lobes():
    one = classical_cv.crop_features(crop([(40, 40, 15)]))
    two = classical_cv.crop_features(crop([(25, 25, 8), (55, 55, 8)]))
    assert one.shape == two.shape and np.isfinite(one).all()
    shape_at = 3 * classical_cv.BINS        # area, lobes, largest lobe's share, outline, solidity, texture
    assert abs(one[shape_at] - np.pi * 15 ** 2 / 80 ** 2) < 0.01
    assert one[shape_at + 1] == 1 and two[shape_at + 1] == 2
    assert two[shape_at + 2] < 0.6          # neither lobe holds most of the nucleus


def jpeg(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    return np.frombuffer(buf.getvalue(), np.uint8)


def cells_file(path, images_per_group=5, groups_per_class=3, recoloured_every=0):
    jpegs, labels, groups, names = [], [], [], []
    rng = np.random.default_rng(0)
    for c, colour in enumerate(CLASS_COLOURS):
        for g in range(groups_per_class):
            names.append(f"C{c}/_{g}.jpeg")
            for _ in range(images_per_group):
                jpegs.append(jpeg(crop([(40 + rng.integers(-3, 4), 40, 10 + 3 * c)], colour)))
                labels.append(c)
                groups.append(len(names) - 1)
    extra = {}
    if recoloured_every:   # every n-th image again, its nucleus turned green: a stain the trees never saw
        index = np.arange(0, len(jpegs), recoloured_every)
        rec = [jpeg(crop([(40, 40, 10 + 3 * labels[i])], (60, 160, 80))) for i in index]
        extra = dict(rec_jpeg=np.concatenate(rec), rec_len=np.array([len(j) for j in rec]), rec_index=index)
    np.savez(path, all_jpeg=np.concatenate(jpegs), all_len=np.array([len(j) for j in jpegs]),
             all_y=np.array(labels), all_group=np.array(groups), group_key=np.array(names), **extra)
    return np.array(labels), np.array(groups)


def test_trees_alone_and_averaged_with_a_cnn(tmp_path, capsys):
    labels, groups = cells_file(tmp_path / "cells.npz", recoloured_every=2)
    folds = fold_of_groups(groups, labels, 3)
    # A CNN that is right everywhere but on class 0, which it calls class 1.
    wrong = np.eye(4)[np.where(labels == 0, 1, labels)]
    cnn = [{"variant": "toy", "fold": k, "heldout_index": np.flatnonzero(folds == k).tolist(),
            "runs": [{"seed": 1, "eight_view_prob": wrong[folds == k].tolist(), "recoloured_images": 10,
                      "recoloured_eight_view": 0.5 + 0.1 * k, "recoloured_confident_wrong": 0.0}]}
           for k in range(3)]
    (tmp_path / "cnn.json").write_text(json.dumps(cnn))
    out = tmp_path / "out.json"
    assert classical_cv.main(["--cells", str(tmp_path / "cells.npz"), "--folds", "3",
                              "--with-cnn", str(tmp_path / "cnn.json"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"classical_trees", "toy seed 1", "toy seed 1 + classical_trees (mean)"}
    assert result["toy seed 1"]["cells_right"] == [0, 3, 3, 3]
    assert result["classical_trees"]["accuracy"] > 0.9      # the classes differ in nucleus size and colour
    assert result["toy seed 1 + classical_trees (mean)"]["accuracy"] >= result["toy seed 1"]["accuracy"]
    # Recoloured frames: the trees' own answers; the CNN's figures as its runs measured them.
    assert 0 <= result["classical_trees"]["recoloured"] <= 1
    assert 0 <= result["classical_trees"]["recoloured_confident_wrong"] <= 1
    assert abs(result["toy seed 1"]["recoloured"] - 0.6) < 1e-9
    assert "recoloured" not in result["toy seed 1 + classical_trees (mean)"]
    assert "classical_trees: held out" in capsys.readouterr().out


def test_cnn_results_without_every_fold_are_refused(tmp_path, capsys):
    cells_file(tmp_path / "cells.npz")
    (tmp_path / "cnn.json").write_text(json.dumps([{"variant": "toy", "fold": 0, "heldout_index": [0],
                                                     "runs": [{"seed": 1, "eight_view_prob": [[1, 0, 0, 0]]}]}]))
    code = classical_cv.main(["--cells", str(tmp_path / "cells.npz"), "--with-cnn", str(tmp_path / "cnn.json"),
                              "--out", str(tmp_path / "out.json")])
    assert code == 2 and "every fold" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_a_file_that_is_not_an_export_stops_with_one_line(tmp_path, capsys):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    code = classical_cv.main(["--cells", str(tmp_path / "other.npz"), "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "export_cells.py's file" in err and "\n" not in err
