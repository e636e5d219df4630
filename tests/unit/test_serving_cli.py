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
from serving import client as cli_client
from testkit.images import sample_jpegs
from testkit.tls import self_signed_pair

JPEG = str(sample_jpegs("TEST", "LYMPHOCYTE")[0])


@pytest.mark.parametrize("flag, value", [("--batch-size", "-1"), ("--batch-size", "0"), ("--batch-size", "x"),
                                         # Over the server's max_batch_size: every request refused, then halved.
                                         ("--batch-size", "33"),
                                         ("--timeout", "0"), ("--max-image-mb", "-2"),
                                         # No deadline at all, or one past what a timer can wait: a traceback
                                         # over REST, an instant "no answer within inf s" over gRPC.
                                         ("--timeout", "inf"), ("--timeout", "nan"), ("--timeout", "1e10"),
                                         ("--max-image-mb", "inf"), ("--max-image-mb", "1e308"),
                                         # A probability: NaN or under 0 never flags, 80 (a percent) flags all.
                                         ("--review-below", "nan"), ("--review-below", "-0.1"),
                                         ("--review-below", "80")])
@pytest.mark.parametrize("where", [["--server", "127.0.0.1:1"], ["--rest", "http://127.0.0.1:1"]])
def test_invalid_sizes_are_usage_errors(flag, value, where, capsys):
    try:
        code = cli.main(["predict", *where, flag, value, JPEG])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert flag in err.strip().splitlines()[-1] and "Traceback" not in err, err  # argparse's usage, its error


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


class SlowServer:
    """An HTTP(S) server answering TF Serving's status call, sending all after the first `fast` bytes of
    its answer one byte every `gap_s`."""

    BODY = b'{"model_version_status": [{"version": "7", "state": "AVAILABLE"}]}'

    def __init__(self, fast: str, gap_s: float = 0.5, tls: tuple[bytes, bytes] | None = None, close: bool = False):
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(self.BODY)).encode() + (b"\r\nConnection: close" if close else b"")
                + b"\r\nX-Padding: " + b"x" * 60 + b"\r\n\r\n")
        self.answer = head + self.BODY
        self.fast = {"body": len(head), "headers": len(b"HTTP/1.1 200 OK\r\n"), "all": len(self.answer)}[fast]
        self.gap_s, self.stop = gap_s, threading.Event()
        self.context = None
        if tls:
            import ssl
            import tempfile

            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.NamedTemporaryFile() as cert, tempfile.NamedTemporaryFile() as key:
                cert.write(tls[0]), key.write(tls[1]), cert.flush(), key.flush()
                self.context.load_cert_chain(cert.name, key.name)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.listener.close()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()[0]
            except OSError:
                continue
            try:
                conn.settimeout(5)
                if self.context:
                    conn = self.context.wrap_socket(conn, server_side=True)
                conn.recv(65536)
                conn.sendall(self.answer[:self.fast])
                for byte in self.answer[self.fast:]:
                    if self.stop.wait(self.gap_s):
                        break
                    conn.sendall(bytes([byte]))
            except OSError:
                pass
            finally:
                conn.close()


@pytest.mark.parametrize("trickled, way", [("body", "http"), ("headers", "http"), ("headers", "https"),
                                           ("body", "close"), ("headers", "proxy"), ("headers", "slow-connect")])
def test_rest_timeout_holds_against_an_answer_that_trickles_in(trickled, way, tmp_path, monkeypatch):
    """The remaining time was passed to requests as a socket timeout, which starts again with every
    byte: a server sending its answer a byte every half second held a 1 s call for 15 s (the body)
    or for as long as it kept sending (the headers). The same through a proxy, and with an answer
    that closes its connection (http.client then lets go of the socket), and after a connection that
    took longer than the deadline to make (a slow name lookup: the timer had found no socket to cut)."""
    cert, key = self_signed_pair()
    (tmp_path / "ca.pem").write_bytes(cert)
    with SlowServer(trickled, tls=(cert, key) if way == "https" else None, close=way == "close") as server:
        url = f"{'https' if way == 'https' else 'http'}://localhost:{server.port}"
        if way == "proxy":  # the slow server answers as the proxy for a model server out of reach
            monkeypatch.setenv("HTTP_PROXY", url)
            monkeypatch.delenv("http_proxy", raising=False)  # read before HTTP_PROXY
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            url = "http://model-server.invalid:8501"
        if way == "slow-connect":
            import urllib3.util.connection

            connect = urllib3.util.connection.create_connection

            def slow_connect(*args, **kwargs):
                time.sleep(1.1)
                return connect(*args, **kwargs)

            monkeypatch.setattr(urllib3.util.connection, "create_connection", slow_connect)
        client = RestClient(url, "bloodcell", timeout_s=1.0, ca_cert=str(tmp_path / "ca.pem"))
        for _ in range(3):  # a cut mid-header had once read as a short answer (HTTP 200, no body)
            started = time.monotonic()
            with pytest.raises(ServingError, match="no answer .* within 1 s"):
                client.status()
            assert time.monotonic() - started < (1.6 if way == "slow-connect" else 1.5)


