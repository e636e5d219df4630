"""A run's console: everything the pipeline's processes write (TFX, Beam workers, TensorFlow's C++
logging) goes whole to a log file; the terminal gets it less the start-up chatter that says nothing
to a lab (TensorFlow's C++ info lines, "no CUDA" on a host without a GPU, Beam's and TFX's notices).

TensorFlow's C++ logging ignores TF_CPP_MIN_LOG_LEVEL before absl::InitializeLog, and every Beam
worker process imports TensorFlow again, so the lines are filtered at the file descriptors that the
child processes inherit. The filter is one process of its own (this file run as a script), reading
stdout's and stderr's pipes: it drains them to their end even when the run dies
mid-write (a fatal "Check failed" line, then abort) or a worker outlives the run, and it ignores the
signals that stop the run (Ctrl-C, systemd's stop, a hang-up), whose last words it passes on. A
filter that does not start leaves the run's output as it is."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import selectors
import signal
import subprocess
import sys
import traceback

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
WAIT_S = 5.0  # for the filter to pass on what is left once the block is over


class _Stream:
    """One input pipe and the terminal fd its lines go to."""

    def __init__(self, source: int, terminal: int):
        self.source, self.terminal, self.partial = source, terminal, b""

    def write(self, line: bytes, log) -> None:
        """To the log first (a terminal gone must not cost the log a line), then, unless noise, to the terminal."""
        if log is not None:
            with contextlib.suppress(OSError):
                log.write(line)
        if self.terminal >= 0 and not NOISE.search(line.decode("utf-8", "replace")):
            try:
                os.write(self.terminal, line)
            except OSError:  # the terminal hung up or its reader stopped: keep logging
                self.terminal = -1


def filter_streams(streams: list[_Stream], log) -> None:
    """Whole lines of every stream until every writer closed every pipe."""
    selector = selectors.DefaultSelector()
    for stream in streams:
        selector.register(stream.source, selectors.EVENT_READ, stream)
    while selector.get_map():
        for key, _ in selector.select():
            stream = key.data
            chunk = os.read(stream.source, 65536)
            if not chunk:
                selector.unregister(stream.source)
                if stream.partial:
                    stream.write(stream.partial, log)
                continue
            *lines, stream.partial = (stream.partial + chunk).split(b"\n")
            for line in lines:
                stream.write(line + b"\n", log)


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def captured(log_path: str | None, enabled: bool = True):
    """Within the block, file descriptors 1 and 2 (this process's and its children's) go through the
    filter; every line is logged at `log_path` (None: nowhere). Disabled (--verbose), everything goes
    to the terminal as it is."""
    fds = [fd for fd in (1, 2) if _open(fd)] if enabled else []
    if not fds:
        yield
        return
    if log_path:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    originals = {fd: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in fds}  # never 1 or 2 themselves
    pipes = {fd: os.pipe() for fd in fds}
    ready_read, ready_write = os.pipe()
    args = [str(ready_write)] + [f"{pipes[fd][0]}:{originals[fd]}" for fd in fds]
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), log_path or "", *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=originals[fds[-1]],
                                pass_fds=[ready_write, *[pipes[fd][0] for fd in fds], *originals.values()])
    except OSError:
        pass
    finally:
        os.close(ready_write)
        for read_end, _ in pipes.values():
            os.close(read_end)
    started = proc is not None and os.read(ready_read, 1) == b"1"  # b"": it died before it was ready
    os.close(ready_read)
    ended_by = None
    try:
        for fd in fds:
            if started:
                os.dup2(pipes[fd][1], fd)
            os.close(pipes[fd][1])
        yield
    except BaseException:
        ended_by = traceback.format_exc()  # printed, it would reach the terminal only: the console is back
        raise
    finally:
        if ended_by and log_path:
            # First, in one append: a second Ctrl-C while the filter drains below must not lose it.
            with contextlib.suppress(OSError):
                fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, ended_by.encode("utf-8", "replace"))
                finally:
                    os.close(fd)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        for fd, original in originals.items():
            if started:
                os.dup2(original, fd)  # this process's write ends of the pipes are gone
            os.close(original)
        if proc is not None:
            # A worker still alive holds a write end: the filter drains it on after this.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=WAIT_S)


def main(argv: list[str]) -> int:
    """LOG READY_FD IN:OUT...: filters each IN pipe to its OUT fd, logging every line at LOG ('' for none)."""
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the run's end is the pipes' end
        signal.signal(stop, signal.SIG_IGN)
    log = open(argv[0], "ab", buffering=0) if argv[0] else None  # one write per line: appends stay whole
    streams = [_Stream(*map(int, pair.split(":"))) for pair in argv[2:]]
    ready = int(argv[1])
    os.write(ready, b"1")
    os.close(ready)
    filter_streams(streams, log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
