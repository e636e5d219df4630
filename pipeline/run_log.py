"""A run's console: everything the pipeline's processes write (TFX, Beam workers, TensorFlow's C++
logging) goes whole to a log file; the terminal gets it less the start-up chatter that says nothing
to a lab (TensorFlow's C++ info lines, "no CUDA" on a host without a GPU, Beam's and TFX's notices).

TensorFlow's C++ logging ignores TF_CPP_MIN_LOG_LEVEL before absl::InitializeLog, and every Beam
worker process imports TensorFlow again, so the lines are filtered at the file descriptors that the
child processes inherit. The filter is a process of its own (this file run as a script): it drains
the pipe to its end even when the run dies mid-write (a fatal "Check failed" line, then abort) or a
worker outlives the run, and it ignores the Ctrl-C that stops the run, whose traceback it passes on."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys

NOISE = re.compile("|".join([
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] ",               # C++ INFO and WARNING lines
    r"^E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit",  # no GPU here
    r"WARNING Worker: severity: WARN .*message: \"(No semi_persistent_directory found|Discarding unparseable args)",
    r"WARNING Examples artifact does not have payload_format custom property",
    r"Fail to find plots for model name: None",
    # TFX and Keras notices from the pipeline's own process (absl's Python logging, WARNING).
    r"WARNING (Fallback to non-ZetaSQL contexts execution query|ArtifactQuery\.property_predicate is not supported)",
    r"No training configuration found in save file, so the model was \*not\* compiled",
    r"WARNING From \S+: \S+ \(from tensorflow\.python\.\S+\) is deprecated",
    r"^Instructions for updating:$|^Use eager execution and: $|^`tf\.data\.TFRecordDataset\(path\)`$",
]))
WAIT_S = 10.0  # for the filters to pass on what is left once the run is over


def filter_lines(source, terminal, log) -> None:
    """Every line to the log (first: a terminal gone must not cost the log a line), the lines that are
    not noise to the terminal, until every writer of `source` closed it."""
    for line in source:
        if log is not None:
            with contextlib.suppress(OSError):
                log.write(line)
        if terminal is not None and not NOISE.search(line.decode("utf-8", "replace")):
            try:
                terminal.write(line)
                terminal.flush()
            except OSError:  # the terminal hung up or its reader stopped: keep logging
                terminal = None


def _start_filter(fd: int, log_path: str | None) -> tuple[subprocess.Popen, int]:
    original = os.dup(fd)
    proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), log_path or ""],
                            stdin=subprocess.PIPE, stdout=original, stderr=subprocess.DEVNULL, close_fds=True)
    os.dup2(proc.stdin.fileno(), fd)
    proc.stdin.close()  # the write end now lives on as `fd` only (and in the run's children)
    return proc, original


@contextlib.contextmanager
def captured(log_path: str | None, enabled: bool = True):
    """Within the block, file descriptors 1 and 2 (this process's and its children's) go through the
    filter; every line is logged at `log_path` (None: nowhere). Disabled (--verbose), everything goes
    to the terminal as it is."""
    if not enabled:
        yield
        return
    if log_path:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    started = []
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):  # not open (started with >&-): nothing to filter
                os.fstat(fd)
                started.append((fd, *_start_filter(fd, log_path)))
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        for fd, _, original in started:
            os.dup2(original, fd)  # this process's write end of the pipe is gone
            os.close(original)
        for _, proc, _ in started:
            # A worker still alive holds a write end: its filter drains it on after this.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=WAIT_S / len(started))


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the run; its last words still pass here
    log = open(argv[0], "ab", buffering=0) if argv and argv[0] else None  # one write per line: appends interleave whole
    filter_lines(sys.stdin.buffer, sys.stdout.buffer, log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
