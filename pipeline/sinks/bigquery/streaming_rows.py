"""Rows for BigQuery streaming inserts: JSON-ready values, insert ids, batches, error kinds.

Pure functions; the streaming sink (``pipeline.sinks.bigquery.stream``) uses them.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import math
from typing import Any, Iterable, Iterator

# The insertAll API: at most 10 MB per request and per row, 50,000 rows per request (500
# recommended). We stay well below the byte limit: JSON overhead and ids are added per row.
MAX_BATCH_ROWS = 500
MAX_BATCH_BYTES = 5_000_000
MAX_ROW_BYTES = 9_000_000

# insertErrors reasons worth retrying (the row itself was fine): see BigQuery's error table.
TRANSIENT_REASONS = frozenset({"backenderror", "internalerror", "timeout", "ratelimitexceeded",
                               "stopped"})


def insert_id(job: str, namespace: str, flat_path: Iterable, index: int) -> str:
    """A stable id per (job, namespace, entity key, record index): a retried bundle sends the
    same ids, which BigQuery uses to drop duplicates (best effort, within about a minute)."""
    text = json.dumps([job, namespace, list(flat_path), index], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def json_ready(v: Any) -> Any:
    """A job's record value -> what insertAll's JSON accepts.

    Datetimes become UTC timestamps, dates ISO dates, bytes base64, Decimals text, Datastore keys
    their path; NaN and infinities become the strings BigQuery reads as FLOAT64 (JSON has no
    token for them).
    """
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(x) for x in v]
    if hasattr(v, "flat_path") and hasattr(v, "namespace"):
        return {"namespace": v.namespace or "", "path": [str(p) for p in v.flat_path]}
    if hasattr(v, "latitude") and hasattr(v, "longitude"):
        return {"latitude": v.latitude, "longitude": v.longitude}
    return str(v)


def row_bytes(row_id: str, row: dict) -> int:
    """About what a row adds to an insertAll request body."""
    return len(json.dumps(row, ensure_ascii=False).encode("utf-8")) + len(row_id) + 32


def batches(items: list, max_rows: int = MAX_BATCH_ROWS,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list]:
    """(size, item) pairs -> lists of items within both limits, in order.

    An item bigger than ``max_bytes`` goes in a batch of its own (the caller refuses rows over
    the API's per-row limit before this)."""
    batch, size = [], 0
    for n, item in items:
        if batch and (len(batch) >= max_rows or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch


def is_transient(errors: list) -> bool:
    """One row's insertErrors: True when every reason says "try again", not "bad row"."""
    reasons = [str(e.get("reason", "")).lower() for e in errors or ()]
    return bool(reasons) and all(r in TRANSIENT_REASONS for r in reasons)
