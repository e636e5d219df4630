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
                 training: bool, seed: int, left_out_sources: tuple[str, ...] = ()) -> tf.data.Dataset:
    """Transformed TFRecords -> (images, labels) batches, read and mapped in parallel, without the records
    of `left_out_sources` (labs not trained on: adaptable_labs)."""
    feature_spec = tf_transform_output.transformed_feature_spec()
    files = tf.data.Dataset.list_files(file_pattern, shuffle=training, seed=seed)
    # In a fixed order even when training: the seeded shuffle and augmentation must get the same input.
    ds = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                          cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if left_out_sources:
        source, left_out = _feature_of(feature_spec, SOURCE_KEY), tf.constant(list(left_out_sources))
        ds = ds.filter(lambda r: tf.logical_not(tf.reduce_any(tf.equal(source(r), left_out))))
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
    seed of an image comes from the base seed and its position: the same image, at the same place in
    the same order, is changed the same way in every run."""
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


LabCells = dict  # lab name -> per class, that lab's serialized train records

MIN_LAB_CLASSES = 2


def lab_records(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput,
                num_classes: int) -> LabCells:
    """The split's lab records (serialized), per lab and class, in one read: a lab's reviewed cells are
    few, and held in memory they are not read again for each class, for the review score, or to be
    counted. Empty for data made before examples had a source."""
    cells: LabCells = {}
    feature_spec = tf_transform_output.transformed_feature_spec()
    if SOURCE_KEY not in feature_spec:
        return cells
    source, label = _feature_of(feature_spec, SOURCE_KEY), _feature_of(feature_spec, LABEL_KEY)
    lab = (_records(file_pattern).filter(lambda r: tf.not_equal(source(r), BASE_SOURCE))
           .map(lambda r: (source(r), label(r), r)))
    outside = 0
    for name, y, record in lab.as_numpy_iterator():
        if 0 <= y < num_classes:
            cells.setdefault(name.decode(), [[] for _ in range(num_classes)])[y].append(record)
        else:  # Transform's schema check should never let one by
            outside += 1
    if outside:
        raise ValueError(f"{outside} lab records have a label outside the {num_classes} classes")
    return dict(sorted(cells.items()))


def adaptable_labs(cells: LabCells, class_names: list[str]) -> tuple[LabCells, dict[str, str]]:
    """(the labs a model learns from, {lab left out: why}). A lab whose reviewed cells are of one class
    only is left out, of adapting and of training from the start alike: its held-out cells are of that
    class too, so a model that gave every cell of that microscope that answer would pass the gate."""
    kept, left_out = {}, {}
    for name, by_class in cells.items():
        present = [class_names[c] for c, records in enumerate(by_class) if records]
        if len(present) >= MIN_LAB_CLASSES:
            kept[name] = by_class
        else:
            left_out[name] = (f"reviewed cells of {', '.join(present) or 'no class'} only: trained on once "
                              f"they hold {MIN_LAB_CLASSES} classes")
    return kept, left_out


def make_adapt_dataset(file_pattern: list[str], tf_transform_output: tft.TFTransformOutput, batch_size: int,
                       seed: int, lab_share: float, lab_cells: LabCells) -> tf.data.Dataset:
    """Endless augmented (images, labels) batches, `lab_share` of each drawn from lab cells and the rest
    from the base data: a hundred lab cells among thousands of base images would otherwise barely move
    the model, and the base images keep it from forgetting the base lab. Within the lab share each lab
    is equally likely (a big lab would otherwise swamp a small one), and within a lab each class it has
    cells of: a lab reviews mostly its commonest class, and drawn as they come its rare classes were
    missed (research/README.md, the adaptation screen)."""
    per_lab = []
    for i, by_class in enumerate(lab_cells.values()):
        present = [records for records in by_class if records]
        if present:
            per_lab.append(tf.data.Dataset.sample_from_datasets(
                [tf.data.Dataset.from_tensor_slices(records).shuffle(len(records), seed=seed,
                                                                     reshuffle_each_iteration=True).repeat()
                 for records in present], seed=seed + 1 + i))
    if not per_lab:
        raise ValueError("make_adapt_dataset needs the classes the labs have cells of; none given")
    lab_side = per_lab[0] if len(per_lab) == 1 else tf.data.Dataset.sample_from_datasets(
        per_lab, seed=seed + 1 + len(per_lab))
    feature_spec = tf_transform_output.transformed_feature_spec()
    source = _feature_of(feature_spec, SOURCE_KEY)
    # At 80x80 a buffer at the cap holds the whole Kaggle TRAIN split: no counting pass needed. No cache:
    # the fine-tune reads about one pass of the base split, and a cache of a larger one would outgrow memory.
    base_side = (_records(file_pattern).filter(lambda r: tf.equal(source(r), BASE_SOURCE))
                 .shuffle(shuffle_capacity(feature_spec), seed=seed, reshuffle_each_iteration=True).repeat())
    ds = tf.data.Dataset.sample_from_datasets([lab_side, base_side], weights=[lab_share, 1.0 - lab_share],
                                              seed=seed) if lab_share < 1 else lab_side
    ds = images_and_labels(ds.batch(batch_size), feature_spec)
    return map_images(ds, augment_lib.augment, seed, batch_size).prefetch(tf.data.AUTOTUNE)


def make_lab_dataset(lab_cells: LabCells, tf_transform_output: tft.TFTransformOutput,
                     batch_size: int) -> tf.data.Dataset:
    """The lab cells as they are: (images, group) batches, one group per lab and class, in that order
    (the review score's lab means: one lab's stain is not another's)."""
    groups = [records for by_class in lab_cells.values() for records in by_class if records]
    records = tf.data.Dataset.from_tensor_slices([r for group in groups for r in group])
    ids = tf.data.Dataset.from_tensor_slices([g for g, group in enumerate(groups) for _ in group])
    feature_spec = tf_transform_output.transformed_feature_spec()
    images = images_and_labels(records.batch(batch_size), feature_spec).map(lambda x, y: x)
    return tf.data.Dataset.zip((images, ids.batch(batch_size))).prefetch(tf.data.AUTOTUNE)
