"""Fixtures of the end-to-end tests."""
from __future__ import annotations

import os
import subprocess

import pytest

from testkit import browser as bh


@pytest.fixture(scope="session")
def built_client(tmp_path_factory):
    """The web client, built once, allowing models from the test CDN's origin only."""
    out = tmp_path_factory.mktemp("web") / "dist"
    done = subprocess.run(["npm", "run", "build", "--", "--outDir", str(out), "--emptyOutDir"], cwd=bh.WEB,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "VITE_ALLOWED_MODEL_ORIGINS": bh.CDN_ORIGIN})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out
