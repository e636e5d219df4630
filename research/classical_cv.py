"""Cross-validation by cell of a classifier that is not a CNN: colour histograms and the stained
nucleus's shape and colour, measured on the Transform's crops, into gradient-boosted trees. Same crops,
folds and scoring as the GPU screen's cross-validation (export_cells.py, cv_report.py); TEST is never
read. It runs in about a minute on the CPU.

    infra/env/run.sh python -m research.classical_cv --cells .gpu/cells/train_cells.npz --out classical.json \
        [--with-cnn ROUND/results.json ...]

Two questions. Are the cells every CNN misses (research/review_sheet.py) also missed by a model that
sees the cells through other eyes? If so, the errors lie in those cells or their labels, not in the
CNN. And with --with-cnn (screen.py's cross-validation results on the same file, all folds): does the
mean of the CNN's and the trees' probabilities get more cells right than either? Where the file has
recoloured frames (export_cells.py --recoloured-every), the trees' answers on them are scored too, as
screen.py scores the CNN's: colour is what these features lean on. The JSON has
cv_report.py's layout (`cell_shares` per model), so review_sheet.py reads it. The trees are
deterministic: one run is the whole answer. Where `lscpu` finds no physical cores (this sandbox),
joblib prints two lines of a ValueError about them, and goes on with the logical cores: harmless.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.ensemble import HistGradientBoostingClassifier

# joblib cannot count physical cores in some sandboxes and falls back to the logical count, which is right.
warnings.filterwarnings("ignore", message="Could not find the number of physical cores")

from research.gpu_screen.cv_report import (decode_jpegs, derived_held_out, fold_of_groups,
                                             model_figures, out_of_fold, right_and_confidently_wrong)

BINS = 16
RING = 4              # pixels around the nucleus taken as its cytoplasm
MIN_LOBE = 10         # pixels: smaller stained specks are not lobes


def otsu(values: np.ndarray) -> float:
    """The threshold that best splits values into two classes (Otsu's method)."""
    hist, edges = np.histogram(values, 64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def crop_features(rgb: np.ndarray) -> np.ndarray:
    """One crop (H, W, 3 uint8) -> colour histograms, and the nucleus's size, lobes, outline, colour
    and texture, with the colour of the ring around it. The nucleus is where the stain is purple: red
    and blue high against green, split from the rest by Otsu's threshold."""
    x = rgb.astype(np.float32) / 255.0
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), np.float32) / 255.0
    hists = [np.histogram(hsv[..., c], BINS, (0, 1))[0] / hsv[..., c].size for c in range(3)]
    purple = (x[..., 0] + x[..., 2]) / 2 - x[..., 1]
    nucleus = purple > otsu(purple)
    area = nucleus.mean()
    around = ndimage.binary_dilation(nucleus, iterations=RING)
    ring = around & ~nucleus
    labels, count = ndimage.label(nucleus)
    sizes = np.bincount(labels.ravel())[1:]
    lobes = int((sizes >= MIN_LOBE).sum())
    largest = sizes.max() / max(sizes.sum(), 1) if count else 0.0
    edge = nucleus & ~ndimage.binary_erosion(nucleus)
    outline = edge.sum() / np.sqrt(max(nucleus.sum(), 1))
    filled = ndimage.binary_fill_holes(ndimage.binary_closing(nucleus, iterations=3)).sum()
    solidity = nucleus.sum() / max(filled, 1)
    v = hsv[..., 2]
    gradient = np.hypot(*np.gradient(v))
    texture = np.histogram(gradient[nucleus], 8, (0, 0.25))[0] / max(nucleus.sum(), 1)

    def mean_colour(mask):
        return x[mask].mean(0) if mask.any() else np.zeros(3)

    shape = [area, lobes, largest, outline, solidity, v[nucleus].std() if nucleus.any() else 0.0]
    return np.concatenate([*hists, shape, mean_colour(nucleus), mean_colour(ring), mean_colour(~around), texture])


def cross_validate(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int,
                   recoloured: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Held-out class probabilities of every image, each fold of whole cells predicted by trees
    trained on the other folds; with `recoloured` (features, index of the image each frame recolours),
    also those of the recoloured frames, by the model that held their image out."""
    of = fold_of_groups(groups, labels, folds)
    prob = np.zeros((len(labels), 4))
    rec_prob = None if recoloured is None else np.zeros((len(recoloured[1]), 4))
    for k in range(folds):
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=0)
        model.fit(features[of != k], labels[of != k])
        prob[of == k] = model.predict_proba(features[of == k])
        if recoloured is not None:
            held = of[recoloured[1]] == k
            rec_prob[held] = model.predict_proba(recoloured[0][held])
    return prob, rec_prob


def line(name: str, s: dict) -> str:
    return (f"{name}: held out {s['accuracy']:.4f}, recall {' / '.join(f'{r:.2f}' for r in s['recall'])}, "
            f"cells right {' / '.join(f'{a}/{b}' for a, b in zip(s['cells_right'], s['cells']))}, "
            f"TEST-like median {s['test_like']['accuracy_median']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=Path, required=True, help="export_cells.py's file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--with-cnn", type=Path, nargs="*", default=[],
                        help="screen.py results (run_all.sh's results.json or single runs) on the same file")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        d = np.load(args.cells)
        labels, groups, group_key = d["all_y"], d["all_group"], d["group_key"]
        crops = decode_jpegs(d, "all")
        results = []
        for path in args.with_cnn:
            loaded = json.loads(path.read_text())
            results += loaded if isinstance(loaded, list) else [loaded]
    except KeyError as e:
        print(f"error: {args.cells} is not export_cells.py's file (it has no {e})", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cnn = out_of_fold(results, len(labels))
    if args.with_cnn and not cnn:
        print("error: no CNN model in --with-cnn has held-out answers for every fold of this file", file=sys.stderr)
        return 2
    recoloured = None
    if "rec_index" in d.files:   # frames recoloured as the harness recolours them, before the crop
        recoloured = np.stack([crop_features(c) for c in decode_jpegs(d, "rec")]), d["rec_index"]
    trees, rec_trees = cross_validate(np.stack([crop_features(c) for c in crops]), labels, groups, args.folds,
                                      recoloured)
    models = {"classical_trees": trees}
    for name, prob in cnn.items():
        models[name] = prob
        models[f"{name} + classical_trees (mean)"] = (prob + trees) / 2
    out = {name: model_figures(prob, labels, groups, group_key) for name, prob in models.items()}
    if rec_trees is not None:
        right, confidently_wrong = right_and_confidently_wrong(rec_trees, labels[recoloured[1]])
        out["classical_trees"].update(recoloured=right, recoloured_confident_wrong=confidently_wrong)
    for name, figures in derived_held_out(results).items():   # the CNN's, as screen.py measured them
        if name in out:
            out[name].update({k: v for k, v in figures.items() if k.startswith("recoloured")})
    for name, s in out.items():
        rec = (f"; recoloured frames {s['recoloured']:.4f} right, {s['recoloured_confident_wrong']:.3f} "
               "confidently wrong" if "recoloured" in s else "")
        print(line(name, s) + rec)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
