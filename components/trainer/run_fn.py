"""Trainer's run_fn: trains on the transformed splits TrainArgs names (`train`, plus `val` with
training.train_on_val) with a cosine learning-rate schedule, and exports a SavedModel whose signatures
take raw encoded images (serving_default), serialized tf.Examples (from_examples, used by the
Evaluator) or decoded pixels (the browser model)."""
from __future__ import annotations

import logging
import math
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from components.trainer import augment as augment_lib
from components.trainer import dihedral, models, typicality
from components.transform.preprocessing import IMAGE_KEY, LABEL_KEY, TRANSFORMED_IMAGE_KEY, resize_decoded_pixels
from pipeline.config import REPO_ROOT
from serving import signature
from serving.warmup import write_warmup_requests

EXAMPLES_SIGNATURE = "from_examples"
# The training shuffle's buffer holds serialized records (about 77 kB each at 80x80): 20,000 is about
# 1.5 GB, twice the Kaggle TRAIN split.
MAX_SHUFFLE_RECORDS = 20_000


def distribution_strategy() -> tf.distribute.Strategy:
    """Follows the devices present: all GPUs (mixed precision) if any, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.OneDeviceStrategy("/gpu:0")
    keras.mixed_precision.set_global_policy("float32")
    return tf.distribute.get_strategy()


def make_dataset(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 training: bool, seed: int) -> tf.data.Dataset:
    """Transformed TFRecords -> (images, labels) batches, read and mapped in parallel."""
    feature_spec = tf_transform_output.transformed_feature_spec()
    files = tf.data.Dataset.list_files(file_pattern, shuffle=training, seed=seed)
    ds = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                          cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if training:
        # Transform writes a split in long runs of one class, so through a buffer smaller than the
        # split, batches lean to the classes the reader is passing through: with a 2,048-record buffer,
        # val accuracy was 1.6-2 points lower (benchmarks/results/val_probes.md). Kept in memory as
        # serialized records, so later epochs do not decompress them again; past the cap neither the
        # buffer nor the cache would fit in memory, so the records stream through a capped buffer.
        records = count_records(ds)
        if records <= MAX_SHUFFLE_RECORDS:
            ds = ds.cache().shuffle(records, seed=seed, reshuffle_each_iteration=True)
        else:
            logging.warning("shuffling %d training records through a buffer of %d: where the records come "
                            "in runs of one class, batches will lean to the classes being read",
                            records, MAX_SHUFFLE_RECORDS)
            ds = ds.shuffle(MAX_SHUFFLE_RECORDS, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda s: tf.io.parse_example(s, feature_spec), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda f: (f[TRANSFORMED_IMAGE_KEY], tf.reshape(f[LABEL_KEY], [-1])),
                num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        ds = map_images(ds, augment_lib.augment, seed, batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def count_records(ds: tf.data.Dataset) -> int:
    """How many elements ds yields (one pass; no parsing)."""
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def map_images(ds: tf.data.Dataset, fn, seed: int, batch_size: int) -> tf.data.Dataset:
    """(images, labels) batches with fn(image, stateless seed) applied to each image, in order. The
    seed of an image comes from the base seed and its position, so a run is reproducible."""
    return ds.unbatch().enumerate().map(
        lambda i, xy: (fn(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)


def recoloured(ds: tf.data.Dataset, seed: int, batch_size: int) -> tf.data.Dataset:
    """The same images in the same order, each with its stain colour and illumination changed."""
    return map_images(ds, augment_lib.recolour_only, seed, batch_size).prefetch(tf.data.AUTOTUNE)


def spread_subset(ds: tf.data.Dataset, max_images: int, batch_size: int) -> tuple[tf.data.Dataset, int, int]:
    """(batches of at most max_images of ds's images, how many that is, how many ds has). Every k-th
    image, so the subset spans the whole split: its files are in class order."""
    total = int(ds.reduce(tf.constant(0, tf.int64), lambda n, xy: n + tf.shape(xy[1], out_type=tf.int64)[0]))
    stride = max(1, math.ceil(total / max_images))
    if stride == 1:
        return ds, total, total
    subset = (ds.unbatch().enumerate().filter(lambda i, xy: i % stride == 0).map(lambda i, xy: xy)
              .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return subset, math.ceil(total / stride), total


def run_views(model, images: tf.Tensor, average_symmetries: bool):
    """The model's outputs for a batch, averaged over the crop's 8 symmetries when asked."""
    if not average_symmetries:
        return model(images, training=False)
    outputs = model(dihedral.dihedral_views(images), training=False)
    if isinstance(outputs, (list, tuple)):
        return [dihedral.average_views(o) for o in outputs]
    return dihedral.average_views(outputs)


def cosine_learning_rate(base: float, epochs: int):
    """Per-epoch cosine decay from `base` towards 0 over the run."""
    return lambda epoch: base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def fit_typicality(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
                   num_classes: int, average_symmetries: bool, seed: int, batch_size: int) -> dict | None:
    """The typicality score's parameters (components/trainer/typicality.py), or None for a model
    without a usable feature layer.

    Fitted on the training images as they are and once recoloured, and its threshold set on val
    treated the same way: another stain is something the classifier was trained to handle, so it
    should not make an image atypical. Other magnifications and non-cells still do.

    At most typicality.MAX_FIT_IMAGES training images are used: with 8 views each, twice, all of
    TRAIN was still being fitted 30 minutes after training ended on a 2-core CPU."""
    if not typicality.has_features(model):
        logging.info("no '%s' layer of at most %d values: atypicality is exported as 0",
                     typicality.FEATURE_LAYER, typicality.MAX_FEATURES)
        return None
    started = time.monotonic()
    extractor = keras.Model(model.input, model.get_layer(typicality.FEATURE_LAYER).output)
    # One graph for every batch: called eagerly, the 8-view pass took about 1.8x as long.
    extract = tf.function(lambda images: run_views(extractor, images, average_symmetries), reduce_retracing=True)

    def features(ds):
        feats, labels = [], []
        for x, y in ds:
            feats.append(extract(x).numpy())
            labels.append(y.numpy())
        return np.concatenate(feats), np.concatenate(labels)

    def plain_and_recoloured(ds):
        (x1, y1), (x2, y2) = features(ds), features(recoloured(ds, seed, batch_size))
        return np.concatenate([x1, x2]), np.concatenate([y1, y2])

    train_subset, used, total = spread_subset(train_ds, typicality.MAX_FIT_IMAGES, batch_size)
    train_x, train_y = plain_and_recoloured(train_subset)
    means, precision, shrinkage = typicality.fit(train_x, train_y, num_classes)
    val_x, _ = plain_and_recoloured(val_ds)
    limit = typicality.threshold(typicality.min_distance(val_x, means, precision))
    logging.info("typicality: fitted on %d of %d training images (and each recoloured), covariance "
                 "shrinkage %.3f, threshold %.1f (%.0fth percentile of val), %.0f s", used, total, shrinkage,
                 limit, typicality.QUANTILE, time.monotonic() - started)
    return {"means": means, "precision": precision, "threshold": limit}


def _export_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                       class_names: list[str], image_size: int, stain_normalisation: bool,
                       typical: dict | None, average_symmetries: bool) -> dict:
    model.tft_layer = tf_transform_output.transform_features_layer()
    names = tf.constant(class_names)
    if typical:
        both = keras.Model(model.input, [model.get_layer(typicality.FEATURE_LAYER).output, model.output])
        means, precision = tf.constant(typical["means"]), tf.constant(typical["precision"])

    def classify(model_inputs: tf.Tensor) -> dict:
        """Model inputs -> the outputs every signature returns."""
        if typical:
            features, probabilities = run_views(both, model_inputs, average_symmetries)
            distance = typicality.min_distance(tf.cast(features, tf.float32), means, precision)
            atypicality = distance / typical["threshold"]
        else:
            probabilities = run_views(model, model_inputs, average_symmetries)
            atypicality = tf.zeros(tf.shape(model_inputs)[:1])
        probabilities = tf.cast(probabilities, tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "class_id": class_id,
                "class_name": tf.gather(names, class_id), "atypicality": tf.cast(atypicality, tf.float32)}

    def predict(raw_features: dict) -> dict:
        return classify(model.tft_layer(raw_features)[TRANSFORMED_IMAGE_KEY])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(images):
        # The schema declares the image feature with fixed shape [1]: feed a dense [batch, 1] tensor.
        return predict({IMAGE_KEY: tf.reshape(images, [-1, 1])})

    raw_spec = tf_transform_output.raw_feature_spec()
    image_only = {IMAGE_KEY: raw_spec[IMAGE_KEY]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return predict(tf.io.parse_example(serialized, image_only))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=signature.BROWSER_INPUT)])
    def serve_pixels(pixels):
        # For TensorFlow.js: no decode op there, and the resize is rebuilt from ops it has.
        return classify(resize_decoded_pixels(pixels, image_size, stain_normalisation))

    return {"serving_default": serve_images.get_concrete_function(),
            EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
            signature.BROWSER_SIGNATURE: serve_pixels.get_concrete_function()}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    cfg = fn_args.custom_config
    seed = int(cfg["seed"])
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(cfg["batch_size"])
    train_ds = make_dataset(fn_args.train_files, tf_transform_output, batch_size, True, seed)
    val_ds = make_dataset(fn_args.eval_files, tf_transform_output, batch_size, False, seed)

    strategy = distribution_strategy()
    logging.info("training %s on %s with %d replica(s)", cfg["model"], type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    with strategy.scope():
        model = models.build_model(cfg["model"], int(cfg["image_size"]), len(cfg["class_names"]))
        model.compile(optimizer=models.optimizer_for(cfg["model"], float(cfg["learning_rate"])),
                      loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    model.summary(print_fn=logging.info)

    epochs = int(cfg["epochs"])
    callbacks = [keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch")]
    if cfg["model"] != "tutorial_cnn":  # the tutorial's recipe: Adadelta at a constant rate
        callbacks.append(keras.callbacks.LearningRateScheduler(
            cosine_learning_rate(float(cfg["learning_rate"]), epochs)))
    patience = int(cfg["early_stopping_patience"])
    early_stopping = None
    if patience:
        # Off by default: `val` holds few cells of each class (whole cell groups), so its loss moves in
        # steps of one cell and would stop the run on noise.
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                       restore_best_weights=True)
        callbacks.append(early_stopping)
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=2)
    if early_stopping and early_stopping.stopped_epoch == 0 and early_stopping.best_weights is not None:
        # Keras restores the best weights only when it stops early; the last epoch need not be the best.
        model.set_weights(early_stopping.best_weights)
        logging.info("restored the weights of the epoch with the best val_loss (%.4f)", early_stopping.best)

    average_symmetries = bool(cfg["average_symmetries"])
    typical = fit_typicality(model, make_dataset(fn_args.train_files, tf_transform_output, batch_size, False, seed),
                             val_ds, len(cfg["class_names"]), average_symmetries, seed, batch_size)
    signatures = _export_signatures(model, tf_transform_output, list(cfg["class_names"]), int(cfg["image_size"]),
                                    bool(cfg.get("stain_normalisation", False)), typical, average_symmetries)
    # No optimizer state: serving never needs it, and it would triple the pushed size (Adam, Adadelta).
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures, include_optimizer=False)
    warmup_images = [p if os.path.isabs(p) or "://" in p else str(REPO_ROOT / p) for p in cfg["warmup_images"]]
    write_warmup_requests(fn_args.serving_model_dir, warmup_images, cfg["serving_model_name"])
