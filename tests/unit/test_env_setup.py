"""infra/env/setup.sh on a host new enough for a plain virtualenv: what it lacks is named, in Debian
package names, before anything is built."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def host_path(tmp_path, without: set[str]) -> str:
    """A PATH with every command of this machine except `without`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in Path(folder).iterdir() if Path(folder).is_dir() else []:
            if entry.name not in without and not (bin_dir / entry.name).exists():
                (bin_dir / entry.name).symlink_to(entry)
    return str(bin_dir)


@pytest.mark.skipif(not Path("/usr/bin/python3.13").exists(), reason="needs a host with python3.13")
def test_a_host_without_the_tools_is_told_which_packages_to_install(tmp_path):
    path = host_path(tmp_path, without={"cc", "gcc", "make", "node", "nodejs", "npm", "chromium", "chromium-browser"})
    done = subprocess.run(["bash", str(REPO / "infra" / "env" / "setup.sh")], capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path), "BLOODCELL_ENV_MODE": "venv",
                               "BLOODCELL_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert done.returncode == 1
    assert "this host lacks what the environment needs: apt-get install -y build-essential nodejs npm chromium" \
        in done.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.skipif(not Path("/usr/bin/python3.13").exists(), reason="needs a host with python3.13")
def test_python_other_than_3_13_is_not_taken(tmp_path):
    """The locks are resolved for CPython 3.13: an older python3 is not a fallback."""
    path = host_path(tmp_path, without={"python3.13"})
    done = subprocess.run(["bash", str(REPO / "infra" / "env" / "setup.sh")], capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path), "BLOODCELL_ENV_MODE": "venv",
                               "BLOODCELL_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert done.returncode == 1 and "apt-get install -y python3" in done.stderr


def test_the_plain_virtualenv_needs_the_glibc_the_wheels_were_built_for():
    """The locked TFX wheels are manylinux_2_39: a host with glibc 2.38 must get the userland."""
    glibc_ok = (REPO / "infra" / "env" / "setup.sh").read_text().split("glibc_ok()", 1)[1].split("\n}", 1)[0]
    assert "2.39" in glibc_ok and "2.38" not in glibc_ok
