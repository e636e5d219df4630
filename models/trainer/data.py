"""The Trainer's input pipeline: transformed TFRecords -> (images, labels) batches, and the subsets
and recoloured copies the review score is fitted on."""
from __future__ import annotations

import logging
import math

import tensorflow as tf
import tensorflow_transform as tft

from models.features import BASE_SOURCE, LABEL_KEY, SOURCE_KEY, TRANSFORMED_IMAGE_KEY
from models.trainer import augment as augment_lib

# The training shuffle's buffer holds serialized records (about 77 kB each at 80x80): 20,000 is about
# 1.5 GB, twice the Kaggle TRAIN split.
MAX_SHUFFLE_RECORDS = 20_000


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
        # val accuracy was 1.6-2 points lower. Kept in memory as serialized records, so later epochs
        # do not decompress them again; past the cap neither the buffer nor the cache would fit in
        # memory, so the records stream through a capped buffer.
        records = count_records(ds)
        if records <= MAX_SHUFFLE_RECORDS:
            ds = ds.cache().shuffle(records, seed=seed, reshuffle_each_iteration=True)
        else:
            logging.warning("shuffling %d training records through a buffer of %d: where the records come "
                            "in runs of one class, batches will lean to the classes being read",
                            records, MAX_SHUFFLE_RECORDS)
            ds = ds.shuffle(MAX_SHUFFLE_RECORDS, seed=seed, reshuffle_each_iteration=True)
    ds = images_and_labels(ds.batch(batch_size), feature_spec)
    if training:
        ds = map_images(ds, augment_lib.augment, seed, batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_and_labels(batches: tf.data.Dataset, feature_spec: dict) -> tf.data.Dataset:
    """Batches of serialized transformed records -> (images, labels) batches."""
    ds = batches.map(lambda s: tf.io.parse_example(s, feature_spec), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda f: (f[TRANSFORMED_IMAGE_KEY], tf.reshape(f[LABEL_KEY], [-1])),
                  num_parallel_calls=tf.data.AUTOTUNE)


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


def _records(file_pattern: list[str]) -> tf.data.Dataset:
    files = tf.data.Dataset.list_files(file_pattern, shuffle=False)
    return files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"), cycle_length=4,
                            num_parallel_calls=tf.data.AUTOTUNE)


def _source_of(feature_spec: dict):
    spec = {SOURCE_KEY: feature_spec[SOURCE_KEY]}
    return lambda record: tf.reshape(tf.io.parse_single_example(record, spec)[SOURCE_KEY], [-1])[0]


def _label_of(feature_spec: dict):
    spec = {LABEL_KEY: feature_spec[LABEL_KEY]}
    return lambda record: tf.reshape(tf.io.parse_single_example(record, spec)[LABEL_KEY], [-1])[0]


def lab_class_counts(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput,
                     num_classes: int) -> list[int]:
    """How many records of the split come from a lab, per class (all 0 for data made before examples
    had a source)."""
    feature_spec = tf_transform_output.transformed_feature_spec()
    if SOURCE_KEY not in feature_spec:
        return [0] * num_classes
    source, label = _source_of(feature_spec), _label_of(feature_spec)
    labels = _records(file_pattern).filter(lambda r: tf.not_equal(source(r), BASE_SOURCE)).map(label)
    # One slot more for a label outside the classes, which Transform's schema check should never let by.
    counts = labels.reduce(tf.zeros([num_classes + 1], tf.int64), lambda n, y: n + tf.one_hot(
        tf.where((y >= 0) & (y < num_classes), y, num_classes), num_classes + 1, dtype=tf.int64)).numpy()
    if counts[-1]:
        raise ValueError(f"{counts[-1]} lab records have a label outside the {num_classes} classes")
    return [int(n) for n in counts[:-1]]


def make_adapt_dataset(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput, batch_size: int,
                       seed: int, lab_share: float, lab_classes: list[int]) -> tf.data.Dataset:
    """Endless augmented (images, labels) batches, `lab_share` of each drawn from lab cells and the rest
    from the base data: a hundred lab cells among thousands of base images would otherwise barely move
    the model, and the base images keep it from forgetting the base lab. Within the lab share each of
    `lab_classes` (those the lab has cells of) is equally likely: a lab reviews mostly its commonest
    class, and drawn as they come its rare classes were missed (research/README.md, the adaptation
    screen)."""
    if not lab_classes:
        raise ValueError("make_adapt_dataset needs the classes the labs have cells of; none given")
    feature_spec = tf_transform_output.transformed_feature_spec()
    source, label = _source_of(feature_spec), _label_of(feature_spec)
    records = _records(file_pattern)

    def endless(chosen: tf.data.Dataset) -> tf.data.Dataset:
        # A buffer at the cap holds a whole side of the Kaggle data: no counting pass needed.
        return chosen.cache().shuffle(MAX_SHUFFLE_RECORDS, seed=seed, reshuffle_each_iteration=True).repeat()

    lab = records.filter(lambda r: tf.not_equal(source(r), BASE_SOURCE))
    lab_side = tf.data.Dataset.sample_from_datasets(
        [endless(lab.filter(lambda r, c=c: tf.equal(label(r), c))) for c in lab_classes], seed=seed)
    base_side = endless(records.filter(lambda r: tf.equal(source(r), BASE_SOURCE)))
    ds = tf.data.Dataset.sample_from_datasets([lab_side, base_side], weights=[lab_share, 1.0 - lab_share],
                                              seed=seed) if lab_share < 1 else lab_side
    ds = images_and_labels(ds.batch(batch_size), feature_spec)
    return map_images(ds, augment_lib.augment, seed, batch_size).prefetch(tf.data.AUTOTUNE)


def make_lab_dataset(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput,
                     batch_size: int) -> tf.data.Dataset:
    """The lab cells of the split, as they are: (images, labels) batches."""
    feature_spec = tf_transform_output.transformed_feature_spec()
    source = _source_of(feature_spec)
    lab = _records(file_pattern).filter(lambda r: tf.not_equal(source(r), BASE_SOURCE))
    return images_and_labels(lab.batch(batch_size), feature_spec).prefetch(tf.data.AUTOTUNE)
