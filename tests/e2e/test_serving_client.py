"""The gRPC and REST clients against a PredictionService/ModelService stand-in over the pushed model,
and against a real tensorflow_model_server when one is installed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from models import features
from serving import cli
from serving.client import GrpcClient, RestClient, ServingError
from testkit.images import sample_jpegs
from testkit.fake_model_server import FakeModelServer
from testkit.tls import self_signed_pair


# The thread and batching settings of infra/k8s/serving.yaml, for a server started on this machine.
LOCAL_SERVER_FLAGS = ["--tensorflow_intra_op_parallelism=2", "--tensorflow_inter_op_parallelism=2",
                      "--enable_batching=true", "--batching_parameters_file=serving/config/batching.config"]


@pytest.fixture(scope="module")
def server(pipeline_run):
    assert pipeline_run.code == 0, pipeline_run.output
    with FakeModelServer(pipeline_run.serving_base, "bloodcell") as srv:
        yield srv


@pytest.fixture(scope="module")
def jpegs():
    return [p.read_bytes() for cls in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE") for p in sample_jpegs("TEST", cls)[:2]]


def grpc_client(server, **kwargs) -> GrpcClient:
    return GrpcClient(f"127.0.0.1:{server.grpc_port}", "bloodcell", **kwargs)


def test_grpc_predict_matches_the_saved_model_in_batches(server, jpegs, pipeline_run):
    latest = max(server.servables.versions)
    calls = server.prediction.calls
    with grpc_client(server, batch_size=4) as client:
        predictions = client.predict(jpegs)
    assert server.prediction.calls - calls == 2  # 6 images in batches of 4
    direct = tf.saved_model.load(os.path.join(pipeline_run.serving_base, str(latest)))
    expected = direct.signatures["serving_default"](images=tf.constant(jpegs))
    np.testing.assert_allclose([p.probabilities for p in predictions], expected["probabilities"].numpy(), atol=1e-6)
    assert [p.class_name for p in predictions] == [n.decode() for n in expected["class_name"].numpy()]


def test_status_and_metadata(server):
    with grpc_client(server) as client:
        assert client.status() == [(v, "AVAILABLE", "") for v in sorted(server.servables.versions)]
        meta = client.metadata()
    assert meta[features.SERVING_SIGNATURE]["inputs"] == {features.SERVING_INPUT: features.SERVING_INPUT_DTYPE}
    assert meta[features.SERVING_SIGNATURE]["outputs"] == features.OUTPUTS


@pytest.mark.parametrize("model, version, message", [
    ("nosuchmodel", None, "model or version not found on 127.0.0.1:"),
    ("bloodcell", 7, "Servable not found for request: Specific(bloodcell, 7)"),
])
def test_missing_model_or_version(server, jpegs, model, version, message):
    with GrpcClient(f"127.0.0.1:{server.grpc_port}", model) as client:
        with pytest.raises(ServingError, match=message.replace("(", r"\(").replace(")", r"\)")):
            client.predict(jpegs[:1], version=version)
        with pytest.raises(ServingError, match="not found"):
            client.status(version=version)


def test_wrong_input_is_rejected_in_one_line(server):
    with grpc_client(server) as client:
        with pytest.raises(ServingError) as err:
            client.predict([b"this is not an image"])
    assert str(err.value).startswith("image #0: request rejected by 127.0.0.1:") and "\n" not in str(err.value)


@pytest.mark.parametrize("alias, message", [
    ("pixels", "input tensor alias not found in signature: pixels"),
    ("images", "Expects arg[0] to be DT_STRING but DT_FLOAT is provided"),
])
def test_wrong_input_name_and_dtype_follow_tf_serving(server, alias, message):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="bloodcell"))
    request.inputs[alias].CopyFrom(tf.make_tensor_proto([1.0]))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


def test_image_over_the_size_limit_is_refused_before_sending(server, jpegs):
    calls = server.prediction.calls
    with grpc_client(server, max_image_bytes=1000) as client:
        with pytest.raises(ServingError, match=r"^image cell\.jpeg is \d+\.\d KiB, over the 1000 bytes limit$"):
            client.predict(jpegs[:1], names=["cell.jpeg"])
    assert server.prediction.calls == calls


def test_unavailable_is_retried_with_backoff(pipeline_run, jpegs):
    with FakeModelServer(pipeline_run.serving_base, "bloodcell", unavailable_first=2) as flaky:
        with grpc_client(flaky, max_attempts=4) as client:
            assert len(client.predict(jpegs[:1])) == 1
        assert flaky.prediction.calls == 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_in_one_line():
    with GrpcClient(f"127.0.0.1:{free_port()}", "bloodcell", timeout_s=3, max_attempts=2) as client:
        with pytest.raises(ServingError) as err:
            client.status()
    message = str(err.value)
    assert message.startswith(("model server unavailable at 127.0.0.1:", "no answer from 127.0.0.1:"))


def test_rest_predict_and_status(server, jpegs):
    rest = RestClient(f"http://127.0.0.1:{server.rest_port}", "bloodcell")
    with grpc_client(server) as client:
        expected = client.predict(jpegs)
    got = rest.predict(jpegs)
    assert [p.class_name for p in got] == [p.class_name for p in expected]
    np.testing.assert_allclose([p.probabilities for p in got], [p.probabilities for p in expected], atol=1e-6)
    assert rest.status() == [(v, "AVAILABLE", "") for v in sorted(server.servables.versions)]
    with grpc_client(server) as client:
        assert rest.metadata() == client.metadata()
    with pytest.raises(ServingError, match="HTTP 404 .*Servable not found for request: Latest\\(other\\)"):
        RestClient(f"http://127.0.0.1:{server.rest_port}", "other").predict(jpegs[:1])
    with pytest.raises(ServingError, match="HTTP 400"):
        rest.predict([b"not an image"])


def test_cli_predict_and_errors(server, capsys):
    image = str(sample_jpegs("TEST", "LYMPHOCYTE")[0])
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", image]) == 0
    line = capsys.readouterr().out.strip()
    path, name, confidence, probs, atypicality = line.split("\t")[:5]
    assert path == image and name in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
    assert atypicality.startswith("atypicality ") and float(atypicality.split()[1]) >= 0
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", "/nonexistent.jpeg"]) == 1
    assert capsys.readouterr().err.strip() == "error: cannot read /nonexistent.jpeg: No such file or directory"
    assert cli.main(["status", "--rest", f"http://127.0.0.1:{server.rest_port}"]) == 0
    assert "AVAILABLE" in capsys.readouterr().out


def test_cli_flags_low_confidence_for_review_as_the_web_client_does(server, capsys):
    image = str(sample_jpegs("TEST", "LYMPHOCYTE")[0])
    target = ["--server", f"127.0.0.1:{server.grpc_port}", image]
    assert cli.main(["predict", "--review-below", "1", *target]) == 0   # the sample's model is never that sure
    assert capsys.readouterr().out.rstrip("\n").endswith("LOW CONFIDENCE: review")
    assert cli.main(["predict", "--review-below", "0", *target]) == 0
    assert "LOW CONFIDENCE" not in capsys.readouterr().out
    assert cli.main(["predict", "--json", "--review-below", "1", *target]) == 0
    assert "LOW CONFIDENCE" in json.loads(capsys.readouterr().out)[0]["review"]


def test_review_reasons():
    assert cli.review_reasons(0.95, 0.5, 0.8) == []
    assert cli.review_reasons(0.5, 0.5, 0.8) == ["LOW CONFIDENCE"]
    assert cli.review_reasons(0.95, 1.5, 0.8) == ["UNLIKE THE TRAINING IMAGES"]
    assert cli.review_reasons(0.5, 1.5, 0.8) == ["UNLIKE THE TRAINING IMAGES", "LOW CONFIDENCE"]


def test_cli_without_review_threshold_flags_as_the_shipped_configuration(server, capsys, monkeypatch):
    from pipeline.config import load_config

    threshold = load_config().browser.review_threshold
    assert threshold == features.DEFAULT_REVIEW_THRESHOLD
    seen = []
    monkeypatch.setattr(cli, "review_reasons", lambda c, a, below, probabilities: seen.append(below) or [])
    image = str(sample_jpegs("TEST", "LYMPHOCYTE")[0])
    assert cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", image]) == 0
    assert seen == [threshold]


@pytest.mark.skipif(not shutil.which("tensorflow_model_server"), reason="tensorflow_model_server is not installed")
def test_real_tensorflow_model_server(pipeline_run, jpegs):
    grpc_port, rest_port = free_port(), free_port()
    proc = subprocess.Popen(["tensorflow_model_server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                             "--model_name=bloodcell", f"--model_base_path={pipeline_run.serving_base}",
                             "--enable_model_warmup=true", *LOCAL_SERVER_FLAGS])
    try:
        with GrpcClient(f"127.0.0.1:{grpc_port}", "bloodcell", timeout_s=5, max_attempts=5) as client:
            deadline = time.time() + 60
            while True:
                try:
                    if any(s.state == "AVAILABLE" for s in client.status()):
                        break
                except ServingError:
                    if time.time() > deadline:
                        raise
                time.sleep(1)
            assert len(client.predict(jpegs)) == len(jpegs)
            assert client.metadata()[features.SERVING_SIGNATURE]["inputs"] == {features.SERVING_INPUT: features.SERVING_INPUT_DTYPE}
        assert len(RestClient(f"http://127.0.0.1:{rest_port}", "bloodcell").predict(jpegs[:2])) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tls(pipeline_run, jpegs):
    cert, key = self_signed_pair()
    with FakeModelServer(pipeline_run.serving_base, "bloodcell", tls=(cert, key)) as secure:
        with GrpcClient(f"localhost:{secure.grpc_port}", "bloodcell", tls=True, root_certificates=cert) as client:
            assert len(client.predict(jpegs[:2])) == 2
        with GrpcClient(f"localhost:{secure.grpc_port}", "bloodcell", timeout_s=3, max_attempts=2) as plain:
            with pytest.raises(ServingError):
                plain.status()


def test_one_corrupt_image_among_40_loses_only_itself(server, tmp_path, capsys):
    files = []
    for i, src in enumerate(p for cls in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
                            for p in sample_jpegs("TRAIN", cls)[:10]):
        dest = tmp_path / f"{i:02d}.jpeg"
        dest.write_bytes(src.read_bytes()[:300] if i == 17 else src.read_bytes())  # 17: cut short
        files.append(str(dest))
    code = cli.main(["predict", "--server", f"127.0.0.1:{server.grpc_port}", *files])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.strip().splitlines()) == 39 and files[17] not in out
    errors = err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: image {files[17]}: request rejected")
