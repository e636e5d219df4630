"""Scores the held-out answers of a cross-validation by cell (`run_all.sh` with FOLDS=k on
export_cells.py's file) cell by cell, and draws TEST-like sets from those cells to see how often a
model of this kind would meet the goal.

TEST holds the augmented copies of 71 held-out originals (dataset README): 13 eosinophils, 6
lymphocytes, 4 monocytes and 48 neutrophils, each copied about 48, 103, 155 and 13 times. A TEST-like
set draws that many cells of each class, with replacement, from TRAIN's held-out cells, and weighs
each by its copies, so its accuracy and recalls are what TEST would give if TEST's cells were like
TRAIN's. TEST itself is never read. numpy and Pillow only, so it runs here and on the GPU machine.

    python3 -m research.gpu_screen.cv_report --cells .gpu/cells/train_cells.npz --results ROUND1/results.json [ROUND2/results.json ...] [--out F.json]
"""
from __future__ import annotations

import argparse
import io
import json
from collections import defaultdict

import numpy as np
from PIL import Image

MIN_CELL = 5                              # smaller groups are mostly stray copies of a cell (cell_groups.py)
TEST_CELLS = (13, 6, 4, 48)               # TEST_SIMPLE's originals per class (dataset README)
TEST_IMAGES = (623, 620, 620, 624)        # TEST's images per class (dataset README)
GOAL_ACCURACY, GOAL_SIMPLE, GOAL_RECALL = 0.93, 67, 0.85   # issue #5


def fold_of_groups(groups: np.ndarray, labels: np.ndarray, folds: int) -> np.ndarray:
    """Fold of each image, whole cell groups at a time: per class the largest groups first, each to
    the fold holding the fewest of that class's images so far, so each fold has ~1/folds of a class."""
    fold = {}
    for c in np.unique(labels):
        sizes = np.bincount(groups[labels == c])
        filled = np.zeros(folds, int)
        for g in sorted(np.flatnonzero(sizes), key=lambda g: (-sizes[g], g)):
            fold[int(g)] = int(np.argmin(filled))
            filled[fold[int(g)]] += sizes[g]
    return np.array([fold[int(g)] for g in groups])


def decode_jpegs(d, prefix: str, idx=None) -> np.ndarray:
    """export_cells.py's (or export_crops.py's) `<prefix>_jpeg` crops, those at idx or all, as RGB uint8."""
    buf = d[f"{prefix}_jpeg"].tobytes()
    offs = np.concatenate([[0], np.cumsum(d[f"{prefix}_len"])])
    idx = range(len(offs) - 1) if idx is None else idx
    return np.stack([np.asarray(Image.open(io.BytesIO(buf[offs[i]:offs[i + 1]])).convert("RGB")) for i in idx])


def right_and_confidently_wrong(prob: np.ndarray, labels: np.ndarray, review_threshold: float = 0.8) -> tuple[float, float]:
    """Share answered right, and share wrong with a top probability at or over the web client's review
    threshold (config.yaml's browser.review_threshold), so not flagged by confidence."""
    right = prob.argmax(1) == labels
    return float(right.mean()), float((~right & (prob.max(1) >= review_threshold)).mean())


def model_key(result: dict) -> str:
    """One screen result's model: its variant and seed."""
    return f"{result['variant']} seed {result['runs'][0]['seed']}"


def out_of_fold(results: list[dict], n_images: int) -> dict[str, np.ndarray]:
    """Screen results, one per (variant, seed, fold) -> {"variant seed N": [n_images, classes] held-out
    probabilities}; a model missing an image (a fold that did not finish) is left out."""
    by_variant: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in results:
        if "heldout_index" in r and r["runs"]:
            by_variant[model_key(r)][r["fold"]] = r
    merged = {}
    for variant, folds in sorted(by_variant.items()):
        prob = np.full((n_images, 4), np.nan)
        for r in folds.values():
            prob[np.asarray(r["heldout_index"])] = np.asarray(r["runs"][0]["eight_view_prob"])
        if not np.isnan(prob).any():
            merged[variant] = prob
    return merged


DERIVED = ("recoloured", "magnified")  # screen.py's derived splits


def derived_held_out(results: list[dict]) -> dict[str, dict[str, float]]:
    """{"variant seed N": for each derived split a result measured, its accuracy and confidently-wrong share
    over all the variant's held-out images (or over their derived share, `<split>_images`: export_cells.py's
    recoloured or magnified frames)}."""
    sums: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(3))
    for r in results:
        run = r["runs"][0] if r.get("runs") else {}
        for split in DERIVED:
            if "heldout_index" in r and f"{split}_eight_view" in run:
                n = run.get(f"{split}_images", len(r["heldout_index"]))
                sums[model_key(r), split] += [n * run[f"{split}_eight_view"], n * run[f"{split}_confident_wrong"], n]
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (key, split), v in sums.items():
        out[key].update({split: v[0] / v[2], f"{split}_confident_wrong": v[1] / v[2]})
    return dict(out)


