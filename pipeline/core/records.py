"""A job's records as lines of text: the default encoding of ``JobSpec.encode``."""
from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any


def record_json(record: Any) -> str:
    """One JSON object per line (keys as their flat path, times ISO 8601, bytes base64, sets
    sorted)."""

    def default(v: Any):
        if isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode("ascii")
        if hasattr(v, "flat_path"):
            return list(v.flat_path)
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        if isinstance(v, dict) or hasattr(v, "items"):
            return dict(v.items())
        return repr(v)

    return json.dumps(record, default=default, ensure_ascii=False, sort_keys=True)
