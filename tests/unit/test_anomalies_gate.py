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
