"""The CDN edge: nginx (infra/nginx) serving a published origin on loopback, with the caching, CORS
and compression headers an edge needs."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from components.tfjs import publish as pub

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "infra", "nginx"))
import render  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
CLIENT = "http://localhost:5173"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cdn():
    # nginx's workers run as an unprivileged user: the origin must be world-readable, unlike tmp_path.
    root = tempfile.mkdtemp(prefix="bloodcell-cdn-", dir="/tmp")
    os.chmod(root, 0o755)
    src = os.path.join(root, "src")
    os.makedirs(src)
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": f"layer{i}/kernel", "shape": [4], "dtype": "float32"} for i in range(20)]}]
    with open(os.path.join(src, "model.json"), "w") as f:
        json.dump({"format": "graph-model", "modelTopology": {}, "weightsManifest": manifest}, f)
    with open(os.path.join(src, "group1-shard1of1.bin"), "wb") as f:
        f.write(os.urandom(320))
    origin = os.path.join(root, "origin")
    pub.publish(src, origin, "bloodcell", "1", {"classes": ["A"]})
    for dirpath, dirs, _ in os.walk(origin):
        os.chmod(dirpath, 0o755)
    port = free_port()
    runtime = os.path.join(root, "run")
    conf = os.path.join(root, "cdn.conf")
    with open(conf, "w") as f:
        f.write(render.render(origin, f"127.0.0.1:{port}", CLIENT, runtime))
    proc = subprocess.Popen(["nginx", "-e", os.path.join(runtime, "error.log"), "-c", conf, "-g", "daemon off;"])
    try:
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(open(os.path.join(runtime, "error.log")).read())
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", origin
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def test_pointer_is_short_lived_and_versions_are_immutable(cdn):
    url, origin = cdn
    headers = {"Origin": CLIENT, "Accept-Encoding": "gzip"}
    pointer = requests.get(f"{url}/bloodcell/latest.json", headers=headers, timeout=5)
    assert pointer.status_code == 200 and pointer.json()["version"] == "1"
    assert pointer.headers["Cache-Control"] == "public, max-age=60, must-revalidate"
    assert pointer.headers["Access-Control-Allow-Origin"] == CLIENT

    model = requests.get(f"{url}/bloodcell/1/model.json", headers=headers, timeout=5)
    assert model.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert model.headers["Content-Encoding"] == "gzip"  # requests has already inflated .json()
    shard_name = model.json()["weightsManifest"][0]["paths"][0]
    shard = requests.get(f"{url}/bloodcell/1/{shard_name}", headers=headers, timeout=5)
    assert shard.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Encoding" not in shard.headers
    with open(os.path.join(origin, "bloodcell", "1", shard_name), "rb") as f:
        assert shard.content == f.read()
    assert shard.headers["Access-Control-Allow-Origin"] == CLIENT


def test_missing_file_is_404_with_cors(cdn):
    url, _ = cdn
    missing = requests.get(f"{url}/bloodcell/9/model.json", headers={"Origin": CLIENT}, timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == CLIENT
