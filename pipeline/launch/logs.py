"""Readable logs for local runs.

Worker processes of the local runner send their log records to the runner,
which prints each as ``Worker: <log entry protobuf>``. This filter turns those
back into plain lines, keeps the mapper's own INFO records (progress, plans,
summary) and warnings, and drops Beam's start-up noise.
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from typing import Iterator

_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_LOCATION = re.compile(r'log_location: "((?:[^"\\]|\\.)*)"')
#: Beam's start-up warning; the summary a worker logs and the traceback of a bundle that
#: failed (the CLI prints both itself, the failure as one clear line).
_NOISE = ("semi_persistent_directory", "summary:\n", "Error processing instruction")


def _unescape(text: str) -> str:
    """The message of a worker's log entry, as protobuf's text format escaped it: non-ASCII
    arrives either as octal escapes of its UTF-8 bytes (``\\303\\274``) or already as text
    (``ü``, ``データ``); both come back as the text they were."""
    try:
        raw = text.encode("utf-8")  # text that is already Unicode stays as it is
        return codecs.escape_decode(raw)[0].decode("utf-8")
    except Exception:  # keep the raw text rather than lose the line
        return text


class WorkerLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Worker: %s" or not record.args:
            return True
        entry = str(record.args[0])
        m = _MESSAGE.search(entry)
        message = _unescape(m.group(1)) if m else entry
        if any(n in message for n in _NOISE):
            return False
        loc = _LOCATION.search(entry)
        ours = bool(loc and ("/pipeline/" in loc.group(1) or "/jobs/" in loc.group(1)))
        if record.levelno < logging.WARNING and not ours:
            return False
        record.msg, record.args = "worker: %s", (message,)
        return True


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("apache_beam", "google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = logging.getLogger(_WORKER_LOGGER)
    worker.setLevel(logging.INFO)
    if not any(isinstance(f, WorkerLogFilter) for f in worker.filters):
        worker.addFilter(WorkerLogFilter())


class _RunnerTracebacksToLog(logging.Filter):
    """While a local run goes on, Beam's own errors in this process (a worker that died, a
    channel closed) go to the workers' log with their tracebacks, not to the terminal: the CLI
    reports the failure as one line, naming that log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("apache_beam") and (record.exc_info or
                                                      record.levelno >= logging.ERROR):
            try:
                os.write(2, (logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
                             .format(record) + "\n").encode("utf-8", "replace"))
            except OSError:
                pass
            return False
        return True


def _thread_exception_to_log(args) -> None:
    """A runner thread's uncaught exception (a worker subprocess that exited): to the log."""
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    try:
        os.write(2, f"Exception in thread {getattr(args.thread, 'name', '?')}:\n{text}".encode(
            "utf-8", "replace"))
    except OSError:
        pass


@contextlib.contextmanager
def worker_stderr_to(path: str) -> Iterator[None]:
    """Send what local worker processes print to their stderr (Beam prints a job's
    failure there as a raw traceback, before the CLI reports it) to a file, with the runner's
    own tracebacks from this process, while this process's own logs and messages still
    reach the terminal."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and _is_fd2(getattr(h, "stream", None))]
    old_stderr = sys.stderr
    terminal = None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)  # made by RunDir.file
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    to_log = _RunnerTracebacksToLog()
    saved_hook = threading.excepthook
    try:
        if _is_fd2(old_stderr):
            terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8",
                                 errors="replace")
            sys.stderr = terminal
            for h in handlers:
                h.setStream(terminal)
        for h in handlers:
            h.addFilter(to_log)
        threading.excepthook = _thread_exception_to_log
        yield
    finally:
        threading.excepthook = saved_hook
        for h in handlers:
            h.removeFilter(to_log)
        if terminal is not None:
            terminal.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if terminal is not None:
            sys.stderr = old_stderr
            for h in handlers:
                h.setStream(old_stderr)
            terminal.close()


def _is_fd2(stream) -> bool:
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False
