"""A local run's private directory: the workers' raw output and, without --output, the summary.

Made with ``mkdtemp`` (mode 0700, a name nobody can predict), its files created exclusively and
without following symlinks; removed after a run that succeeded or was interrupted, kept (and
named in the final message) after one that failed, so nothing else is left in the temporary
directory.
"""
from __future__ import annotations

import os
import shutil
import tempfile

PREFIX = "datastore-mapper-run-"


class RunDir:
    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=PREFIX)  # 0700, unique

    def file(self, name: str) -> str:
        """A new file inside, made now: exclusive, no symlink followed, 0600."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
