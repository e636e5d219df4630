"""Classification figures from predicted probabilities and true labels (numpy only)."""
from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[actual][predicted]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray, class_names: list[str], actual_counts: np.ndarray | None = None) -> dict:
    """Recall over actual_counts (every image of the class, answered or not; default: the matrix's rows)."""
    out = {}
    for i, name in enumerate(class_names):
        actual = matrix[i].sum() if actual_counts is None else actual_counts[i]
        predicted = matrix[:, i].sum()
        out[name] = {"recall": float(matrix[i, i] / actual) if actual else None,
                     "precision": float(matrix[i, i] / predicted) if predicted else None}
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence: sum over equal-width confidence bins of
    (bin share) x |bin accuracy - bin mean confidence|."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def review_flags(probabilities: np.ndarray, review_threshold: float,
                 atypicality: np.ndarray | None = None) -> np.ndarray:
    """Flagged for review: top probability under the threshold, atypicality over 1, or no number."""
    unlike = atypicality > 1 if atypicality is not None else np.zeros(len(probabilities), bool)
    return (probabilities.max(axis=1) < review_threshold) | unlike | ~np.isfinite(probabilities).all(axis=1)


def summarize(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
              review_threshold: float, atypicality: np.ndarray | None = None) -> dict:
    """Accuracy, per-class figures, calibration, and the review flag: top probability under the
    threshold, or atypicality over 1 (unlike the training images). An image without finite
    probabilities has no answer: wrong, flagged, outside the confusion matrix and the calibration. A
    share of nothing is None."""
    labels = np.asarray(labels).astype(np.int64)
    predicted = answers(probabilities)
    answered = predicted >= 0
    matrix = confusion_matrix(labels[answered], predicted[answered], len(class_names))
    confidence = probabilities[answered].max(axis=1)
    low_confidence = ~answered
    low_confidence[answered] = confidence < review_threshold
    unlike = atypicality > 1 if atypicality is not None else np.zeros(len(labels), bool)
    flagged = review_flags(probabilities, review_threshold, atypicality)
    right = predicted == labels

    def share(of: np.ndarray) -> float | None:
        return float(of.mean()) if of.size else None

    return {
        "n": int(len(labels)),
        "accuracy": share(right),
        "correct": int(right.sum()),
        "no_answer": int((~answered).sum()),
        "per_class": per_class(matrix, class_names, np.bincount(labels, minlength=len(class_names))),
        "confusion_matrix": matrix.tolist(),
        "ece": expected_calibration_error(probabilities[answered], labels[answered]) if answered.any() else None,
        "mean_confidence": share(confidence),
        "low_confidence_rate": share(low_confidence),
        "unlike_training_rate": share(unlike),
        "review_flag_rate": share(flagged),
        # What the flag catches and what it costs a reviewer.
        "errors_flagged": share(flagged[~right]),
        "right_flagged": share(flagged[right]),
        # Accuracy on what the flag lets through: what an unreviewed answer is worth.
        "accuracy_unflagged": share(right[~flagged]),
    }


def answers(probabilities: np.ndarray) -> np.ndarray:
    """Each image's answer (its top class), or -1 for an image without finite probabilities."""
    answered = np.isfinite(probabilities).all(axis=1)
    return np.where(answered, np.nan_to_num(probabilities, nan=-1.0, posinf=-1.0, neginf=-1.0).argmax(axis=1), -1)


def by_cell(labels: np.ndarray, predicted: np.ndarray, cells: list[str], class_names: list[str]) -> dict:
    """Outcome per cell (a group of augmented copies of one original): a cell counts as right when its
    most common answer (`majority`, a plurality: a tie goes to the class listed first) is its class, even
    under half of its images. `val` holds few cells, so this says which cells the errors come from.
    `mean_share_right` weighs every cell alike, however many copies it has. A predicted -1 is no answer:
    wrong, and no vote."""
    out = []
    for cell in sorted(set(cells)):
        members = np.array([c == cell for c in cells])
        answered = predicted[members][predicted[members] >= 0]
        votes = np.bincount(answered, minlength=len(class_names))
        truth = int(labels[members][0])
        out.append({"cell": cell, "class": class_names[truth], "images": int(members.sum()),
                    "share_right": float((predicted[members] == truth).mean()),
                    "majority": class_names[int(votes.argmax())] if answered.size else None})
    wrong = [c for c in out if c["majority"] != c["class"]]
    return {"cells": len(out), "cells_right": len(out) - len(wrong), "wrong": wrong, "per_cell": out,
            "mean_share_right": float(np.mean([c["share_right"] for c in out])) if out else None}
