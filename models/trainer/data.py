"""The Trainer's input pipeline: transformed TFRecords -> (images, labels) batches, and the subsets
and recoloured copies the review score is fitted on."""
from __future__ import annotations

import logging
import math

import tensorflow as tf
import tensorflow_transform as tft

from models.features import BASE_SOURCE, LABEL_KEY, SOURCE_KEY, TRANSFORMED_IMAGE_KEY
from models.trainer import augment as augment_lib

# Memory for the training shuffle's buffer (and cache) of serialized records: 20,000 records at 80x80
# (about 77 kB each), twice the Kaggle TRAIN split.
MAX_SHUFFLE_BYTES = 1_536_000_000


def shuffle_capacity(feature_spec: dict) -> int:
    """How many records MAX_SHUFFLE_BYTES holds: a record is mostly its float32 image."""
    return max(1, MAX_SHUFFLE_BYTES // (4 * math.prod(feature_spec[TRANSFORMED_IMAGE_KEY].shape)))


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
        records, capacity = count_records(ds), shuffle_capacity(feature_spec)
        if records <= capacity:
            ds = ds.cache().shuffle(records, seed=seed, reshuffle_each_iteration=True)
        else:
            logging.warning("shuffling %d training records through a buffer of %d: where the records come "
                            "in runs of one class, batches will lean to the classes being read",
                            records, capacity)
            ds = ds.shuffle(capacity, seed=seed, reshuffle_each_iteration=True)
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


def _feature_of(feature_spec: dict, key: str):
    """record -> the scalar value of one feature, parsing only that feature."""
    spec = {key: feature_spec[key]}
    return lambda record: tf.reshape(tf.io.parse_single_example(record, spec)[key], [-1])[0]


def lab_records_by_class(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput,
                         num_classes: int) -> list[list[bytes]]:
    """The split's lab records (serialized), per class, in one read: a lab's reviewed cells are few, and
    held in memory they are not read again for each class, for the review score, or to be counted.
    Empty lists for data made before examples had a source."""
    by_class: list[list[bytes]] = [[] for _ in range(num_classes)]
    feature_spec = tf_transform_output.transformed_feature_spec()
    if SOURCE_KEY not in feature_spec:
        return by_class
    source, label = _feature_of(feature_spec, SOURCE_KEY), _feature_of(feature_spec, LABEL_KEY)
    lab = _records(file_pattern).filter(lambda r: tf.not_equal(source(r), BASE_SOURCE)).map(lambda r: (label(r), r))
    outside = 0
    for y, record in lab.as_numpy_iterator():
        if 0 <= y < num_classes:
            by_class[y].append(record)
        else:  # Transform's schema check should never let one by
            outside += 1
    if outside:
        raise ValueError(f"{outside} lab records have a label outside the {num_classes} classes")
    return by_class


def make_adapt_dataset(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput, batch_size: int,
                       seed: int, lab_share: float, lab_by_class: list[list[bytes]]) -> tf.data.Dataset:
    """Endless augmented (images, labels) batches, `lab_share` of each drawn from lab cells and the rest
    from the base data: a hundred lab cells among thousands of base images would otherwise barely move
    the model, and the base images keep it from forgetting the base lab. Within the lab share each class
    the lab has cells of is equally likely: a lab reviews mostly its commonest class, and drawn as they
    come its rare classes were missed (research/README.md, the adaptation screen)."""
    present = [records for records in lab_by_class if records]
    if not present:
        raise ValueError("make_adapt_dataset needs the classes the labs have cells of; none given")
    feature_spec = tf_transform_output.transformed_feature_spec()
    source = _feature_of(feature_spec, SOURCE_KEY)
    lab_side = tf.data.Dataset.sample_from_datasets(
        [tf.data.Dataset.from_tensor_slices(records).shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
         .repeat() for records in present], seed=seed + 1)
    # A buffer at the cap holds the whole Kaggle TRAIN split: no counting pass needed. No cache: the
    # fine-tune reads about one pass of the base split, and a cache of a larger one would outgrow memory.
    base_side = (_records(file_pattern).filter(lambda r: tf.equal(source(r), BASE_SOURCE))
                 .shuffle(shuffle_capacity(feature_spec), seed=seed, reshuffle_each_iteration=True).repeat())
    ds = tf.data.Dataset.sample_from_datasets([lab_side, base_side], weights=[lab_share, 1.0 - lab_share],
                                              seed=seed) if lab_share < 1 else lab_side
    ds = images_and_labels(ds.batch(batch_size), feature_spec)
    return map_images(ds, augment_lib.augment, seed, batch_size).prefetch(tf.data.AUTOTUNE)


def make_lab_dataset(lab_by_class: list[list[bytes]], tf_transform_output: tft.TFTransformOutput,
                     batch_size: int) -> tf.data.Dataset:
    """The lab cells, as they are: (images, labels) batches."""
    lab = tf.data.Dataset.from_tensor_slices([record for records in lab_by_class for record in records])
    return images_and_labels(lab.batch(batch_size), tf_transform_output.transformed_feature_spec()).prefetch(
        tf.data.AUTOTUNE)
