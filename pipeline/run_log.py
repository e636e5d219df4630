"""A run's console: everything the pipeline's processes write (TFX, Beam workers, TensorFlow's C++
logging) goes whole to a log file; the terminal gets it less the start-up chatter that says nothing
to a lab (TensorFlow's C++ info lines, "no CUDA" on a host without a GPU, Beam's worker notices).

TensorFlow's C++ logging ignores TF_CPP_MIN_LOG_LEVEL before absl::InitializeLog, and every Beam
worker process imports TensorFlow again, so the lines are filtered here, at the file descriptors that
the child processes inherit."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

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


def _forward(read_fd: int, terminal_fd: int, log) -> None:
    """The lines that are not noise to the terminal, every line to the log, until every writer closed.
    It keeps reading whatever fails: a pipe not drained would stall the processes writing to it."""
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            for line in pipe:
                with contextlib.suppress(OSError, ValueError):
                    if not NOISE.search(line.decode("utf-8", "replace")):
                        os.write(terminal_fd, line)
                    if log:
                        log.write(line)
                        log.flush()
    finally:
        os.close(terminal_fd)


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
    sys.stdout.flush()
    sys.stderr.flush()
    restore, threads = [], []
    log = open(log_path, "ab") if log_path else None
    try:
        for fd in (1, 2):
            restore.append((fd, os.dup(fd)))
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, fd)
            os.close(write_fd)
            thread = threading.Thread(target=_forward, args=(read_fd, os.dup(restore[-1][1]), log), daemon=True)
            thread.start()
            threads.append(thread)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in restore:
            os.dup2(original, fd)  # drops this process's write end of the pipe
            os.close(original)
        for thread in threads:
            thread.join(timeout=10)  # a child still alive holds a write end: its thread drains it on
        if log and not any(t.is_alive() for t in threads):
            log.close()
