"""A local run's private directory (the workers' raw output, the progress channel), and
where a run without --output keeps its summary and report (the user's cache directory).

Made with ``mkdtemp`` (mode 0700, a name nobody can predict), its files created exclusively and
without following symlinks; removed however the run ends, so nothing is left in the temporary
directory. A failed run's workers' log is moved first to the run's directory in the user's cache
(``results_dir``), which the final message names.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from typing import Mapping, Optional

PREFIX = "datastore-mapper-run-"
#: Under the user's cache directory: one directory per run without --output.
RUNS_DIR = os.path.join("datastore-mapper", "runs")


def cache_home(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$XDG_CACHE_HOME``, or ``~/.cache`` (the XDG base directory rule)."""
    environ = os.environ if environ is None else environ
    home = environ.get("XDG_CACHE_HOME", "")
    return home if os.path.isabs(home) else os.path.join(os.path.expanduser("~"), ".cache")


def results_dir(job: str, started: dt.datetime, run_id: str,
                environ: Optional[Mapping[str, str]] = None) -> str:
    """A new directory for a run's summary and report when it has no --output:
    ``CACHE/datastore-mapper/runs/YYYYMMDDTHHMMSSZ-JOB-RUNID`` (private, kept: the CLI names it
    at the end)."""
    parent = os.path.join(cache_home(environ), RUNS_DIR)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    path = os.path.join(parent, f"{started.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-"
                                f"{job}-{run_id}")
    os.mkdir(path, 0o700)
    return path


class RunDir:
    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=PREFIX)  # 0700, unique

    def subdir(self, name: str) -> str:
        """A new private directory inside (the progress channel's)."""
        path = os.path.join(self.path, name)
        os.mkdir(path, 0o700)
        return path

    def file(self, name: str) -> str:
        """A new file inside, made now: exclusive, no symlink followed, 0600."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
