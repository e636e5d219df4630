"""The serving client and CLI where no model is needed: arguments, deadlines, batching by bytes,
retry throttling against an overloaded server, and answers that are not numbers."""
from __future__ import annotations

import math
import socket
import threading
import time

import pytest

from serving import cli
from serving.client import GrpcClient, Prediction, RestClient, ServingError, _BatchingClient, batches
from testkit.fake_model_server import FakeModelServer
from testkit.images import sample_jpegs

JPEG = str(sample_jpegs("TEST", "LYMPHOCYTE")[0])


@pytest.mark.parametrize("flag, value", [("--batch-size", "-1"), ("--batch-size", "0"), ("--batch-size", "x"),
                                         ("--timeout", "0"), ("--max-image-mb", "-2")])
def test_invalid_sizes_are_usage_errors(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["predict", "--server", "127.0.0.1:1", flag, value, JPEG])
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err


def test_a_missing_ca_certificate_is_one_line(tmp_path, capsys):
    code = cli.main(["predict", "--server", "127.0.0.1:1", "--ca-cert", str(tmp_path / "ca.pem"), JPEG])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"error: cannot read --ca-cert {tmp_path / 'ca.pem'}: No such file or directory"


def test_batches_keep_under_the_channel_limit():
    """32 images of 9 MiB would be a 288 MiB request on a 64 MiB channel."""
    mib = 2**20
    parts = batches([9 * mib] * 32, max_count=32, max_bytes=60 * mib)
    assert [len(p) for p in parts] == [6, 6, 6, 6, 6, 2]
    assert all(sum(9 * mib for _ in p) <= 60 * mib for p in parts)
    assert [len(p) for p in batches([1] * 70, 32, 60 * mib)] == [32, 32, 6]
    assert [list(p) for p in batches([70 * mib, 1], 32, 60 * mib)] == [[0], [1]]


def test_rest_timeout_is_one_deadline_for_the_whole_call():
    """A server that accepts and never answers: the call fails within --timeout, retries included."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        client = RestClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "bloodcell", timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(ServingError, match="no answer .* within 1 s"):
            client.predict([open(JPEG, "rb").read()])
        assert time.monotonic() - started < 1.6
    finally:
        stop.set()
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def overloaded(tmp_path):
    """A model server that answers every Predict with UNAVAILABLE (gRPC) or 503 (REST)."""
    with FakeModelServer(str(tmp_path), "bloodcell", unavailable_first=10**9) as server:
        yield server


def test_retries_are_throttled_against_an_overloaded_server(overloaded):
    image = open(JPEG, "rb").read()
    requests = 60
    with GrpcClient(f"127.0.0.1:{overloaded.grpc_port}", "bloodcell", timeout_s=5, max_attempts=4) as client:
        for _ in range(requests):
            with pytest.raises(ServingError, match="unavailable"):
                client.predict([image])
    assert overloaded.prediction.calls <= 1.1 * requests
    rest = RestClient(f"http://127.0.0.1:{overloaded.rest_port}", "bloodcell", timeout_s=5, max_attempts=4)
    for _ in range(requests):
        with pytest.raises(ServingError, match="HTTP 503"):
            rest.predict([image])
    assert overloaded.rest.calls <= 1.1 * requests


def test_an_answer_that_is_not_a_number_is_flagged_for_review():
    nan = math.nan
    assert cli.review_reasons(nan, 0.2, 0.8, [nan] * 4) == ["NO VALID ANSWER"]
    assert cli.review_reasons(0.9, nan, 0.8, [0.9, 0.1, 0, 0]) == ["NO VALID ANSWER"]
    assert cli.review_reasons(0.9, 0.2, 0.8, [0.9, 0.1, 0, 0]) == []


class _FailingSecondBatch(_BatchingClient):
    """A server that answers the first batch, then goes away."""
    max_image_bytes, batch_size, max_request_bytes = 2**20, 2, 2**30

    def __init__(self):
        self.batches = 0

    def _predict_batch(self, batch, version):
        self.batches += 1
        if self.batches == 2:
            raise ServingError("model server unavailable at 10.0.0.9:8500 (after retries): connection refused",
                               "UNAVAILABLE")
        return [Prediction("LYMPHOCYTE", 1, [0.05, 0.9, 0.03, 0.02], 0.3) for _ in batch]


def test_answers_received_before_the_server_went_away_are_printed(tmp_path, capsys):
    images = []
    for i in range(5):
        images.append(tmp_path / f"{i}.jpeg")
        images[-1].write_bytes(open(JPEG, "rb").read())
    client = _FailingSecondBatch()
    args = cli.parse_args(["predict", "--server", "x:1", *map(str, images)])
    assert cli.predict_lines(client, args) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(images[0]), str(images[1])]
    assert err.strip() == ("error: model server unavailable at 10.0.0.9:8500 (after retries): connection refused "
                           "(3 of 5 images not answered)")
    assert client.batches == 2  # nothing more sent once the server failed


def test_an_image_over_the_limit_is_refused_before_it_is_read(tmp_path, capsys):
    import tracemalloc

    huge = tmp_path / "huge.jpeg"
    try:
        with open(huge, "wb") as f:
            f.truncate(2**30)  # 1 GiB, sparse: read whole, it would take that much memory
    except OSError:
        pytest.skip("this filesystem makes no sparse files")
    tracemalloc.start()
    try:
        assert cli.main(["predict", "--server", "127.0.0.1:1", str(huge)]) == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak
    assert capsys.readouterr().err.strip() == f"error: image {huge} is 1024.0 MiB, over the 10.0 MiB limit"
    assert cli.main(["predict", "--server", "127.0.0.1:1", "--max-image-mb", "100", JPEG]) == 2
    assert "over what one request carries (60 MiB over gRPC)" in capsys.readouterr().err


@pytest.mark.parametrize("body, content_type, problem", [
    (b"<html>vite</html>", "text/html", "without a JSON object: is it TF Serving's REST port?"),
    (b"[1, 2]", "application/json", "without a JSON object: is it TF Serving's REST port?"),
    (b'{"predictions": [{"x": 1}]}', "application/json", "the answer lacks the output(s)"),
    (b'{"predictions": []}', "application/json", "answered 0 predictions for 1 images"),
])
def test_a_rest_endpoint_that_is_not_tf_serving_is_one_line(body, content_type, problem, capsys):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the request, all of it
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert cli.main(["status", "--rest", url]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert cli.main(["predict", "--rest", url, JPEG]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and problem in err, err
    finally:
        server.shutdown()
