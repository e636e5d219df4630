"""infra/env/run.sh is a boundary for the packages it runs (read from inside it, where the tests run):
no capabilities, not root, its own PID namespace, a private $HOME and /tmp, an allowlisted environment."""
from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pytest

from testkit.sandbox import allowed_env

# The Debian 13 userland's virtualenv: present only inside run.sh's sandbox (userland mode). A host new
# enough for a plain virtualenv runs no sandbox, and these tests skip there.
pytestmark = pytest.mark.skipif(not os.path.exists("/opt/venv/bin/python"),
                                reason="runs inside infra/env/run.sh's sandbox (userland mode) only")

# Set by run.sh itself, besides the allowlist.
SET_BY_RUN_SH = {"PATH", "HOME", "USER", "PWD", "SHLVL", "_", "npm_config_cache", "SSL_CERT_FILE"}


def test_no_capabilities_and_not_root():
    status = Path("/proc/self/status").read_text()
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert os.getuid() != 0 and os.geteuid() != 0


def test_host_processes_are_not_visible():
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    assert Path("/proc/1/comm").read_text().strip() == "bwrap"
    assert len(pids) < 100


def test_the_hosts_home_is_not_visible():
    host_home = os.environ.get("BLOODCELL_HOST_HOME", "/root")
    assert os.environ["HOME"] != host_home and os.environ["HOME"].startswith("/tmp/")
    # The host's home holds at least the project's environment cache; none of it is visible here.
    assert not os.path.exists(os.path.join(host_home, ".cache", "bloodcell"))


def test_only_allowlisted_variables_pass():
    """In bwrap itself (PID 1, whose environment is readable from here) and in the command it started
    (PID 2), as each one started: later processes also get what libraries set at run time."""
    allowed = allowed_env()
    leaked = set()
    for proc in (Path("/proc/1"), Path("/proc/2")):
        block = (proc / "environ").read_bytes()
        names = {entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if b"=" in entry}
        leaked |= {n for n in names if n not in SET_BY_RUN_SH and not any(fnmatch.fnmatchcase(n, p) for p in allowed)}
    assert leaked == set()


def test_ctrl_c_reaches_the_command_and_not_the_sandbox():
    # The terminal sends SIGINT to the whole foreground group: bwrap died of it at once, and
    # --die-with-parent then killed the command before its own interrupt handling (the runner's
    # "error: interrupted" line and log) could finish. bwrap ignores it; the command gets it as usual.
    import signal

    def ignores_sigint(pid: str) -> bool:
        mask = int(re.search(r"^SigIgn:\s+([0-9a-f]+)$", Path(f"/proc/{pid}/status").read_text(), re.M).group(1), 16)
        return bool(mask & (1 << (signal.SIGINT - 1)))

    assert ignores_sigint("1")
    assert not ignores_sigint("self")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
