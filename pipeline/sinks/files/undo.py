"""The undo log: every entity a run changes or deletes, as it was, written before the commit.

Each batch of mutations writes one file, durably, before its commit (``durable.write_whole``:
on disk, or uploaded, when the call returns; not through a sink that publishes at the end), so
a commit that happened always has its undo records, whatever fails afterwards. A transaction
that lost to contention (it did not commit) deletes its file; a commit whose outcome is unknown
keeps it (restoring then compares, see ``restore``).

One JSON object per line: ``job``, ``run``, ``mode``, ``namespace``, ``kind``, ``key`` (the
key's protobuf JSON), ``before`` (the entity's protobuf JSON, ``pipeline.datastore.entity_json``;
null: it did not exist), ``after_sha256`` (of what the run wrote; null: it deleted it) and
``time``. ``restore_entities --params from=DIR`` puts ``before`` back where the entity is still
``after``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import uuid
from typing import Iterator, Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.core.namespaces import namespace_label
from pipeline.core.units import path_part
from pipeline.sinks.files.durable import write_whole
from pipeline.sinks.files.layout import files_under

SUFFIX = ".jsonl"


def digest(fingerprint: Optional[bytes]) -> Optional[str]:
    return hashlib.sha256(fingerprint).hexdigest() if fingerprint is not None else None


def record(job: str, run: str, mode: str, namespace: str, kind: str, key: dict,
           before: Optional[dict], after_fingerprint: Optional[bytes]) -> dict:
    return {"job": job, "run": run, "mode": mode, "namespace": namespace, "kind": kind,
            "key": key, "before": before, "after_sha256": digest(after_fingerprint),
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")}


def write_batch(undo_dir: str, namespace: str, records: list) -> Optional[str]:
    """One batch's records, as one new file under the namespace's directory; its path."""
    if not records:
        return None
    name = (f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}-"
            f"{uuid.uuid4().hex[:10]}{SUFFIX}")
    path = FileSystems.join(undo_dir, path_part(namespace_label(namespace)), name)
    write_whole(path, b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True)
                               .encode("utf-8") + b"\n" for r in records))
    return path


def discard(path: Optional[str]) -> None:
    """A batch that surely did not commit (it lost to contention): its records go."""
    if path:
        try:
            FileSystems.delete([path])
        except Exception:  # left behind, restoring skips what no commit wrote (it compares)
            pass


def undo_files(location: str) -> list[str]:
    """Every undo file under ``location`` (a run's ``undo/`` directory, or one file)."""
    if location.endswith(SUFFIX) and FileSystems.exists(location):
        return [location]
    return sorted(p for p in files_under(location)
                  if p.endswith(SUFFIX) and not os.path.basename(p).startswith("."))


def read_records(path: str) -> Iterator[dict]:
    """The records of an undo (or backup) file, one at a time (files may be large)."""
    with FileSystems.open(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path}:{n} is not an undo record: {e}") from None
