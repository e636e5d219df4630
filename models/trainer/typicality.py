"""How unlike the training images an input is: the Mahalanobis distance of its penultimate features
to the nearest class mean (class means and one shared covariance fitted on the training split, as in
Lee et al., 2018), divided by the distance that 99 % of the validation images stay under.

So `atypicality` <= 1 is a typical input and > 1 is one to send for review (another microscope or
stain, or not a white cell), whatever the softmax confidence says.

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
MAX_FEATURES = 1024          # wider features get no score (nor does the tutorial CNN: no such layer)
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
    """The means of the classes the images hold [C, D] (a class absent gets none: the mean of all
    features would be a centre near no class), the shared precision matrix [D, D] and the shrinkage used."""
    features = features.astype(np.float64)
    present = [c for c in range(num_classes) if (labels == c).any()]
    means = np.stack([features[labels == c].mean(axis=0) for c in present])
    centred = features - means[np.searchsorted(present, labels)]
    cov, shrinkage = ledoit_wolf(centred, assume_centered=True)
    if shrinkage < MIN_SHRINKAGE:
        shrinkage = MIN_SHRINKAGE
        cov = shrunk_covariance(empirical_covariance(centred, assume_centered=True), shrinkage)
    return means.astype(np.float32), np.linalg.inv(cov).astype(np.float32), float(shrinkage)


def with_lab_means(means: np.ndarray, lab_features: np.ndarray, lab_groups: np.ndarray) -> np.ndarray:
    """The class means plus one more per group of the labs' own cells (one group per lab and class):
    among thousands of base images a few lab cells barely move a class mean, so after adapting to a lab
    every cell of it would still read as unlike the training images. The shared precision stays as
    fitted."""
    extra = [lab_features[lab_groups == g].mean(axis=0) for g in np.unique(lab_groups)]
    return np.concatenate([means, np.stack(extra).astype(np.float32)]) if extra else means


def min_distance(features, means, precision):
    """Squared Mahalanobis distance to the nearest mean (a class's, or a lab class's): [N, D] -> [N]
    (numpy or TF tensors)."""
    if isinstance(features, np.ndarray):
        d = features[:, None, :] - means[None]
        return np.einsum("ncd,de,nce->nc", d, precision, d).min(axis=1)
    d = features[:, None, :] - means[None]                                   # [n, c, D]
    flat = tf.reshape(d, [-1, tf.shape(d)[-1]])
    dp = tf.reshape(tf.matmul(flat, precision), tf.shape(d))
    return tf.reduce_min(tf.reduce_sum(dp * d, axis=-1), axis=-1)


def whitening(precision: np.ndarray, limit: float) -> np.ndarray:
    """W [D, D] with |W x|^2 = x' (precision / limit) x: the exported score's constant. A square root of
    the precision's range, so that it fits the browser model's float16 weights (the bundled sample's
    precision, from features of tiny variance, held entries over float16's 65504)."""
    scaled = precision.astype(np.float64) / limit
    return np.linalg.cholesky((scaled + scaled.T) / 2.0).astype(np.float32)


def min_whitened_distance(features, means, whitening_matrix):
    """min_distance / limit through W from `whitening`: [N, D] TF tensors -> [N]."""
    d = features[:, None, :] - means[None]                                   # [n, c, D]
    flat = tf.reshape(d, [-1, tf.shape(d)[-1]])
    dw = tf.reshape(tf.matmul(flat, whitening_matrix), tf.shape(d))
    return tf.reduce_min(tf.reduce_sum(tf.square(dw), axis=-1), axis=-1)


def threshold(val_distances: np.ndarray) -> float:
    return float(np.percentile(val_distances, QUANTILE))