def test_rest_over_https_with_a_ca_certificate(tmp_path):
    cert, key = self_signed_pair()
    (tmp_path / "ca.pem").write_bytes(cert)
    with SlowServer("all", tls=(cert, key)) as server:
        url = f"https://localhost:{server.port}"
        assert RestClient(url, "bloodcell", ca_cert=str(tmp_path / "ca.pem")).status() == [(7, "AVAILABLE", "")]
        with pytest.raises(ServingError, match="model server unreachable at .*certificate verify failed"):
            RestClient(url, "bloodcell").status()


def test_a_ca_certificate_holds_over_the_environments_bundle(tmp_path, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE win over a session's own CA: --ca-cert was ignored wherever a
    # proxy or a company's setup exports it.
    import certifi

    cert, key = self_signed_pair()
    (tmp_path / "ca.pem").write_bytes(cert)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with SlowServer("all", tls=(cert, key)) as server:
        with RestClient(f"https://localhost:{server.port}", "bloodcell", ca_cert=str(tmp_path / "ca.pem")) as client:
            assert client.status() == [(7, "AVAILABLE", "")]


def test_a_rest_answer_cut_short_is_one_serving_error():
    """The body is read from urllib3 directly: its own error for a connection lost mid-answer must
    become the client's one-line error, as requests' would."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        conn = listener.accept()[0]
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mod")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        client = RestClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "bloodcell", timeout_s=5.0)
        with pytest.raises(ServingError, match="model server unreachable at .*: "):
            client.status()
    finally:
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


@pytest.mark.parametrize("kib", [8, 300, 2048])
def test_a_large_request_is_retried_too(overloaded, kib):
    """gRPC retries only what it buffered, 256 KiB per call by default: a full batch of images or one
    microscope frame was sent once, whatever max_attempts said."""
    with GrpcClient(f"127.0.0.1:{overloaded.grpc_port}", "bloodcell", timeout_s=10, max_attempts=4) as client:
        with pytest.raises(ServingError, match="unavailable"):
            client.predict([b"\xff" * (kib * 1024)])
    assert overloaded.prediction.calls == 4


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
    # Outputs of the right names holding the wrong things had ended the CLI in a traceback.
    (b'{"predictions": [{"probabilities": [0.5, 0.5, 0, 0], "class_name": "EOSINOPHIL", "class_id": null}]}',
     "application/json", "answered outputs that are not the bloodcell model's"),
    (b'{"predictions": [{"probabilities": [0.5, "x", 0, 0], "class_name": "EOSINOPHIL", "class_id": 0}]}',
     "application/json", "answered outputs that are not the bloodcell model's"),
    (b'{"predictions": [{"probabilities": 0.5, "class_name": "EOSINOPHIL", "class_id": 0}]}',
     "application/json", "answered outputs that are not the bloodcell model's"),
    (b'{"predictions": [{"probabilities": [], "class_name": "EOSINOPHIL", "class_id": 0}]}',
     "application/json", "answered outputs that are not the bloodcell model's"),
    (b'{"predictions": [{"probabilities": [1, 0, 0, 0], "class_name": "EOSINOPHIL", "class_id": 1e999}]}',
     "application/json", "answered outputs that are not the bloodcell model's"),
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


class _Refusing(_BatchingClient):
    """A server that refuses the images named in `bad` (as their bytes) and, once, an innocent image
    batched server-side with another caller's bad one; `signatures`: what its metadata says."""
    max_image_bytes, batch_size, max_request_bytes, model_name = 2**20, 32, 2**30, "bloodcell"

    def __init__(self, bad=(), merged_once=(), signatures=None, interrupt_at=None):
        self.bad, self.merged_once, self.signatures, self.interrupt_at = set(bad), set(merged_once), signatures, interrupt_at
        self.sent = []

    def _predict_batch(self, batch, version):
        self.sent.append(list(batch))
        if self.interrupt_at is not None and len(self.sent) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.signatures is not None or any(b in self.bad for b in batch):
            raise ServingError("request rejected by x:1: Invalid argument: could not decode", "INVALID_ARGUMENT")
        if len(batch) == 1 and batch[0] in self.merged_once:
            self.merged_once.discard(batch[0])
            raise ServingError("request rejected by x:1: Invalid argument: could not decode", "INVALID_ARGUMENT")
        return [Prediction("LYMPHOCYTE", 1, [0.05, 0.9, 0.03, 0.02], 0.3) for _ in batch]

    def metadata(self, version=None):
        return self.signatures or {"serving_default": {"inputs": {"images": "DT_STRING"}, "outputs": {}}}


def test_an_image_refused_with_another_callers_bad_image_is_tried_alone_before_it_is_blamed():
    """TF Serving's batching merges concurrent requests and fails the whole merged batch for one bad
    image: a good image of ours had been reported as refused."""
    client = _Refusing(bad={b"bad"}, merged_once={b"good"})
    results = client.predict_each([b"good", b"bad"], names=["good.jpeg", "bad.jpeg"])
    assert isinstance(results[0], Prediction)
    assert isinstance(results[1], ServingError) and str(results[1]).startswith("image bad.jpeg: ")
    assert client.sent.count([b"bad"]) == 2


def test_a_model_without_the_image_signature_is_one_error_not_one_per_image(tmp_path, capsys):
    """10 images had given 10 `error:` lines and about 20 requests, each blaming an image."""
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{i}.jpeg")
        paths[-1].write_bytes(b"x%d" % i)
    client = _Refusing(signatures={"serving_default": {"inputs": {"x": "DT_FLOAT"}, "outputs": {}}})
    args = cli.parse_args(["predict", "--server", "x:1", *map(str, paths)])
    assert cli.predict_lines(client, args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes x DT_FLOAT, not 'images' DT_STRING" in err[0] and "(10 of 10 images" in err[0], err
    assert len(client.sent) == 1


def test_a_metadata_request_that_failed_is_asked_again_at_the_next_refusal():
    client = _Refusing(signatures={"serving_default": {"inputs": {"x": "DT_FLOAT"}, "outputs": {}}})
    answers = iter([ServingError("model server unavailable", "UNAVAILABLE")])

    def metadata(version=None):
        for failure in answers:
            raise failure
        return client.signatures

    client.metadata = metadata
    assert client._signature_problem(None) is None
    assert "is it the bloodcell model?" in client._signature_problem(None)


def test_json_has_null_where_the_answer_is_not_a_number(tmp_path, capsys, monkeypatch):
    """--json had written NaN (not JSON: a consumer's parser fails) and the class as if answered."""
    import json

    image = tmp_path / "a.jpeg"
    image.write_bytes(b"x")
    client = _Refusing()
    monkeypatch.setattr(client, "_predict_batch",
                        lambda batch, version: [Prediction("EOSINOPHIL", 0, [math.nan] * 4, math.nan)])
    assert cli.predict_lines(client, cli.parse_args(["predict", "--server", "x:1", "--json", str(image)])) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {"image": str(image), "class_name": None, "class_id": None, "probabilities": [None] * 4,
                   "atypicality": None, "review": ["NO VALID ANSWER"]}
    # In text, no class either; an atypicality that is not a number flags the answer but keeps its class.
    assert cli.predict_lines(client, cli.parse_args(["predict", "--server", "x:1", str(image)])) == 0
    assert capsys.readouterr().out.split("\t")[1] == "-"
    monkeypatch.setattr(client, "_predict_batch",
                        lambda batch, version: [Prediction("EOSINOPHIL", 0, [0.9, 0.1, 0, 0], math.nan)])
    assert cli.predict_lines(client, cli.parse_args(["predict", "--server", "x:1", "--json", str(image)])) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["class_name"] == "EOSINOPHIL" and row["atypicality"] is None and row["review"] == ["NO VALID ANSWER"]


def test_ctrl_c_keeps_the_answers_printed_so_far_and_is_one_line(tmp_path, capsys, monkeypatch):
    """Every file was read and every batch sent before the first line: Ctrl-C lost all the answers,
    with a traceback."""
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpeg")
        paths[-1].write_bytes(b"x%d" % i)
    client = _Refusing(interrupt_at=2)
    client.batch_size = 2
    monkeypatch.setattr(cli, "GrpcClient", lambda *a, **k: client)
    assert cli.main(["predict", "--server", "x:1", *map(str, paths)]) == 130
    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(paths[0]), str(paths[1])]
    assert err.strip() == "error: interrupted: the answers above are the ones received"
    # --json: the array of the answers received.
    import json

    client.sent, client.interrupt_at = [], 2
    assert cli.main(["predict", "--server", "x:1", "--json", *map(str, paths)]) == 130
    assert [row["image"] for row in json.loads(capsys.readouterr().out)] == [str(paths[0]), str(paths[1])]


def test_images_are_read_and_answered_a_request_at_a_time(tmp_path, capsys, monkeypatch):
    """Files had been read --batch-size at a time, whatever their size: 32 large images made three
    requests whose answers were printed only after the third (Ctrl-C meanwhile lost the first two's),
    and all 32 were held in memory."""
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpeg")
        paths[-1].write_bytes(b"x%d" % i)
    client = _Refusing(interrupt_at=2)
    client.batch_size, client.max_request_bytes = 4, 3  # one 2-byte image a request
    monkeypatch.setattr(cli, "GrpcClient", lambda *a, **k: client)
    assert cli.main(["predict", "--server", "x:1", *map(str, paths)]) == 130
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [str(paths[0])]


class _Status:
    def __init__(self, statuses):
        self.statuses = statuses

    def __call__(self, *args, **kwargs):
        return self

    def status(self, version=None):
        return self.statuses


def test_status_says_why_a_version_failed_to_load_and_exits_1_when_none_is_available(capsys, monkeypatch):
    from serving.client import VersionStatus

    monkeypatch.setattr(cli, "GrpcClient", _Status([VersionStatus(7, "END", "Failed to load: warm-up failed")]))
    assert cli.main(["status", "--server", "x:1"]) == 1
    out, err = capsys.readouterr()
    assert out == "bloodcell\tversion 7\tEND\tFailed to load: warm-up failed\n"
    assert err == "error: no version of bloodcell is available\n"
    monkeypatch.setattr(cli, "GrpcClient", _Status([VersionStatus(7, "END", "x"), VersionStatus(8, "AVAILABLE")]))
    assert cli.main(["status", "--server", "x:1"]) == 0


@pytest.mark.parametrize("args, problem", [
    (["--rest", "127.0.0.1:8501"], "--rest needs a URL starting http:// or https://"),
    (["--rest", "http://127.0.0.1:8501", "--tls"], "need an https:// URL"),
])
def test_a_rest_address_that_would_fail_or_go_in_plain_text_is_a_usage_error(args, problem, capsys):
    assert cli.main(["status", *args]) == 2
    assert problem in capsys.readouterr().err


def _serve_json(routes: dict):
    import http.server
    import json

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(routes.get(self.path, {"error": "Malformed request"})).encode()
            self.send_response(200 if self.path in routes else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_metadata_and_a_failed_load_over_rest(capsys):
    """REST's metadata had been refused ('available over gRPC'); TF Serving serves it at /metadata."""
    server = _serve_json({
        "/v1/models/bloodcell/metadata": {"model_spec": {"name": "bloodcell", "version": "3"}, "metadata": {
            "signature_def": {"signature_def": {"serving_default": {
                "inputs": {"images": {"dtype": "DT_STRING", "name": "serving_default_images:0"}},
                "outputs": {"probabilities": {"dtype": "DT_FLOAT", "name": "x:0"}}}}}}},
        "/v1/models/bloodcell": {"model_version_status": [
            {"version": "3", "state": "END", "status": {"error_code": "UNKNOWN", "error_message": "Failed to load"}}]},
    })
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert cli.main(["metadata", "--rest", url]) == 0
        assert '"images": "DT_STRING"' in capsys.readouterr().out
        assert cli.main(["status", "--rest", url]) == 1
        assert capsys.readouterr().out == "bloodcell\tversion 3\tEND\tFailed to load\n"
    finally:
        server.shutdown()


def test_the_grpc_client_balances_calls_over_every_address(monkeypatch):
    seen = {}
    real = cli_client.grpc.insecure_channel
    monkeypatch.setattr(cli_client.grpc, "insecure_channel",
                        lambda target, options=None: seen.update(options or []) or real(target, options=options))
    GrpcClient("dns:///bloodcell-serving-grpc:8500", "bloodcell").close()
    assert seen["grpc.lb_policy_name"] == "round_robin"
