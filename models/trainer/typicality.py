"""How unlike the training images an input is: the Mahalanobis distance of its penultimate features
to the nearest class mean (class means and one shared covariance fitted on the training split, as in
Lee et al., 2018), divided by the distance that 99 % of the validation images stay under.

So `atypicality` <= 1 is a typical input and > 1 is one to send for review (another microscope or
stain, or not a white cell), whatever the softmax confidence says.

An adapted model also has a mean per class of the labs' own train cells, with a distance limit of
their own: the covariance is the base lab's, and another lab's cells spread wider under it (Tecom,
adapted on 70 of its cells: 67-78 % of its held-out cells were over the base limit).

The covariance is shrunk toward a scaled identity by the Ledoit-Wolf amount. With few training images
for the number of features (the bundled sample: 320 vectors in 256 dimensions) an unshrunk or barely
ridged covariance has directions of almost no variance, whose inverse magnifies float-sized
differences: the browser's score (tfjs wasm) and the server's would drift apart. Ledoit-Wolf's amount
(the Trainer logs it) falls as images grow in number.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from sklearn.covariance import empirical_covariance, ledoit_wolf, shrunk_covariance

FEATURE_LAYER = "features"   # the layer whose output is the feature vector (default model: pooling)
MAX_FEATURES = 1024          # wider features (the tutorial CNN's flatten) get no score
QUANTILE = 99.0
MIN_SHRINKAGE = 1e-3         # floor on the shrinkage, so the covariance is always invertible
MAX_FIT_IMAGES = 2048        # training images the fit uses (each also recoloured): 16 vectors a feature


def has_features(model) -> bool:
    try:
        layer = model.get_layer(FEATURE_LAYER)
    except ValueError:
        return False
    return int(layer.output.shape[-1]) <= MAX_FEATURES


def fit(features: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Class means [C, D], the shared precision matrix [D, D] and the shrinkage used."""
    features = features.astype(np.float64)
    means = np.stack([features[labels == c].mean(axis=0) if (labels == c).any() else features.mean(axis=0)
                      for c in range(num_classes)])
    centred = features - means[labels]
    cov, shrinkage = ledoit_wolf(centred, assume_centered=True)
    if shrinkage < MIN_SHRINKAGE:
        shrinkage = MIN_SHRINKAGE
        cov = shrunk_covariance(empirical_covariance(centred, assume_centered=True), shrinkage)
    return means.astype(np.float32), np.linalg.inv(cov).astype(np.float32), float(shrinkage)


def lab_means(lab_features: np.ndarray, lab_labels: np.ndarray) -> np.ndarray:
    """One mean per class the labs' own train cells hold: among thousands of base images a few lab
    cells would barely move a class mean."""
    return np.stack([lab_features[lab_labels == c].mean(axis=0) for c in np.unique(lab_labels)]).astype(np.float32)


def left_out_distances(lab_features: np.ndarray, lab_labels: np.ndarray, lab_cells: np.ndarray,
                       precision: np.ndarray) -> np.ndarray:
    """Each lab vector's squared distance to the mean of its class's other cells, scaled to what a new
    cell's distance to the mean of all n would be ((n+1)(n-1)/n^2: a mean fitted on a cell is nearer
    to it than to a new one). `lab_cells` numbers the cell each vector is of, so that a cell and its
    recoloured copy leave together. Classes of one cell give none."""
    precision = precision.astype(np.float64)
    out = []
    for c in np.unique(lab_labels):
        feats, cells = lab_features[lab_labels == c].astype(np.float64), lab_cells[lab_labels == c]
        ids = np.unique(cells)
        n = len(ids)
        if n < 2:
            continue
        total = feats.sum(axis=0)
        for cell in ids:
            mine = feats[cells == cell]
            others = (total - mine.sum(axis=0)) / (len(feats) - len(mine))
            out.append(min_distance(mine, others[None], precision) * (n + 1) * (n - 1) / n ** 2)
    return np.concatenate(out) if out else np.zeros(0)


def fit_score(train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray, num_classes: int,
              lab: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict:
    """The score's parameters: class means [M, D] (the base classes', then the labs' if `lab` gives
    their train cells' features, labels and cell numbers), the shared precision [D, D], and each
    mean's distance limit [M].

    The base means' limit is what QUANTILE % of val stays under. A lab's few dozen cells are too few
    for a 99th percentile of their own (it would be their farthest cell: one odd cell would set it),
    so the lab means' limit is the base's scaled by how much farther the lab cells lie from their
    means than val from its (medians), and never tighter than the base's."""
    means, precision, shrinkage = fit(train_features, train_labels, num_classes)
    val_distances = min_distance(val_features, means, precision)
    base_limit = threshold(val_distances)
    limits, lab_limit = [base_limit] * len(means), None
    if lab is not None and len(lab[0]):
        spread = left_out_distances(*lab, precision)
        lab_limit = base_limit * float(np.median(spread) / np.median(val_distances)) if len(spread) else base_limit
        means = np.concatenate([means, lab_means(lab[0], lab[1])])
        limits += [max(base_limit, lab_limit)] * (len(means) - len(limits))
    return {"means": means, "precision": precision, "limits": np.asarray(limits, np.float32),
            "shrinkage": shrinkage, "base_limit": base_limit, "lab_limit": lab_limit}


def squared_distances(features, means, precision):
    """Squared Mahalanobis distance to each mean: [N, D] -> [N, M] (numpy or TF tensors)."""
    if isinstance(features, np.ndarray):
        d = features[:, None, :] - means[None]
        return np.einsum("ncd,de,nce->nc", d, precision, d)
    d = features[:, None, :] - means[None]                                   # [n, c, D]
    flat = tf.reshape(d, [-1, tf.shape(d)[-1]])
    dp = tf.reshape(tf.matmul(flat, precision), tf.shape(d))
    return tf.reduce_sum(dp * d, axis=-1)


def min_distance(features, means, precision):
    """Squared Mahalanobis distance to the nearest mean: [N, D] -> [N]."""
    distances = squared_distances(features, means, precision)
    return distances.min(axis=1) if isinstance(distances, np.ndarray) else tf.reduce_min(distances, axis=-1)


def atypicality(features, means, precision, limits):
    """Each input's distance to a mean over that mean's limit, at the mean where it is least: [N]."""
    ratio = squared_distances(features, means, precision) / limits
    return ratio.min(axis=1) if isinstance(ratio, np.ndarray) else tf.reduce_min(ratio, axis=-1)


def threshold(val_distances: np.ndarray) -> float:
    return float(np.percentile(val_distances, QUANTILE))
