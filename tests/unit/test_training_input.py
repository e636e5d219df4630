from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.trainer import data
from models.features import LABEL_KEY, TRANSFORMED_IMAGE_KEY

SIZE = 8


class _TransformOutput:
    """What make_dataset asks of a TFTransformOutput: the transformed feature spec."""

    def transformed_feature_spec(self):
        return {TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([SIZE, SIZE, 3], tf.float32),
                LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}


def _class_ordered_records(path, per_class: int, classes: int = 4) -> str:
    """A GZIP TFRecord file in runs of one class, as Transform writes the Kaggle TRAIN split."""
    image = np.zeros(SIZE * SIZE * 3, np.float32)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for label in range(classes):
            for _ in range(per_class):
                example = tf.train.Example(features=tf.train.Features(feature={
                    TRANSFORMED_IMAGE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image)),
                    LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
                writer.write(example.SerializeToString())
    return str(path)


def test_training_batches_draw_from_the_whole_split_from_the_first_batch(tmp_path):
    # 3,000 records, more than the old 2,048-record buffer: with it, the first batches could only hold
    # the first three classes (records 0-2,047).
    files = [_class_ordered_records(tmp_path / "train.gz", per_class=750)]
    ds = data.make_dataset(files, _TransformOutput(), batch_size=32, training=True, seed=1)
    first_labels = np.concatenate([y.numpy() for _, y in ds.take(2)])
    assert set(first_labels.tolist()) == {0, 1, 2, 3}
    # Each epoch is the whole split once, in a new order.
    epochs = [np.concatenate([y.numpy() for _, y in ds]) for _ in range(2)]
    assert all(np.bincount(e).tolist() == [750] * 4 for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_count_records():
    assert data.count_records(tf.data.Dataset.range(37)) == 37


def test_the_same_seed_gives_the_same_training_order_from_several_files(tmp_path):
    # Transform writes a split as several files (train and val with train_on_val): read in whatever
    # order the parallel reads finished, the seeded shuffle and augmentation got other inputs each run.
    files = [_class_ordered_records(tmp_path / f"part{i}.gz", per_class=[15, 75][i % 2]) for i in range(4)]
    orders = {np.concatenate([y.numpy() for _, y in data.make_dataset(files, _TransformOutput(), 32, True, 7)]).tobytes()
              for _ in range(5)}
    assert len(orders) == 1
