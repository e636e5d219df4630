from __future__ import annotations

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.anomalies_gate.component import DataValidationError, check_anomalies, read_anomalies


def write(uri, split, anomalies: anomalies_pb2.Anomalies):
    path = uri / f"Split-{split}"
    path.mkdir(parents=True)
    (path / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())


def test_clean_splits_pass(tmp_path):
    for split in ("train", "eval"):
        write(tmp_path, split, anomalies_pb2.Anomalies())
    assert read_anomalies(str(tmp_path), ["train", "eval"]) == {}
    check_anomalies(str(tmp_path), ["train", "eval"])


def test_anomalies_stop_with_one_line(tmp_path):
    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["label_name"].short_description = "Unexpected string values"
    bad.anomaly_info["image"].short_description = "Column dropped"
    write(tmp_path, "train", anomalies_pb2.Anomalies())
    write(tmp_path, "eval", bad)
    with pytest.raises(DataValidationError) as err:
        check_anomalies(str(tmp_path), ["train", "eval"])
    assert str(err.value) == ("data validation failed, training skipped: eval: image: Column dropped, "
                              "label_name: Unexpected string values")


def test_the_anomalies_are_read_from_a_bucket_too():
    # On Kubeflow the pipeline root is a bucket: a local open() found no file there, every run failed.
    import tensorflow as tf

    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["image"].short_description = "Column dropped"
    uri = "ram://bucket/pipeline_root/ExampleValidator/anomalies/7"
    for split, anomalies in (("train", anomalies_pb2.Anomalies()), ("eval", bad)):
        with tf.io.gfile.GFile(f"{uri}/Split-{split}/SchemaDiff.pb", "wb") as f:
            f.write(anomalies.SerializeToString())
    assert read_anomalies(uri, ["train", "eval"]) == {"eval": ["image: Column dropped"]}


def test_the_serving_blessing_is_written_to_a_bucket_too(tmp_path, monkeypatch):
    # A local makedirs had made a folder named "gs:" in the working directory, and no blessing.
    import tensorflow as tf

    from components.serving_check.component import BLESSED_FILE, mark_blessed

    monkeypatch.chdir(tmp_path)
    mark_blessed("ram://bucket/pipeline_root/ServingCheck/blessing/9")
    assert tf.io.gfile.exists(f"ram://bucket/pipeline_root/ServingCheck/blessing/9/{BLESSED_FILE}")
    assert not list(tmp_path.iterdir())