def cell_shares(prob: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                min_cell: int = MIN_CELL) -> dict[int, tuple[int, float]]:
    """{group: (class, share of its images answered right)} for groups of min_cell images or more."""
    sizes = np.bincount(groups)
    share = np.bincount(groups, weights=prob.argmax(1) == labels) / np.maximum(sizes, 1)
    label = np.zeros(len(sizes), int)
    label[groups] = labels  # a group is one class
    return {int(g): (int(label[g]), float(share[g])) for g in np.flatnonzero(sizes >= min_cell)}


def draw_test_like(shares: dict[int, tuple[int, float]], draws: int = 20_000, seed: int = 0) -> dict:
    """TEST-like sets drawn from the cells' shares -> accuracy, recalls and TEST_SIMPLE-like counts."""
    rng = np.random.default_rng(seed)
    per_class = [np.array([s for c, s in shares.values() if c == k]) for k in range(len(TEST_CELLS))]
    drawn = [rng.choice(per_class[k], (draws, TEST_CELLS[k])) for k in range(len(TEST_CELLS))]
    recalls = np.stack([d.mean(1) for d in drawn], 1)
    accuracy = recalls @ np.asarray(TEST_IMAGES) / sum(TEST_IMAGES)
    # TEST_SIMPLE: one image of each drawn cell, right as often as its cell's copies are
    simple = sum((rng.random(d.shape) < d).sum(1) for d in drawn)
    meets = (accuracy >= GOAL_ACCURACY) & (simple >= GOAL_SIMPLE) & (recalls >= GOAL_RECALL).all(1)
    return {
        "accuracy_median": float(np.median(accuracy)),
        "accuracy_5_95": [float(np.percentile(accuracy, 5)), float(np.percentile(accuracy, 95))],
        "p_accuracy_goal": float((accuracy >= GOAL_ACCURACY).mean()),
        "p_simple_goal": float((simple >= GOAL_SIMPLE).mean()),
        "p_recall_goal_per_class": [float(p) for p in (recalls >= GOAL_RECALL).mean(0)],
        "p_whole_goal": float(meets.mean()),
    }


def model_figures(prob: np.ndarray, labels: np.ndarray, groups: np.ndarray, group_key: np.ndarray) -> dict:
    """One model's held-out figures: by image, by cell, and its TEST-like draws."""
    pred = prob.argmax(1)
    shares = cell_shares(prob, labels, groups)
    cells_right = [[int(s > 0.5) for c, s in shares.values() if c == k] for k in range(4)]
    return {
        "images": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "recall": [float((pred[labels == k] == k).mean()) for k in range(4)],
        "cells_right": [sum(c) for c in cells_right],
        "cells": [len(c) for c in cells_right],
        "cell_shares": {str(group_key[g]): round(s, 4) for g, (_, s) in shares.items()},
        "test_like": draw_test_like(shares),
    }


def report(cells_path: str, results: list[dict]) -> dict:
    d = np.load(cells_path)
    labels, groups = d["all_y"], d["all_group"]
    robustness = derived_held_out(results)
    return {variant: {**model_figures(prob, labels, groups, d["group_key"]), **robustness.get(variant, {})}
            for variant, prob in out_of_fold(results, len(labels)).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", required=True, help="export_cells.py's file")
    parser.add_argument("--results", required=True, nargs="+",
                        help="run_all.sh's results.json, one per round (each round's models are scored together)")
    parser.add_argument("--out")
    args = parser.parse_args()
    results = []
    for path in args.results:
        with open(path) as f:
            results += json.load(f)
    out = report(args.cells, results)
    if not out:
        raise SystemExit("error: no variant has every fold in the results")
    for variant, r in out.items():
        t = r["test_like"]
        print(f"{variant}: held-out accuracy {r['accuracy']:.4f} over {r['images']} images, recall "
              f"{' / '.join(f'{x:.3f}' for x in r['recall'])}; cells right "
              f"{' / '.join(f'{a}/{b}' for a, b in zip(r['cells_right'], r['cells']))}"
              + "".join(f"; {s} {r[s]:.4f}, {r[s + '_confident_wrong']:.3f} confidently wrong"
                        for s in DERIVED if s in r))
        print(f"  TEST-like: accuracy median {t['accuracy_median']:.4f} (5-95 %: {t['accuracy_5_95'][0]:.4f}-"
              f"{t['accuracy_5_95'][1]:.4f}); P(accuracy >= {GOAL_ACCURACY}) {t['p_accuracy_goal']:.3f}, "
              f"P(TEST_SIMPLE >= {GOAL_SIMPLE}) {t['p_simple_goal']:.3f}, P(recall >= {GOAL_RECALL}) "
              f"{' / '.join(f'{p:.3f}' for p in t['p_recall_goal_per_class'])}, P(whole goal) {t['p_whole_goal']:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
