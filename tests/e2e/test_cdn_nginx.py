"""The CDN edge: nginx (infra/nginx) serving a published origin on loopback, with the caching, CORS
and compression headers an edge needs."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest
import requests

from components.tfjs_publisher import publish as pub

from testkit import browser as bh
from testkit.published import client_metadata

CLIENT = "http://localhost:5173"


@pytest.fixture
def cdn():
    root = tempfile.mkdtemp(prefix="bloodcell-cdn-", dir="/tmp")
    src = os.path.join(root, "src")
    os.makedirs(src)
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": f"layer{i}/kernel", "shape": [4], "dtype": "float32"} for i in range(20)]}]
    with open(os.path.join(src, "model.json"), "w") as f:
        json.dump({"format": "graph-model", "modelTopology": {}, "weightsManifest": manifest}, f)
    with open(os.path.join(src, "group1-shard1of1.bin"), "wb") as f:
        f.write(os.urandom(320))
    origin = os.path.join(root, "origin")
    pub.publish(src, origin, "bloodcell", "1", client_metadata())
    bh.world_readable(origin)
    try:
        with bh.nginx_cdn(origin, CLIENT) as (url, _):
            yield url, origin
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_pointer_is_short_lived_and_versions_are_immutable(cdn):
    url, origin = cdn
    headers = {"Origin": CLIENT, "Accept-Encoding": "gzip"}
    pointer = requests.get(f"{url}/bloodcell/latest.json", headers=headers, timeout=5)
    assert pointer.status_code == 200 and pointer.json()["version"] == "1"
    assert pointer.headers["Cache-Control"] == "public, max-age=60, must-revalidate"
    assert pointer.headers["Access-Control-Allow-Origin"] == CLIENT
    # The page on another origin reads the server's clock from the pointer (web/src/clock.js).
    assert pointer.headers["Access-Control-Expose-Headers"] == "Date, Age" and pointer.headers["Date"]

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


def test_a_moved_pointer_is_never_answered_not_modified(cdn):
    """nginx's validators are the file's time in whole seconds and its size: a pointer moved within the
    same second to a version of the same length (two quick rollbacks) had been answered 304, and a
    client kept the old version until the pointer next moved."""
    url, origin = cdn
    path = os.path.join(origin, "bloodcell", "latest.json")
    first = requests.get(f"{url}/bloodcell/latest.json", timeout=5)
    moved = open(path).read().replace('"1"', '"2"')
    assert len(moved) == len(first.text)
    stat = os.stat(path)
    with open(path, "w") as f:
        f.write(moved)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same second, as a quick second write gets
    again = requests.get(f"{url}/bloodcell/latest.json", timeout=5, headers={
        k: v for k, v in {"If-None-Match": first.headers.get("ETag"),
                          "If-Modified-Since": first.headers.get("Last-Modified")}.items() if v})
    assert again.status_code == 200 and again.json()["version"] == "2"


def test_missing_file_is_404_with_cors(cdn):
    url, _ = cdn
    missing = requests.get(f"{url}/bloodcell/9/model.json", headers={"Origin": CLIENT}, timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == CLIENT


def test_a_404_under_a_version_is_not_cached(cdn):
    """A file missing for a moment (a publish half-way) must not stay broken in caches for a year."""
    url, _ = cdn
    missing = requests.get(f"{url}/bloodcell/9/model.json", headers={"Origin": CLIENT}, timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Cache-Control"] == "no-store"
    found = requests.get(f"{url}/bloodcell/1/model.json", headers={"Origin": CLIENT}, timeout=5)
    assert found.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_temporary_and_hidden_files_are_not_served(cdn):
    url, origin = cdn
    for name in ("latest.json.tmp-4f2a", ".publish.lock"):
        with open(os.path.join(origin, "bloodcell", name), "w") as f:
            f.write('{"version": "2"}')
    bh.world_readable(origin)
    for name in ("latest.json.tmp-4f2a", ".publish.lock"):
        answer = requests.get(f"{url}/bloodcell/{name}", headers={"Origin": CLIENT}, timeout=5)
        assert answer.status_code == 404 and answer.headers["Cache-Control"] == "no-store"


def test_every_answer_forbids_content_sniffing(cdn):
    url, _ = cdn
    for path in ("bloodcell/latest.json", "bloodcell/1/model.json", "bloodcell/9/missing.bin", "nothing"):
        answer = requests.get(f"{url}/{path}", headers={"Origin": CLIENT}, timeout=5)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path


def test_a_missing_pointer_is_not_cached(cdn):
    # Before the first publish, or while the origin fails: a cached 404 would hide the model for a minute.
    url, _ = cdn
    missing = requests.get(f"{url}/othermodel/latest.json", headers={"Origin": CLIENT}, timeout=5)
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
    assert missing.headers["Access-Control-Allow-Origin"] == CLIENT


def test_a_bucket_origin_is_refused_in_one_line():
    # nginx serves a folder: `root gs://...` had become a folder under the working directory, all 404.
    from infra.nginx import render

    with pytest.raises(ValueError, match=r"^--origin-root must be a local folder \(nginx serves files\); "
                                         r"got gs://b/cdn: "):
        render.render("gs://b/cdn", "127.0.0.1:8080", CLIENT, tempfile.mkdtemp(dir="/tmp"))
