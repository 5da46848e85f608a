"""Writing a file that appears only complete and is on disk when the call returns.

Local files: a temp file beside the target, flushed and fsynced, renamed over the name, and the
directory fsynced, so a crash right after leaves either nothing or the whole file. Cloud
Storage: one upload, which publishes the object only complete when the call returns.
"""
from __future__ import annotations

import os
import uuid

from apache_beam.io.filesystems import FileSystems


def write_whole(path: str, data: bytes) -> None:
    if path.startswith("gs://"):
        with FileSystems.create(path) as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
