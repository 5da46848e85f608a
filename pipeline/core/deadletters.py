"""Dead letters: the entities a job failed on, the records that could not be written, the rows
BigQuery rejected, each one line of the run's dead-letter file, in one format.

Every line has ``source`` (``job``, ``record`` or ``bigquery``), ``job``, ``namespace``,
``kind``, ``key`` (the entity's flat key path, or null), ``error`` and ``message`` (or, for
BigQuery, its ``errors``), ``time``; a job error adds the last frames of the traceback, a record
error a truncated ``repr`` of what could not be encoded and its index among the entity's
records. ``identity`` says when two lines are the same letter, so a retried slice that writes
its letters again never duplicates one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import traceback
from typing import Any, Optional, Sequence

JOB, RECORD, BIGQUERY, WRITE = "job", "record", "bigquery", "write"
#: Frames of a job error's traceback kept (the innermost: the job's own code).
TRACEBACK_FRAMES = 5
REPR_LIMIT = 1000


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _frames(err: BaseException) -> list[str]:
    tb = traceback.extract_tb(err.__traceback__)[-TRACEBACK_FRAMES:]
    return [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in tb]


def _repr(v: Any) -> str:
    try:
        text = repr(v)
    except Exception as e:
        text = f"<{type(v).__name__}: repr() failed: {type(e).__name__}>"
    return text if len(text) <= REPR_LIMIT else text[:REPR_LIMIT] + f"... ({len(text)} chars)"


def job_error(job: str, namespace: str, kind: str, key: Sequence, err: BaseException) -> dict:
    """The job's ``next`` raised on an entity."""
    return {"source": JOB, "job": job, "namespace": namespace, "kind": kind, "key": list(key),
            "error": type(err).__name__, "message": str(err)[:REPR_LIMIT],
            "traceback": _frames(err), "time": _now()}


def record_error(job: str, namespace: str, kind: str, key: Sequence, index: int, record: Any,
                 err: BaseException) -> dict:
    """A record ``next`` yielded for an entity cannot be written (encoded) as asked."""
    return {"source": RECORD, "job": job, "namespace": namespace, "kind": kind, "key": list(key),
            "index": index, "error": type(err).__name__, "message": str(err)[:REPR_LIMIT],
            "record": _repr(record), "time": _now()}


def write_error(job: str, namespace: str, kind: str, key: Sequence, message: str,
                error: str = "WriteFailed", mutation: Optional[str] = None) -> dict:
    """A mutation that could not be written (contention that outlasted every retry and the
    halving, an entity too large, a key the run cannot write, ...): nothing was written."""
    return {"source": WRITE, "job": job, "namespace": namespace, "kind": kind,
            "key": list(key), "error": error, "message": message[:REPR_LIMIT],
            "mutation": mutation, "time": _now()}


def bigquery_rejection(job: str, namespace: str, table: str, insert_id: str, errors: list,
                       row: dict, kind: Optional[str] = None) -> dict:
    """A row BigQuery rejected, with its errors."""
    return {"source": BIGQUERY, "job": job, "namespace": namespace, "kind": kind, "key": None,
            "table": table, "insert_id": insert_id, "errors": errors,
            "row": json.dumps(row, ensure_ascii=False, sort_keys=True), "time": _now()}


def identity(letter: dict) -> tuple:
    """Two lines with the same identity are the same dead letter (written twice by a retry)."""
    key = json.dumps(letter.get("key"), ensure_ascii=False)
    return (letter.get("source"), letter.get("namespace"), letter.get("kind"), key,
            letter.get("index"), letter.get("insert_id"), letter.get("table"))


def slice_part_name(namespace: str, range_id: str, start: str) -> str:
    """The file a slice's letters are written to: the same for a retried slice (it starts at the
    same restriction), so its letters replace, never add to, the first attempt's."""
    digest = hashlib.sha1(json.dumps([namespace, range_id, start]).encode("utf-8")).hexdigest()
    return f"slice-{digest[:20]}.jsonl"


def restore_part_name(source: str) -> str:
    """The file a restored undo or backup file's letters are written to: named after a digest of
    the source's whole path, not its base name (a backup has a ``KIND.jsonl`` per namespace: the
    same kind's files in two namespaces share their base name, and one's letters would replace
    the other's); the same for a retried bundle restoring that file again."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return f"restore-{digest[:40]}.jsonl"
