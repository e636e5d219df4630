"""Fits the review score (typicality.py) to a trained model: class means and a shrunk covariance of its
pooled features, and the distance that 99 % of `val` stays under."""
from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.trainer import data, dihedral, typicality


def fit_review_score(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
                     num_classes: int, average_symmetries: bool, seed: int, batch_size: int,
                     lab_ds: tf.data.Dataset | None = None) -> dict | None:
    """The typicality score's parameters (typicality.py), or None for a model without a usable
    feature layer.

    Fitted on the training images as they are and once recoloured, and its threshold set on val
    treated the same way: another stain is something the classifier was trained to handle, so it
    should not make an image atypical. Other magnifications and non-cells still do. With `lab_ds` (a
    model trained on lab cells, adapted or from the start) the labs' train cells add means of their
    own, one per lab and class.

    At most typicality.MAX_FIT_IMAGES training images are used: with 8 views each, twice, all of
    TRAIN was still being fitted 30 minutes after training ended on a 2-core CPU."""
    if not typicality.has_features(model):
        logging.info("no '%s' layer of at most %d values: atypicality is exported as 0",
                     typicality.FEATURE_LAYER, typicality.MAX_FEATURES)
        return None
    started = time.monotonic()
    extractor = keras.Model(model.input, model.get_layer(typicality.FEATURE_LAYER).output)
    # One graph for every batch: called eagerly, the 8-view pass took about 1.8x as long.
    extract = tf.function(lambda images: dihedral.run_views(extractor, images, average_symmetries), reduce_retracing=True)

    def features(ds):
        feats, labels = [], []
        for x, y in ds:
            feats.append(extract(x).numpy())
            labels.append(y.numpy())
        return np.concatenate(feats), np.concatenate(labels)

    def plain_and_recoloured(ds):
        (x1, y1), (x2, y2) = features(ds), features(data.recoloured(ds, seed, batch_size))
        return np.concatenate([x1, x2]), np.concatenate([y1, y2])

    train_subset, used, total = data.spread_subset(train_ds, typicality.MAX_FIT_IMAGES, batch_size)
    train_x, train_y = plain_and_recoloured(train_subset)
    means, precision, shrinkage = typicality.fit(train_x, train_y, num_classes)
    if lab_ds is not None:  # the labs' own train cells, a mean per lab and class (typicality.with_lab_means)
        means = typicality.with_lab_means(means, *plain_and_recoloured(lab_ds))
    val_x, _ = plain_and_recoloured(val_ds)
    limit = typicality.threshold(typicality.min_distance(val_x, means, precision))
    logging.info("typicality: fitted on %d of %d training images (and each recoloured), covariance "
                 "shrinkage %.3f, threshold %.1f (%.0fth percentile of val), %.0f s", used, total, shrinkage,
                 limit, typicality.QUANTILE, time.monotonic() - started)
    return {"means": means, "precision": precision, "threshold": limit}
