"""serving.version_check's checks that need no model: the version folder's name and the warm-up file's
shape, which TF Serving refuses at load time."""
from __future__ import annotations

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving.version_check import check_version, warmup_problems
from serving.warmup import MAX_BATCH_SIZE, MAX_WARMUP_RECORDS, predict_request


def logs(*batch_sizes: int) -> list[prediction_log_pb2.PredictionLog]:
    return [prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
        request=predict_request([b"x"] * n, "bloodcell"))) for n in batch_sizes]


def test_a_version_folder_named_with_other_digits_is_not_a_version(tmp_path):
    # str.isdigit() takes Arabic-Indic digits; TF Serving reads a version from ASCII digits only.
    for name, numbered in (("١٢", False), ("12", True)):
        (tmp_path / name).mkdir()
        problems = check_version(str(tmp_path / name))
        assert ("version folder name is not a number: TF Serving ignores it" in problems) is not numbered, problems


def test_a_warmup_file_tf_serving_would_refuse_is_named():
    assert warmup_problems(logs(1, 4, MAX_BATCH_SIZE)) == []
    assert warmup_problems(logs(1, MAX_BATCH_SIZE + 1)) == [
        f"warm-up request 2 holds {MAX_BATCH_SIZE + 1} images; TF Serving's batching takes at most "
        f"{MAX_BATCH_SIZE} and fails the load"]
    assert warmup_problems(logs(*[1] * (MAX_WARMUP_RECORDS + 1))) == [
        f"warm-up file holds {MAX_WARMUP_RECORDS + 1} requests; TF Serving loads a model with at most "
        f"{MAX_WARMUP_RECORDS}"]
    assert warmup_problems([]) == ["warm-up file holds no requests"]
    other = logs(1)
    other[0].predict_log.request.model_spec.signature_name = "other"
    assert warmup_problems(other) == ["a warm-up request does not match the serving signature"]
