"""The serving client and CLI where no model is needed: arguments, deadlines, batching by bytes,
retry throttling against an overloaded server, and answers that are not numbers."""
from __future__ import annotations

import math
import socket
import threading
import time

import pytest

from serving import cli
from serving.client import GrpcClient, RestClient, ServingError, batches
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
