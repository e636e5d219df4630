"""Stops the run before training when ExampleValidator found anomalies in any split."""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils


class DataValidationError(RuntimeError):
    """ExampleValidator reported anomalies; the message is one line."""


def read_anomalies(anomalies_uri: str, split_names: list) -> dict:
    """{split: ["feature: short description", ...]} for the splits that have anomalies."""
    found = {}
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
        proto = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as f:  # a bucket on Kubeflow
            proto.ParseFromString(f.read())
        problems = [f"{name}: {info.short_description}" for name, info in sorted(proto.anomaly_info.items())]
        if proto.HasField("dataset_anomaly_info"):
            problems.append(f"(dataset): {proto.dataset_anomaly_info.short_description}")
        if problems:
            found[split] = problems
    return found


def check_anomalies(anomalies_uri: str, split_names: list) -> None:
    found = read_anomalies(anomalies_uri, split_names)
    if found:
        detail = "; ".join(f"{split}: {', '.join(p)}" for split, p in found.items())
        raise DataValidationError(f"data validation failed, training skipped: {detail}")


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
                  code_version: tfx.dsl.components.Parameter[str] = "") -> None:
    # code_version: enters the cache key only (pipeline/code_version.py).
    check_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
