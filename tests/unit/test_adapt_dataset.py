"""The fine-tuning batches of an adaptation (models/trainer/data.py): lab cells drawn class by class."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.features import BASE_SOURCE, LABEL_KEY, SOURCE_KEY, TRANSFORMED_IMAGE_KEY
from models.trainer import data

SIZE = 8
SPEC = {TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([SIZE, SIZE, 3], tf.float32),
        LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64), SOURCE_KEY: tf.io.FixedLenFeature([1], tf.string)}


class _Transformed:
    def transformed_feature_spec(self):
        return dict(SPEC)


def _write(path, cells, value=lambda source: 0.5):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for label, source in cells:
            feature = {TRANSFORMED_IMAGE_KEY: tf.train.Feature(float_list=tf.train.FloatList(
                           value=np.full(SIZE * SIZE * 3, value(source), np.float32))),
                       LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                       SOURCE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_lab_cells_are_drawn_class_by_class_and_counted_per_class(tmp_path):
    # A lab's reviews are mostly its commonest class: 30 neutrophils (3) and 3 lymphocytes (1).
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 40 + [(3, "lab")] * 30 + [(1, "lab")] * 3)
    files = [str(tmp_path / "*.gz")]
    lab = data.lab_records(files, _Transformed(), 4)
    assert {name: [len(records) for records in by_class] for name, by_class in lab.items()} == {"lab": [0, 3, 0, 30]}
    ds = data.make_adapt_dataset(files, _Transformed(), batch_size=20, seed=1, lab_share=1.0, lab_cells=lab)
    labels = np.concatenate([y.numpy() for _, y in ds.take(20)])
    assert set(labels.tolist()) == {1, 3}
    assert 0.4 < np.mean(labels == 1) < 0.6  # as often as the common class, not 3 in 33


def test_the_base_share_of_a_batch_stays_base_cells(tmp_path):
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 40 + [(3, "lab")] * 30 + [(1, "lab")] * 3)
    files = [str(tmp_path / "*.gz")]
    ds = data.make_adapt_dataset(files, _Transformed(), batch_size=20, seed=1, lab_share=0.5,
                                 lab_cells=data.lab_records(files, _Transformed(), 4))
    labels = np.concatenate([y.numpy() for _, y in ds.take(20)])
    assert 0.4 < np.mean(labels == 0) < 0.6 and 0.15 < np.mean(labels == 1) < 0.35


def test_a_label_outside_the_classes_or_no_lab_class_is_a_clear_error(tmp_path):
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 4 + [(7, "lab")])
    files = [str(tmp_path / "*.gz")]
    with pytest.raises(ValueError, match="1 lab records have a label outside the 4 classes"):
        data.lab_records(files, _Transformed(), 4)
    with pytest.raises(ValueError, match="needs the classes the labs have cells of"):
        data.make_adapt_dataset(files, _Transformed(), batch_size=4, seed=1, lab_share=0.5, lab_cells={"a": [[], []]})


def _dataset_ops(ds) -> str:
    return tf.raw_ops.DatasetToGraphV2(input_dataset=ds._variant_tensor).numpy().decode("latin-1")


def test_the_shuffle_buffer_is_capped_by_memory_and_the_adaptation_caches_nothing(tmp_path):
    # 1.5 GB of records: 20,000 at 80x80, far fewer at 224x224 (a record is mostly its float32 image).
    def capacity(size):
        return data.shuffle_capacity({TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([size, size, 3], tf.float32)})

    assert capacity(80) == 20_000 and capacity(224) == 2_551
    # The fine-tune reads about one pass of the base split: a cache of all of it would only grow memory.
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 4 + [(1, "lab")] * 2)
    files = [str(tmp_path / "*.gz")]
    ds = data.make_adapt_dataset(files, _Transformed(), batch_size=4, seed=1, lab_share=0.5,
                                 lab_cells=data.lab_records(files, _Transformed(), 4))
    assert "CacheDataset" not in _dataset_ops(ds)
    assert "CacheDataset" in _dataset_ops(data.make_dataset(files, _Transformed(), 4, True, 1))  # the ops are seen


def _labels_and_images(ds, batches):
    pairs = [(x.numpy(), y.numpy()) for x, y in ds.take(batches)]
    return np.concatenate([y for _, y in pairs]), np.concatenate([x for x, _ in pairs])


def test_each_lab_is_drawn_as_often_and_gets_review_means_of_its_own(tmp_path):
    # Two labs, two stains: pooled by class, the big lab swamped the small one in every batch, and one
    # mean per class sat between the two labs' colours, near neither (every cell of both flagged).
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 4 + [(3, "big")] * 60 + [(1, "big")] * 20
           + [(3, "small")] * 3 + [(1, "small")] * 2, value=lambda source: {"big": 0.2, "small": 0.9}.get(source, 0.5))
    files = [str(tmp_path / "*.gz")]
    lab = data.lab_records(files, _Transformed(), 4)
    ds = data.make_adapt_dataset(files, _Transformed(), batch_size=20, seed=1, lab_share=1.0, lab_cells=lab)
    _, images = _labels_and_images(ds, 30)
    small = np.mean(images.reshape(len(images), -1).mean(axis=1) > 0.55)
    assert 0.4 < small < 0.6, small  # half the lab share, not 5 in 85
    groups, images = _labels_and_images(data.make_lab_dataset(lab, _Transformed(), 4), 100)
    assert len(set(groups.tolist())) == 4  # (big, 1), (big, 3), (small, 1), (small, 3)
    for group in set(groups.tolist()):
        assert len(set(np.round(images[groups == group].mean(axis=(1, 2, 3)), 3).tolist())) == 1  # one lab each


def test_a_lab_with_cells_of_one_class_is_not_trained_on(tmp_path):
    # Its held-out cells are all that class too, so a model that gives every cell of its microscope that
    # answer would pass the gate.
    _write(tmp_path / "a.gz", [(0, BASE_SOURCE)] * 4 + [(3, "onlyneu")] * 30 + [(3, "lab")] * 3 + [(1, "lab")] * 2)
    kept, left_out = data.adaptable_labs(data.lab_records([str(tmp_path / "*.gz")], _Transformed(), 4),
                                         ["A", "B", "C", "D"])
    assert list(kept) == ["lab"]
    # Nor when the run trains from the start (the only lab left out, or no blessed model to adapt).
    ds = data.make_dataset([str(tmp_path / "*.gz")], _Transformed(), 8, True, 1, tuple(left_out))
    assert sorted(np.concatenate([y.numpy() for _, y in ds]).tolist()) == [0] * 4 + [1] * 2 + [3] * 3
    assert left_out == {"onlyneu": "reviewed cells of D only: trained on once they hold 2 classes"}
