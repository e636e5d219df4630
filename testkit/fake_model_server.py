"""A stand-in for tensorflow_model_server, for tests: the gRPC PredictionService (Predict,
GetModelMetadata) and ModelService (GetModelStatus) methods the client uses, plus the REST predict,
status and metadata routes, over the pushed SavedModel versions in a model base path. Requests, responses and
status codes follow TF Serving's protos and error conventions."""
from __future__ import annotations

import base64
import json
import os
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)


class ServableError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Servables:
    """Every numeric version under the base path, loaded as TF Serving would (all versions here)."""

    def __init__(self, base_path: str, model_name: str):
        self.model_name = model_name
        self.versions = {}
        for entry in os.listdir(base_path):
            if entry.isdigit():
                path = os.path.join(base_path, entry)
                proto = saved_model_pb2.SavedModel()
                with open(os.path.join(path, "saved_model.pb"), "rb") as f:
                    proto.ParseFromString(f.read())
                self.versions[int(entry)] = (tf.saved_model.load(path), proto.meta_graphs[0].signature_def)

    def get(self, name: str, version: int | None):
        if name != self.model_name or not self.versions:
            what = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServableError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
        if version is None:
            version = max(self.versions)
        if version not in self.versions:
            raise ServableError(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: Specific({name}, {version})")
        return version, *self.versions[version]

    def predict(self, name: str, version: int | None, signature_name: str, inputs: dict):
        """inputs: {alias: numpy array}; returns (version, {output: numpy array})."""
        version, model, sig_defs = self.get(name, version)
        signature_name = signature_name or "serving_default"
        if signature_name not in sig_defs:
            raise ServableError(grpc.StatusCode.FAILED_PRECONDITION,
                                f'Serving signature key "{signature_name}" not found.')
        expected = sig_defs[signature_name].inputs
        for alias in inputs:
            if alias not in expected:
                raise ServableError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input tensor alias not found in signature: {alias}. Inputs expected "
                                    f"to be in the set {{{','.join(sorted(expected))}}}.")
        for alias in expected:
            if alias not in inputs:
                raise ServableError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Missing input tensor alias: {alias}")
        fn = model.signatures[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as err:
            raise ServableError(grpc.StatusCode.INVALID_ARGUMENT, str(err).strip().splitlines()[0]) from None
        return version, {k: v.numpy() for k, v in outputs.items()}


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, servables: Servables, unavailable_first: int):
        self.servables = servables
        self.unavailable_left = unavailable_first
        self.calls = 0

    def Predict(self, request, context):
        self.calls += 1
        if self.unavailable_left > 0:
            self.unavailable_left -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is starting")
        version = request.model_spec.version.value if request.model_spec.HasField("version") else None
        try:
            sig_defs = self.servables.get(request.model_spec.name, version)[2]
            sig_name = request.model_spec.signature_name or "serving_default"
            expected = sig_defs[sig_name].inputs if sig_name in sig_defs else {}
            for alias, tensor in request.inputs.items():
                if alias in expected and tensor.dtype != expected[alias].dtype:
                    raise ServableError(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"Expects arg[0] to be {types_pb2.DataType.Name(expected[alias].dtype)} "
                                        f"but {types_pb2.DataType.Name(tensor.dtype)} is provided")
            version, outputs = self.servables.predict(
                request.model_spec.name, version, sig_name,
                {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except ServableError as err:
            context.abort(err.code, err.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = sig_name
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        version = request.model_spec.version.value if request.model_spec.HasField("version") else None
        try:
            version, _, sig_defs = self.servables.get(request.model_spec.name, version)
        except ServableError as err:
            context.abort(err.code, err.message)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Metadata field {','.join(request.metadata_field)} is not supported")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in sig_defs.items():
            sig_map.signature_def[name].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(sig_map)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, servables: Servables):
        self.servables = servables

    def GetModelStatus(self, request, context):
        name = request.model_spec.name
        if name != self.servables.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        versions = sorted(self.servables.versions)
        if request.model_spec.HasField("version"):
            wanted = request.model_spec.version.value
            if wanted not in self.servables.versions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find version {wanted} of model {name}")
            versions = [wanted]
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            status = response.model_version_status.add(version=v)
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class FakeModelServer:
    """gRPC on 127.0.0.1:<grpc_port>, REST on 127.0.0.1:<rest_port>."""

    def __init__(self, base_path: str, model_name: str, unavailable_first: int = 0,
                 tls: tuple[bytes, bytes] | None = None):
        self.servables = Servables(base_path, model_name)
        self.prediction = _PredictionService(self.servables, unavailable_first)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.prediction, self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self.servables), self._grpc)
        if tls:  # (certificate chain PEM, private key PEM)
            creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.grpc_port = self._grpc.add_secure_port("127.0.0.1:0", creds)
        else:
            self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self.rest = _RestState(unavailable_first)
        self._rest = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self.servables, self.rest))
        self.rest_port = self._rest.server_address[1]

    def __enter__(self):
        self._grpc.start()
        threading.Thread(target=self._rest.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._grpc.stop(grace=None)
        self._rest.shutdown()
        self._rest.server_close()


_HTTP = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
         grpc.StatusCode.FAILED_PRECONDITION: 400}


