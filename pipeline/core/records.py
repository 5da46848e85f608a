"""A job's records as lines of text: the default encoding of ``JobSpec.encode``.

Records are checked, never guessed: a value JSON cannot hold (an arbitrary object, a complex,
NaN or an infinity, a circular structure) is an error for that record, which the reading step
turns into a dead letter for its entity, rather than ``repr()`` text in the output.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any


class RecordError(ValueError):
    """A record that cannot be written as asked; the message says which value and why."""


def _default(v: Any):
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            raise RecordError(f"the Decimal {v} cannot be written as JSON")
        return str(v)
    if hasattr(v, "flat_path") and hasattr(v, "namespace"):  # a Datastore key
        return list(v.flat_path)
    if hasattr(v, "latitude") and hasattr(v, "longitude"):  # a GeoPoint
        return {"latitude": v.latitude, "longitude": v.longitude}
    if isinstance(v, (set, frozenset)):
        try:
            return sorted(v)
        except TypeError:
            raise RecordError(f"a set of values that do not sort ({_brief(v)}) cannot be "
                              "written as a JSON list in a stable order") from None
    raise RecordError(f"a value of type {type(v).__name__} ({_brief(v)}) cannot be written as "
                      "JSON: convert it in next() (supported: dict, list, str, int, float, bool, "
                      "None, datetime, date, bytes, Decimal, set, Datastore keys and entities)")


def _brief(v: Any, limit: int = 80) -> str:
    try:
        text = repr(v)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"<{type(v).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def record_json(record: Any) -> str:
    """One JSON object per line (keys as their flat path, times ISO 8601, bytes base64, sets
    sorted); ``RecordError`` for anything JSON cannot hold."""
    try:
        return json.dumps(record, default=_default, ensure_ascii=False, sort_keys=True,
                          allow_nan=False)
    except RecordError:
        raise
    except RecursionError:
        raise RecordError("the record is nested too deeply (circular?) to be written") from None
    except (TypeError, ValueError) as e:  # circular references, NaN, keys that are not strings
        raise RecordError(f"the record cannot be written as JSON: {e}") from None
