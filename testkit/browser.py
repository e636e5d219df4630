"""Helpers for the browser-side tests: pixels for Node, SavedModel references, nginx and a static server."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from infra.nginx import render

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "web"


def node_json(script: str, timeout: float = 120):
    """An ES module `script` run by Node in web/ (so its imports are the page's); the JSON it printed."""
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=WEB,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 15, log: str = "") -> None:
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"nothing listens on port {port}: {log and open(log).read()[-2000:]}")
            time.sleep(0.1)


# The test CDN's port is chosen before the web client is built: the client allows models from that
# origin only.
CDN_PORT = free_port()
CDN_ORIGIN = f"http://127.0.0.1:{CDN_PORT}"


def decoded_pixels(paths: list[Path]) -> np.ndarray:
    """RGB float32 [n, h, w, 3], 0-255, as the browser's decoder would hand them to tfjs."""
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths])


def write_pixels(pixels: np.ndarray, path: Path) -> Path:
    pixels.astype("<f4").tofile(path)
    Path(f"{path}.json").write_text(json.dumps({"shape": list(pixels.shape)}))
    return path


def saved_model_outputs(saved_model_dir: str, pixels: np.ndarray, output: str = "probabilities") -> np.ndarray:
    import tensorflow as tf

    from models.features import BROWSER_INPUT, BROWSER_SIGNATURE

    fn = tf.saved_model.load(saved_model_dir).signatures[BROWSER_SIGNATURE]
    return np.concatenate([fn(**{BROWSER_INPUT: tf.constant(pixels[i:i + 16])})[output].numpy()
                           for i in range(0, len(pixels), 16)])


def saved_model_probabilities(saved_model_dir: str, pixels: np.ndarray) -> np.ndarray:
    return saved_model_outputs(saved_model_dir, pixels, "probabilities")


def node_outputs(model_dir: str, pixels_file: Path, backend: str) -> dict:
    done = subprocess.run(["node", "scripts/predict.mjs", "--model", model_dir, "--pixels", str(pixels_file),
                           "--backend", backend], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["backend"] == backend
    return out


def node_probabilities(model_dir: str, pixels_file: Path, backend: str) -> np.ndarray:
    return np.asarray(node_outputs(model_dir, pixels_file, backend)["probabilities"], dtype=np.float64)


@contextlib.contextmanager
def nginx_cdn(origin_root: str, allowed_origin: str, port: int | None = None):
    """nginx serving origin_root on loopback the way the CDN edge does; yields (url, process)."""
    runtime = tempfile.mkdtemp(prefix="bloodcell-nginx-", dir="/tmp")
    port = port or free_port()
    conf = os.path.join(runtime, "cdn.conf")
    with open(conf, "w") as f:
        f.write(render.render(origin_root, f"127.0.0.1:{port}", allowed_origin, runtime))
    log = os.path.join(runtime, "error.log")
    proc = subprocess.Popen(["nginx", "-e", log, "-c", conf, "-g", "daemon off;"])
    try:
        wait_for_port(port, proc, log=log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(runtime, ignore_errors=True)


def world_readable(root: str) -> None:
    """nginx's workers run as an unprivileged user: the served tree must be readable by everyone."""
    for dirpath, _, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    # Parents need search permission too; only temporary folders are touched (pytest makes them 0700).
    tmp = os.path.realpath(tempfile.gettempdir())
    parent = os.path.dirname(os.path.realpath(root))
    while parent.startswith(tmp + os.sep):
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        parent = os.path.dirname(parent)


@contextlib.contextmanager
def static_server(folder: str):
    """The web client's own origin: a plain static file server on loopback; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".js": "text/javascript"}

    def log_message(self, *args):
        pass
