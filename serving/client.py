"""Clients of the served model: gRPC (tensorflow-serving-api's PredictionService and ModelService)
and REST. Both send raw encoded images to `serving_default` and return one Prediction per image.

Errors come out as ServingError with a one-line message. Each call has one deadline, retries
included. UNAVAILABLE (TF Serving's answer when its batch queue is full) is retried with exponential
backoff, but retries are throttled as gRPC's retry policy throttles them: once failures outnumber
successes, a client stops retrying, so an overloaded server does not get several times the traffic.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import typing

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)

from models import features

DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
# The gRPC channel carries at most 64 MiB a message; REST sends base64 in JSON (4/3 of the bytes).
MAX_GRPC_REQUEST_BYTES = 60 * 2**20
MAX_REST_REQUEST_BYTES = 45 * 2**20
# gRPC's retry throttling (gRFC A6): a failure costs a token, a success gives back TOKEN_RATIO;
# retries stop while the tokens are at or under half of MAX_TOKENS.
MAX_TOKENS, TOKEN_RATIO = 10, 0.1


class ServingError(RuntimeError):
    """A request that did not give predictions; str() is one line for the user. `code` is the gRPC
    status name where there is one (INVALID_ARGUMENT: the server refused the input)."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class NotAnswered(ServingError):
    """An image never sent, or whose batch failed, once the server failed a request for a reason that
    is not the image's (unreachable, overloaded, model not found): `cause` is that failure."""

    def __init__(self, cause: ServingError):
        super().__init__(f"not answered: {cause}", cause.code)
        self.cause = cause


class VersionStatus(typing.NamedTuple):
    version: int
    state: str        # TF Serving's: START, LOADING, AVAILABLE, UNLOADING, END
    error: str = ""   # why it is not served (a failed load ends in END with this message)


@dataclasses.dataclass(frozen=True)
class Prediction:
    class_name: str
    class_id: int
    probabilities: list[float]
    atypicality: float = 0.0      # > 1: unlike the training images, send for review

    @property
    def confidence(self) -> float:
        return max(self.probabilities)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} bytes"


def size_problem(label: str, size: int, max_image_bytes: int) -> str | None:
    """Why an image of `size` bytes is not sent, in one line, or None."""
    if not size:
        return f"image {label} is empty"
    if size > max_image_bytes:
        return f"image {label} is {_size(size)}, over the {_size(max_image_bytes)} limit"
    return None


def check_sizes(images: list[bytes], max_image_bytes: int, names: list[str] | None = None) -> None:
    for i, image in enumerate(images):
        problem = size_problem(names[i] if names else f"#{i}", len(image), max_image_bytes)
        if problem:
            raise ServingError(problem)


def batches(sizes: list[int], max_count: int, max_bytes: int) -> list[range]:
    """Consecutive index ranges of at most max_count images and max_bytes each (an image over
    max_bytes goes alone; check_sizes keeps images far smaller)."""
    out, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start == max_count or total + size > max_bytes):
            out.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append(range(start, len(sizes)))
    return out


