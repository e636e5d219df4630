"""The run's console: start-up chatter of TensorFlow and Beam (from this process and its children)
kept out of the terminal, every line kept in the run's log."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline import run_log

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796603368.379848       2 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796603368.380498     939 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1796603368.380498     939 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    '2026-12-07 00:24:39,386 WARNING Worker: severity: WARN timestamp {   seconds: 1796603079   nanos: 375930786 } '
    'message: "No semi_persistent_directory found:  User registered objects may not be effective" thread: "MainThread"',
    "2026-12-07 01:05:02,754 WARNING ArtifactQuery.property_predicate is not supported.",
    "2026-12-07 01:06:19,625 WARNING From /opt/venv/lib/python3.13/site-packages/tensorflow_model_analysis/writers/"
    "metrics_plots_and_validations_writer.py:127: tf_record_iterator (from tensorflow.python.lib.io.tf_record) is "
    "deprecated and will be removed in a future version.",
    "Instructions for updating:",
]
KEPT = [
    "E0000 00:00:1796603368.380498     939 some_op.cc:12] a real C++ error",
    "5/5 - 1s - loss: 1.3 - sparse_categorical_accuracy: 0.3",
    "2026-12-07 00:25:38,370 WARNING TfjsPublisher: version 1's weights would overflow float16",
]


def test_chatter_goes_to_the_log_only_and_the_rest_to_the_terminal_too(tmp_path, capfd):
    """A make run had printed 113 lines of it among 169, "CUDA error" among them, on a host without a GPU."""
    log = tmp_path / "logs" / "run.log"
    child = "import sys\nfor i, line in enumerate(sys.argv[1:]): print(line, file=(sys.stderr, sys.stdout)[i % 2])"
    with run_log.captured(str(log)):
        subprocess.run([sys.executable, "-c", child, *NOISE, *KEPT], check=True)
        os.write(2, (NOISE[1] + "\n").encode())  # this process's own C++ logging
        os.write(1, b"written by this process\n")
    out, err = capfd.readouterr()
    shown = (out + err).splitlines()
    assert sorted(shown) == sorted([*KEPT, "written by this process"])
    assert sorted(log.read_text().splitlines()) == sorted([*NOISE, NOISE[1], *KEPT, "written by this process"])


def test_without_a_log_the_chatter_is_dropped(capfd):
    with run_log.captured(None):
        os.write(2, (NOISE[1] + "\n" + KEPT[0] + "\n").encode())
    assert capfd.readouterr().err.splitlines() == [KEPT[0]]


def test_verbose_shows_everything_and_writes_no_log(tmp_path, capfd):
    with run_log.captured(str(tmp_path / "run.log"), enabled=False):
        os.write(2, (NOISE[0] + "\n").encode())
    assert capfd.readouterr().err.strip() == NOISE[0] and not (tmp_path / "run.log").exists()


def test_the_last_words_of_a_run_that_dies_reach_the_terminal_and_the_log(tmp_path):
    """A fatal C++ check aborts the process: what it wrote last was still in a pipe that a thread of
    the dead process would have read."""
    log = tmp_path / "run.log"
    script = ("import os, sys\nfrom pipeline import run_log\n"
              "with run_log.captured(sys.argv[1]):\n"
              "    os.write(2, b'F0000 00:00:1.2 7 op_kernel.cc:9] Check failed: shape\\n')\n"
              "    os.abort()\n")
    done = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Check failed: shape" in done.stderr and "Check failed: shape" in log.read_text()


def test_a_terminal_gone_costs_the_log_nothing():
    """Output piped into `head`, or an ssh session hung up: the log still gets every line."""
    import io

    lines = [f"line {i}\n".encode() for i in range(2000)]
    source_read, source_write = os.pipe()
    gone_read, gone_write = os.pipe()
    os.close(gone_read)  # a reader that stopped: writing raises BrokenPipeError
    writer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                              stdin=subprocess.PIPE, stdout=source_write)
    os.close(source_write)
    writer.stdin.write(b"".join(lines))
    writer.stdin.close()
    log = io.BytesIO()
    run_log.filter_streams([run_log._Stream(source_read, gone_write)], log)
    writer.wait()
    os.close(source_read)
    os.close(gone_write)
    assert log.getvalue() == b"".join(lines)


def test_a_filter_that_cannot_start_leaves_the_output_as_it_is(tmp_path, capfd, monkeypatch):
    """Its pipe had replaced stdout and stderr all the same: the run's output went nowhere."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    open_fds = len(os.listdir("/proc/self/fd"))
    with run_log.captured(str(tmp_path / "run.log")):
        os.write(2, b"still shown\n")
    assert capfd.readouterr().err == "still shown\n"
    assert len(os.listdir("/proc/self/fd")) == open_fds


def test_an_error_that_ends_the_block_is_logged_whole(tmp_path, capfd):
    """Its traceback reaches the log: the terminal gets what the caller makes of it."""
    log = tmp_path / "run.log"
    with pytest.raises(RuntimeError, match="boom"):
        with run_log.captured(str(log)):
            os.write(1, b"before\n")
            raise RuntimeError("boom")
    assert "Traceback" in log.read_text() and "RuntimeError: boom" in log.read_text()
    assert "Traceback" not in "".join(capfd.readouterr())


def test_ctrl_c_is_one_line_exit_130_and_its_traceback_is_in_the_log(tmp_path, capfd, monkeypatch):
    """Ctrl-C printed a traceback dozens of lines long on the terminal, after the console was restored,
    so the run's log never had it."""
    from tfx import v1 as tfx

    from pipeline import local_runner

    class Interrupted:
        def run(self, pipeline):
            raise KeyboardInterrupt

    monkeypatch.setattr(tfx.orchestration, "LocalDagRunner", Interrupted)
    assert local_runner.main(["--output-dir", str(tmp_path / "runs")]) == 130
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]]
    assert "interrupted" in err
    (log,) = (tmp_path / "runs").glob("*/logs/run-*.log")
    assert "KeyboardInterrupt" in log.read_text() and str(log) in err


def test_a_failed_run_deletes_older_image_copies_too(tmp_path, capfd, monkeypatch):
    """Only a finished run pruned: weeks whose Trainer failed while new exports came kept every run's
    copies (831 MiB each on the full dataset), and a disk filled by them stayed full."""
    from tfx import v1 as tfx

    from pipeline import local_runner, retention

    class Failing:
        def run(self, pipeline):
            raise RuntimeError("Trainer failed")

    calls = []
    monkeypatch.setattr(tfx.orchestration, "LocalDagRunner", Failing)
    monkeypatch.setattr(retention, "prune_examples", lambda *args: calls.append(args) or retention.Pruned(artifacts=1, bytes_freed=2**30))
    assert local_runner.main(["--output-dir", str(tmp_path / "runs")]) == 1
    out, err = capfd.readouterr()
    assert len(calls) == 1, (out, err)
    assert "disk: 1 older copies of the images deleted, 1024 MiB freed" in out
    assert err.strip().splitlines()[-1] == "error: pipeline failed: RuntimeError: Trainer failed"
