"""Readable logs for local runs.

Worker processes of the local runner send their log records to the runner,
which prints each as ``Worker: <log entry protobuf>``. This filter turns those
back into plain lines, keeps the mapper's own INFO records (progress, plans,
summary) and warnings, and drops Beam's start-up noise.
"""
from __future__ import annotations

import codecs
import logging
import re

_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_LOCATION = re.compile(r'log_location: "((?:[^"\\]|\\.)*)"')
#: Beam's start-up warning, and the summary a worker logs (the CLI prints it itself).
_NOISE = ("semi_persistent_directory", "summary:\n")


def _unescape(text: str) -> str:
    try:
        return codecs.escape_decode(text.encode("latin-1", "backslashreplace"))[0].decode(
            "utf-8", "replace")
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