class _BatchingClient:
    """predict() for both protocols: batch_size images (and at most max_request_bytes) per request
    through the subclass's _predict_batch."""

    max_image_bytes: int
    batch_size: int
    max_request_bytes: int

    def close(self) -> None:
        """Lets go of the connection (each protocol's own)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def predict(self, images: list[bytes], version: int | None = None,
                names: list[str] | None = None) -> list[Prediction]:
        """One Prediction per image; sizes are checked first, so nothing is sent if one is too large."""
        check_sizes(images, self.max_image_bytes, names)
        results: list[Prediction | ServingError] = [None] * len(images)
        self._predict_sendable(list(range(len(images))), images, version, names, results)
        for result in results:
            if isinstance(result, ServingError):
                raise result
        return results

    def predict_each(self, images: list[bytes], version: int | None = None,
                     names: list[str] | None = None) -> list[Prediction | ServingError]:
        """A Prediction, or the ServingError that one image alone met (empty, too large, refused by
        the server), per image: one bad image does not lose the others. After an error that is not
        an image's (server unreachable, model not found) nothing more is sent: each image still
        without an answer gets a NotAnswered, and the answers already received are kept."""
        results: list[Prediction | ServingError] = [None] * len(images)
        good = []
        for i, image in enumerate(images):
            try:
                check_sizes([image], self.max_image_bytes, [names[i]] if names else [f"#{i}"])
                good.append(i)
            except ServingError as err:
                results[i] = err
        try:
            self._predict_sendable(good, images, version, names, results)
        except ServingError as err:
            for i in good:
                if results[i] is None:
                    results[i] = NotAnswered(err)
        return results

    def _predict_sendable(self, indices: list[int], images, version, names, results) -> None:
        """Fills results[i] for images whose sizes were checked, in batches the channel carries."""
        for part in batches([len(images[i]) for i in indices], self.batch_size, self.max_request_bytes):
            self._predict_isolating([indices[j] for j in part], images, version, names, results)

    def _predict_isolating(self, indices: list[int], images, version, names, results, alone: bool = False) -> None:
        """Predicts a batch; when the server refuses it, halves it until the refused images stand alone
        (each is sent once more by itself before it is blamed: `alone`)."""
        try:
            predictions = self._predict_batch([images[i] for i in indices], version)
            if len(predictions) != len(indices):
                raise ServingError(f"the server answered {len(predictions)} predictions for {len(indices)} images")
            for i, p in zip(indices, predictions):
                results[i] = p
        except ServingError as err:
            if err.code != "INVALID_ARGUMENT":
                raise
            problem = self._signature_problem(version)
            if problem:  # the request, not an image: one error, not one per image
                raise ServingError(problem, "FAILED_PRECONDITION") from None
            if len(indices) == 1:
                if not alone:
                    # TF Serving's batching merges concurrent requests and fails them all for one bad
                    # image: refused again on its own, the image is the cause.
                    return self._predict_isolating(indices, images, version, names, results, alone=True)
                label = names[indices[0]] if names else f"#{indices[0]}"
                results[indices[0]] = ServingError(f"image {label}: {err}", err.code)
                return
            half = len(indices) // 2
            self._predict_isolating(indices[:half], images, version, names, results)
            self._predict_isolating(indices[half:], images, version, names, results)

    def _predict_batch(self, batch: list[bytes], version: int | None) -> list[Prediction]:
        raise NotImplementedError

    def metadata(self, version: int | None = None) -> dict:
        raise NotImplementedError

    def _signature_problem(self, version: int | None) -> str | None:
        """Why no image can be answered (the model has no serving signature taking encoded images), or
        None; asked once per version, when the server first refuses a request. A model that is not the
        bloodcell model refused every image, one `error:` line and two requests each."""
        checked = getattr(self, "_signatures_checked", None)
        if checked is None:
            checked = self._signatures_checked = {}
        if version not in checked:
            try:
                signatures = self.metadata(version)
            except (ServingError, NotImplementedError):
                return None  # the refusal stands as the image's; asked again at the next one
            checked[version] = signature_problem(signatures, self.model_name)
        return checked[version]


def signature_problem(signatures: dict, model_name: str) -> str | None:
    """What in a served model's signatures (metadata()'s form) keeps the clients from using it, or None."""
    signature = signatures.get(features.SERVING_SIGNATURE)
    if signature is None:
        return (f"model {model_name} has no '{features.SERVING_SIGNATURE}' signature (it has: "
                f"{', '.join(sorted(signatures)) or 'none'}): is it the bloodcell model?")
    if signature["inputs"].get(features.SERVING_INPUT) != features.SERVING_INPUT_DTYPE:
        taken = ", ".join(f"{k} {v}" for k, v in sorted(signature["inputs"].items())) or "nothing"
        return (f"model {model_name}'s '{features.SERVING_SIGNATURE}' signature takes {taken}, not "
                f"'{features.SERVING_INPUT}' {features.SERVING_INPUT_DTYPE} (encoded images): is it the bloodcell model?")
    return None


def _retry_service_config(max_attempts: int) -> str:
    return json.dumps({
        "methodConfig": [{
            "name": [{"service": "tensorflow.serving.PredictionService"},
                     {"service": "tensorflow.serving.ModelService"}],
            "retryPolicy": {"maxAttempts": max_attempts, "initialBackoff": "0.2s", "maxBackoff": "5s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
        }],
        "retryThrottling": {"maxTokens": MAX_TOKENS, "tokenRatio": TOKEN_RATIO},
    })


class RetryThrottle:
    """gRPC's retry throttling, for the REST client: shared by every call of one client."""

    def __init__(self, max_tokens: float = MAX_TOKENS, token_ratio: float = TOKEN_RATIO):
        self.max_tokens, self.token_ratio, self.tokens = max_tokens, token_ratio, float(max_tokens)
        self._lock = threading.Lock()

    def failed(self) -> bool:
        """Records a retryable failure; True when a retry is allowed."""
        with self._lock:
            self.tokens = max(0.0, self.tokens - 1)
            return self.tokens > self.max_tokens / 2

    def succeeded(self) -> None:
        with self._lock:
            self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)