class _RestState:
    """Predict calls seen over REST; the first `unavailable_left` get 503, as an overloaded server."""

    def __init__(self, unavailable_first: int):
        self.calls, self.unavailable_left = 0, unavailable_first
        self._lock = threading.Lock()

    def next_is_unavailable(self) -> bool:
        with self._lock:
            self.calls += 1
            if self.unavailable_left > 0:
                self.unavailable_left -= 1
                return True
            return False


def _rest_handler(servables: Servables, state: _RestState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _reply(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            path, _, verb = self.path.partition(":")
            parts = path.strip("/").split("/")  # v1 models NAME [versions N] [metadata]
            if parts[-1] == "metadata" and self.command == "GET":
                parts, verb = parts[:-1], "metadata"
            if parts[:2] != ["v1", "models"] or len(parts) not in (3, 5):
                return None
            version = int(parts[4]) if len(parts) == 5 and parts[3] == "versions" else None
            return parts[2], version, verb

        def do_GET(self):
            route = self._route()
            if not route:
                return self._reply(404, {"error": "Malformed request"})
            name, version, verb = route
            try:
                found, _, sig_defs = servables.get(name, version)
            except ServableError as err:
                return self._reply(404, {"error": err.message})
            if verb == "metadata":  # TF Serving's REST form: proto field names, dtypes by name
                sig_map = get_model_metadata_pb2.SignatureDefMap()
                for sig_name, sig in sig_defs.items():
                    sig_map.signature_def[sig_name].CopyFrom(sig)
                return self._reply(200, {"model_spec": {"name": name, "signature_name": "", "version": str(found)},
                                         "metadata": {"signature_def": json_format.MessageToDict(
                                             sig_map, preserving_proto_field_name=True)}})
            return self._reply(200, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in ([found] if version is not None else sorted(servables.versions))]})

        def do_POST(self):
            route = self._route()
            if not route or route[2] != "predict":
                return self._reply(404, {"error": "Malformed request"})
            name, version, _ = route
            if state.next_is_unavailable():
                return self._reply(503, {"error": "server is overloaded"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                instances = [base64.b64decode(i["b64"]) for i in body["instances"]]
            except (ValueError, KeyError, TypeError):
                return self._reply(400, {"error": "JSON Parse error: expected instances of {\"b64\": ...}"})
            try:
                _, outputs = servables.predict(name, version, body.get("signature_name", ""),
                                               {"images": tf.constant(instances).numpy()})
            except ServableError as err:
                return self._reply(_HTTP.get(err.code, 500), {"error": err.message})
            rows = [{k: (v[i].decode() if isinstance(v[i], bytes) else v[i].tolist()) for k, v in outputs.items()}
                    for i in range(len(instances))]
            return self._reply(200, {"predictions": rows})

    return Handler
