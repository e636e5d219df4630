"""The download command fails with one clear line when unauthenticated or offline, never shows the key."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_download(tmp_path, env_extra, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k != "BLOODCELL_SANDBOX"}
    env.update(HOME=str(tmp_path), **env_extra)
    proc = subprocess.run([sys.executable, "-m", "pipeline.download", "--dest", str(tmp_path / "d"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_no_credentials(tmp_path):
    code, _, err = run_download(tmp_path, {})
    assert code == 1
    assert err.strip() == (f"error: no Kaggle credentials: create {tmp_path}/.kaggle/kaggle.json "
                           "(Kaggle > Settings > API) or set KAGGLE_USERNAME and KAGGLE_KEY")


def test_no_credentials_in_the_sandbox_names_what_reaches_it(tmp_path):
    # infra/env/run.sh gives the sandbox a throwaway home: a kaggle.json made there is gone next time.
    code, _, err = run_download(tmp_path, {"BLOODCELL_SANDBOX": "1"})
    assert code == 1
    assert err.strip() == ("error: no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (infra/env/run.sh "
                           "passes these two; it does not show the sandbox your ~/.kaggle)")


def test_done_names_the_full_runs_command(tmp_path):
    from pipeline import download

    assert download.done_line("data/kaggle") == "done: run `make full DATA=data/kaggle`"
    assert download.done_line("/srv/my cells") == "done: run `make full DATA='/srv/my cells'`"


@pytest.mark.timeout(150)
def test_world_readable_file_warns_and_offline_fails_in_one_line_without_the_key(tmp_path):
    secret = "0123456789abcdef0123456789abcdef"
    conf = tmp_path / ".kaggle"
    conf.mkdir()
    (conf / "kaggle.json").write_text(json.dumps({"username": "someone", "key": secret}))
    os.chmod(conf / "kaggle.json", 0o644)
    # An unresolvable proxy makes the test offline on any machine.
    code, out, err = run_download(tmp_path, {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0] == f"warning: {conf}/kaggle.json is readable by other users; run: chmod 600 {conf}/kaggle.json"
    assert lines[-1].startswith("error: ")
    assert secret not in out + err
