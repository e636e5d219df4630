"""Checks a pushed model version the way TF Serving will meet it.

    python -m serving.version_check <model_base_path>/<version> [...]

It loads; its serving signature's input and output names and dtypes are what the clients send and
read; its warm-up file parses into Predict requests for that signature, as many and as large as TF
Serving takes, and each is answered; the browser signature answers as the served one does.
"""
from __future__ import annotations

import os
import sys

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from models import features
from serving.warmup import MAX_BATCH_SIZE, MAX_WARMUP_RECORDS, read_warmup_requests


def signature_def(version_dir: str, name: str = features.SERVING_SIGNATURE):
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    sigs = proto.meta_graphs[0].signature_def
    return sigs[name] if name in sigs else None


def check_version(version_dir: str, numbered: bool = True, answer_warmup: bool = False) -> list[str]:
    """The problems found; an empty list means TF Serving can serve it to our clients. numbered=False
    for a model not yet in a version folder (the Trainer's output, before the Pusher); answer_warmup
    also runs every warm-up request through the model, as TF Serving does at load time."""
    problems = []
    name = os.path.basename(version_dir.rstrip("/"))
    if numbered and not (name.isascii() and name.isdigit()):  # isdigit() alone takes other scripts' digits
        problems.append("version folder name is not a number: TF Serving ignores it")
    if not tf.io.gfile.exists(os.path.join(version_dir, "saved_model.pb")):
        return problems + ["no saved_model.pb"]
    try:
        loaded = tf.saved_model.load(version_dir)
    except Exception as err:  # whatever stops the load stops the server too
        return problems + [f"does not load: {str(err).splitlines()[0]}"]
    sig = signature_def(version_dir)
    if sig is None:
        return problems + [f"no '{features.SERVING_SIGNATURE}' signature"]
    inputs = {k: types_pb2.DataType.Name(v.dtype) for k, v in sig.inputs.items()}
    if inputs != {features.SERVING_INPUT: features.SERVING_INPUT_DTYPE}:
        problems.append(f"inputs are {inputs}, clients send {{'{features.SERVING_INPUT}': '{features.SERVING_INPUT_DTYPE}'}}")
    outputs = {k: types_pb2.DataType.Name(v.dtype) for k, v in sig.outputs.items()}
    for name, dtype in features.OUTPUTS.items():
        if outputs.get(name) != dtype:
            problems.append(f"output '{name}' is {outputs.get(name, 'missing')}, clients read {dtype}")
    if not tf.io.gfile.exists(os.path.join(version_dir, features.WARMUP_FILE)):
        return problems + [f"no warm-up file ({features.WARMUP_FILE}): the Trainer writes one into every "
                           f"version; without it the first requests after a load are slow"]
    try:
        logs = read_warmup_requests(version_dir)
    except Exception as err:
        return problems + [f"warm-up file unreadable: {str(err).splitlines()[0]}"]
    shape = warmup_problems(logs)
    if shape:
        return problems + shape
    if answer_warmup:
        problems += warmup_answer_problems(loaded, logs)
        if not problems:
            problems += browser_parity_problems(
                loaded, tf.make_ndarray(logs[0].predict_log.request.inputs[features.SERVING_INPUT]))
    return problems


def warmup_problems(logs) -> list[str]:
    """What in the warm-up requests' shape keeps TF Serving from loading the version."""
    if not logs:
        return ["warm-up file holds no requests"]
    if len(logs) > MAX_WARMUP_RECORDS:
        return [f"warm-up file holds {len(logs)} requests; TF Serving loads a model with at most {MAX_WARMUP_RECORDS}"]
    for n, log in enumerate(logs, 1):
        request = log.predict_log.request
        if request.model_spec.signature_name != features.SERVING_SIGNATURE or set(request.inputs) != {features.SERVING_INPUT}:
            return ["a warm-up request does not match the serving signature"]
        dims = request.inputs[features.SERVING_INPUT].tensor_shape.dim
        if dims and dims[0].size > MAX_BATCH_SIZE:
            return [f"warm-up request {n} holds {dims[0].size} images; TF Serving's batching takes at most "
                    f"{MAX_BATCH_SIZE} and fails the load"]
    return []


# float32 ops in another order: the two signatures agree to about 1e-6.
BROWSER_TOLERANCE = 1e-4


def browser_parity_problems(loaded, images) -> list[str]:
    """The browser signature, given the warm-up images decoded as the served one decodes them, must
    answer as the served one does. It rebuilds Transform's resize from ops TensorFlow.js has: a change
    to one side alone would give the browser other answers than TF Serving."""
    from models.transform.preprocessing import decode_rgb

    if features.BROWSER_SIGNATURE not in loaded.signatures:
        return [f"no '{features.BROWSER_SIGNATURE}' signature: the browser model is converted from it"]
    served = loaded.signatures[features.SERVING_SIGNATURE](**{features.SERVING_INPUT: tf.constant(images)})
    browser = loaded.signatures[features.BROWSER_SIGNATURE]
    for n, encoded in enumerate(images, 1):
        pixels = tf.cast(decode_rgb(tf.constant(encoded)), tf.float32)[tf.newaxis]
        answer = browser(**{features.BROWSER_INPUT: pixels})[features.PROBABILITIES][0]
        gap = float(tf.reduce_max(tf.abs(answer - served[features.PROBABILITIES][n - 1])))
        if not gap <= BROWSER_TOLERANCE:
            return [f"the browser signature answers warm-up image {n} otherwise than '{features.SERVING_SIGNATURE}' "
                    f"(probabilities {gap:.2g} apart): the browser and TF Serving would disagree"]
    return []


def warmup_answer_problems(loaded, logs) -> list[str]:
    """Runs each warm-up request through the serving signature; a server fails to load a version
    whose warm-up fails."""
    serve = loaded.signatures[features.SERVING_SIGNATURE]
    for n, log in enumerate(logs, 1):
        images = tf.make_ndarray(log.predict_log.request.inputs[features.SERVING_INPUT])
        try:
            outputs = serve(**{features.SERVING_INPUT: tf.constant(images)})
        except Exception as err:  # what fails here fails TF Serving's warm-up too
            return [f"warm-up request {n} not answered: {str(err).strip().splitlines()[0]}"]
        if set(outputs) != set(features.OUTPUTS) or outputs[features.PROBABILITIES].shape[0] != len(images):
            return [f"warm-up request {n}: the answer has outputs {sorted(outputs)} for {len(images)} images"]
    return []


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m serving.version_check VERSION_DIR [...]", file=sys.stderr)
        return 2
    failed = 0
    for version_dir in argv:
        problems = check_version(version_dir, answer_warmup=True)  # as TF Serving runs it at load time
        print(f"{version_dir}: {'ok' if not problems else '; '.join(problems)}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
