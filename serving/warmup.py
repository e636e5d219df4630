"""TF Serving warm-up requests: PredictionLog records from real images, stored with each model
version under assets.extra/, so the server runs them at load time and the first request is fast."""
from __future__ import annotations

import os
from importlib import resources

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from models import features

# TF Serving's max_batch_size (serving/config/batching.config; a test keeps the two equal). It runs
# warm-up through its batching session, where a larger request fails the version's load.
MAX_BATCH_SIZE = 32
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses to load a version whose warm-up file holds more


def warmup_batches(images: list) -> list[list]:
    """The warm-up requests' images: one request per image, then the images in full batches (the batch
    sizes serving will see)."""
    return [[image] for image in images] + [images[i:i + MAX_BATCH_SIZE] for i in range(0, len(images), MAX_BATCH_SIZE)]


def warmup_count_problem(images: int) -> str | None:
    """Why that many warm-up images would keep TF Serving from loading the model, or None."""
    records = len(warmup_batches(list(range(images))))
    if records > MAX_WARMUP_RECORDS:
        return (f"serving.warmup_images: {images} images make {records} warm-up requests; TF Serving loads "
                f"a model with at most {MAX_WARMUP_RECORDS}")
    return None


def predict_request(images: list[bytes], model_name: str) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=features.SERVING_SIGNATURE))
    request.inputs[features.SERVING_INPUT].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string, shape=[len(images)]))
    return request


def packaged_warmup_images() -> list[str]:
    """The four sample cells (one per class) shipped as data of this package: the warm-up images when
    the configuration names none, so no image needs the repo's sample data."""
    folder = resources.files("serving") / "warmup_images"
    return sorted(str(p) for p in folder.iterdir() if p.name.endswith(".jpeg"))


def write_warmup_requests(model_dir: str, image_paths: list[str], model_name: str) -> str:
    """The warm-up file: a request per batch of warmup_batches."""
    images = []
    for path in image_paths:
        with tf.io.gfile.GFile(path, "rb") as f:
            images.append(f.read())
    path = os.path.join(model_dir, features.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for batch in warmup_batches(images):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=predict_request(batch, model_name)))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(model_dir: str) -> list[prediction_log_pb2.PredictionLog]:
    path = os.path.join(model_dir, features.WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]