class GrpcClient(_BatchingClient):
    def __init__(self, target: str, model_name: str, *, timeout_s: float = 10.0, max_attempts: int = 4,
                 tls: bool = False, root_certificates: bytes | None = None, batch_size: int = 32,
                 max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES):
        self.target, self.model_name, self.timeout_s = target, model_name, timeout_s
        self.batch_size, self.max_image_bytes = batch_size, max_image_bytes
        self.max_request_bytes = MAX_GRPC_REQUEST_BYTES
        options = [("grpc.enable_retries", 1), ("grpc.service_config", _retry_service_config(max_attempts)),
                   ("grpc.max_send_message_length", 64 * 2**20), ("grpc.max_receive_message_length", 64 * 2**20),
                   # gRPC retries only a call it holds whole: 256 KiB by default, less than a batch of images.
                   ("grpc.per_rpc_retry_buffer_size", 64 * 2**20), ("grpc.retry_buffer_size", 256 * 2**20),
                   # Calls spread over every address the name resolves to (the cluster's headless Service).
                   ("grpc.lb_policy_name", "round_robin")]
        if tls:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _spec(self, version: int | None, signature_name: str | None = None) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name)
        if signature_name:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.CopyFrom(wrappers_pb2.Int64Value(value=version))
        return spec

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise ServingError(describe_rpc_error(err, self.target, self.timeout_s), err.code().name) from None

    def _predict_batch(self, batch: list[bytes], version: int | None) -> list[Prediction]:
        request = predict_pb2.PredictRequest(model_spec=self._spec(version, features.SERVING_SIGNATURE))
        request.inputs[features.SERVING_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string, shape=[len(batch)]))
        response = self._call(self._predict.Predict, request)
        return parse_outputs({k: tf.make_ndarray(v) for k, v in response.outputs.items()})

    def status(self, version: int | None = None) -> list[VersionStatus]:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._spec(version))
        response = self._call(self._models.GetModelStatus, request)
        return [VersionStatus(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                              s.status.error_message if s.status.error_code else "")
                for s in response.model_version_status]

    def metadata(self, version: int | None = None) -> dict:
        """{signature: {"inputs": {name: dtype}, "outputs": {name: dtype}}} of the served version."""
        md = get_model_metadata_pb2
        request = md.GetModelMetadataRequest(model_spec=self._spec(version), metadata_field=["signature_def"])
        response = self._call(self._predict.GetModelMetadata, request)
        sig_map = md.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return {name: {"inputs": {k: types_pb2.DataType.Name(v.dtype) for k, v in s.inputs.items()},
                       "outputs": {k: types_pb2.DataType.Name(v.dtype) for k, v in s.outputs.items()}}
                for name, s in sig_map.signature_def.items()}


def describe_rpc_error(err: grpc.RpcError, target: str, timeout_s: float) -> str:
    code = err.code()
    details = (err.details() or "").strip().splitlines()[0] if (err.details() or "").strip() else ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"model server unavailable at {target} (after retries): {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from {target} within {timeout_s:g} s"
    if code == grpc.StatusCode.NOT_FOUND:
        return f"model or version not found on {target}: {details}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return f"request rejected by {target}: {details}"
    return f"{code.name} from {target}: {details}"


def parse_outputs(outputs: dict) -> list[Prediction]:
    """Signature outputs (numpy arrays or nested lists) -> one Prediction per image."""
    missing = [k for k in ("probabilities", "class_name", "class_id") if k not in outputs]
    if missing:
        raise ServingError(f"the answer lacks the output(s) {', '.join(missing)}: is the model named "
                           "the bloodcell model, with its serving signature?")
    try:
        probabilities = np.asarray(outputs["probabilities"], dtype=np.float32)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(outputs["class_name"]).tolist()]
        ids = np.asarray(outputs["class_id"]).tolist()
        atypical = np.asarray(outputs.get("atypicality", np.zeros(len(ids))), dtype=np.float32).tolist()
        if probabilities.size == len(names) == 0:
            return []  # the caller counts the answers
        if (probabilities.ndim != 2 or probabilities.shape[1] == 0
                or not len(probabilities) == len(names) == len(ids) == len(atypical)):
            raise ValueError(f"probabilities of shape {probabilities.shape} for {len(names)} class names")
        return [Prediction(n, int(i), [float(p) for p in row], float(a))
                for n, i, row, a in zip(names, ids, probabilities, atypical)]
    except (TypeError, ValueError, OverflowError, UnicodeDecodeError) as err:
        raise ServingError(f"the model server answered outputs that are not the bloodcell model's "
                           f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def _innermost(err: BaseException) -> str:
    """The deepest cause's message (a name that does not resolve, a refused connection, a certificate
    not trusted), not the wrapper's class name."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__
    reason = getattr(err, "reason", None)  # urllib3's wrappers keep the cause as .reason
    while isinstance(reason, BaseException):
        err, reason = reason, getattr(reason, "reason", None)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# TF Serving's REST answers, in gRPC's terms (only the ones callers act on).
_GRPC_CODE_OF_HTTP = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


class RestClient(_BatchingClient):
    """TF Serving's REST API (port 8501): the same predictions over HTTP/JSON."""

    def __init__(self, base_url: str, model_name: str, *, timeout_s: float = 10.0, max_attempts: int = 4,
                 max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, batch_size: int = 32, ca_cert: str | None = None):
        """ca_cert: a PEM file of the CA that signed an https server's certificate (default: the system's)."""
        from serving import http_deadline

        self.base_url, self.model_name, self.timeout_s = base_url.rstrip("/"), model_name, timeout_s
        self.max_image_bytes, self.batch_size, self.max_attempts = max_image_bytes, batch_size, max_attempts
        self.max_request_bytes = MAX_REST_REQUEST_BYTES
        self._session = http_deadline.session()
        # Passed with each call: requests lets REQUESTS_CA_BUNDLE win over a session's own `verify`.
        self._verify = ca_cert or True
        self._throttle = RetryThrottle()

    def close(self) -> None:
        self._session.close()

    def _url(self, version: int | None) -> str:
        url = f"{self.base_url}/v1/models/{self.model_name}"
        return f"{url}/versions/{version}" if version is not None else url

    def _request(self, method: str, url: str, **kwargs):
        """One call: retried on 503 with backoff and throttling, all within timeout_s."""
        import requests
        import urllib3

        from serving import http_deadline

        deadline = time.monotonic() + self.timeout_s
        backoff = 0.2
        for attempt in range(1, self.max_attempts + 1):
            try:
                response, content = http_deadline.fetch(self._session, method, url, deadline,
                                                        verify=self._verify, **kwargs)
            except (requests.Timeout, TimeoutError, urllib3.exceptions.ReadTimeoutError):
                raise ServingError(f"no answer from {self.base_url} within {self.timeout_s:g} s") from None
            # The body is read from urllib3 itself (http_deadline): a connection lost mid-answer is its error.
            except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
                raise ServingError(f"model server unreachable at {self.base_url}: {_innermost(err)}") from None
            if response.status_code != 503:
                self._throttle.succeeded()
                break
            if attempt == self.max_attempts or not self._throttle.failed():
                break
            time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, 5.0)
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            message = str(message or content.decode("utf-8", "replace"))
            raise ServingError(f"HTTP {response.status_code} from {url}: {message.strip().splitlines()[0] if message.strip() else ''}",
                               _GRPC_CODE_OF_HTTP.get(response.status_code))
        if not isinstance(body, dict):
            raise ServingError(f"{url} answered HTTP 200 without a JSON object: is it TF Serving's REST port?")
        return body

    def _predict_batch(self, batch: list[bytes], version: int | None) -> list[Prediction]:
        body = {"signature_name": features.SERVING_SIGNATURE,
                "instances": [{"b64": base64.b64encode(b).decode()} for b in batch]}
        rows = self._request("POST", self._url(version) + ":predict", json=body).get("predictions")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ServingError(f"{self.base_url} answered without predictions by output name: is it TF Serving?")
        return parse_outputs({k: [row[k] for row in rows] for k in features.OUTPUTS if all(k in row for row in rows)})

    def status(self, version: int | None = None) -> list[VersionStatus]:
        body = self._request("GET", self._url(version))
        try:
            return [VersionStatus(int(s["version"]), s["state"],
                                  (s.get("status") or {}).get("error_message", "")
                                  if (s.get("status") or {}).get("error_code", "OK") != "OK" else "")
                    for s in body["model_version_status"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ServingError(f"{self.base_url} answered a status that is not TF Serving's") from None

    def metadata(self, version: int | None = None) -> dict:
        """As GrpcClient.metadata, from TF Serving's REST `/metadata`."""
        body = self._request("GET", self._url(version) + "/metadata")
        try:
            sig_map = body["metadata"]["signature_def"]["signature_def"]
            # Proto JSON leaves out a field at its default: DT_INVALID (as in __saved_model_init_op).
            return {name: {"inputs": {k: v.get("dtype", "DT_INVALID") for k, v in s.get("inputs", {}).items()},
                           "outputs": {k: v.get("dtype", "DT_INVALID") for k, v in s.get("outputs", {}).items()}}
                    for name, s in sig_map.items()}
        except (KeyError, TypeError, AttributeError):
            raise ServingError(f"{self.base_url} answered metadata that is not TF Serving's") from None
