"""Property values: the backend's order and interpolation between two values.

Used to split a query with an inequality filter on its property's value range.
Supported types are numbers, timestamps and strings; an interpolated point is
only ever used when it lies strictly between its neighbours in the backend's
order, so a bad guess costs a split, never correctness.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from pipeline.core.keyorder import StringOrder

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_STRING_DIGITS = 4  # characters after the common prefix used to interpolate strings


class UnsupportedValue(TypeError):
    pass


def value_type(v: Any) -> str:
    if isinstance(v, bool):
        raise UnsupportedValue("booleans cannot be split into ranges")
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, dt.datetime):
        return "timestamp"
    if isinstance(v, str):
        return "string"
    raise UnsupportedValue(
        f"cannot split on a value of type {type(v).__name__}; "
        "supported: int, float, datetime, str")


def as_utc(v: dt.datetime) -> dt.datetime:
    return v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)


def value_sort_key(v: Any, order: StringOrder = StringOrder.UTF8) -> tuple:
    # Datastore orders types apart: integers, timestamps, strings, then floats.
    kind = value_type(v)
    if kind == "integer":
        return (0, v)
    if kind == "timestamp":
        return (1, as_utc(v))
    if kind == "float":
        return (3, v)
    if order is StringOrder.UTF16:
        return (2, v.encode("utf-16-be", "surrogatepass"))
    return (2, v)


def _micros(v: dt.datetime) -> int:
    delta = as_utc(v) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(m: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=m)


def _alphabet(*suffixes: str) -> int:
    """Size of the code point alphabet to interpolate over: just past the largest in use.

    Interpolating over all of Unicode would put exotic characters between two
    ASCII strings; over the characters in use, 'apple'..'banana' splits at
    ordinary letters. Surrogates are skipped (not valid in stored strings).
    """
    top = max((ord(c) for s in suffixes for c in s), default=0)
    return max(128, top + 1)


def _to_digit(c: str) -> int:
    cp = ord(c)
    return (cp - 0x800 if cp >= 0xE000 else cp) + 1  # 0 stands for "no character"


def _from_digit(d: int) -> str:
    cp = d - 1
    return chr(cp + 0x800 if cp >= 0xD800 else cp)


def _string_number(s: str, base: int) -> int:
    n = 0
    for i in range(_STRING_DIGITS):
        n = n * (base + 1) + (_to_digit(s[i]) if i < len(s) else 0)
    return n


def _number_string(n: int, base: int) -> str:
    digits = []
    for _ in range(_STRING_DIGITS):
        n, d = divmod(n, base + 1)
        digits.append(d)
    out = []
    for d in reversed(digits):
        if d == 0:
            break
        out.append(_from_digit(d))
    return "".join(out)


def interpolate(lo: Any, hi: Any, fraction: float) -> Any:
    """A value about ``fraction`` of the way from lo to hi (code point order for strings)."""
    kind = value_type(lo)
    if value_type(hi) != kind:
        raise UnsupportedValue(f"range bounds of different types: {lo!r} and {hi!r}")
    if kind == "integer":
        return lo + int((hi - lo) * fraction)
    if kind == "float":
        return lo + (hi - lo) * fraction
    if kind == "timestamp":
        a, b = _micros(lo), _micros(hi)
        return _from_micros(a + int((b - a) * fraction))
    prefix = 0
    while prefix < min(len(lo), len(hi)) and lo[prefix] == hi[prefix]:
        prefix += 1
    a_s, b_s = lo[prefix:], hi[prefix:]
    base = _alphabet(a_s[:_STRING_DIGITS], b_s[:_STRING_DIGITS])
    if base > 0xD800:
        base -= 0x800
    a, b = _string_number(a_s, base), _string_number(b_s, base)
    return lo[:prefix] + _number_string(a + int((b - a) * fraction), base)


def strictly_between(lo: Any, v: Any, hi: Any, order: StringOrder) -> bool:
    return value_sort_key(lo, order) < value_sort_key(v, order) < value_sort_key(hi, order)


def split_points(lo: Any, hi: Any, n: int, order: StringOrder) -> list:
    """Up to n-1 increasing points strictly inside (lo, hi) cutting it into n even pieces."""
    points: list = []
    for i in range(1, n):
        p = interpolate(lo, hi, i / n)
        prev = points[-1] if points else lo
        if strictly_between(prev, p, hi, order):
            points.append(p)
    return points


def to_json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return as_utc(v).isoformat()
    return v


def describe_value(v: Any) -> str:
    """A filter's value as messages and the summary show it: a time in RFC 3339
    (``2026-11-27T00:00:00+00:00``, not ``datetime.datetime(2026, 11, 27, ...)``), a string
    quoted, anything else as Python writes it."""
    if isinstance(v, dt.datetime):
        return to_json_value(v)
    return repr(v)


def parse_bound(v: Optional[Any]) -> Optional[Any]:
    return None if v is None else (as_utc(v) if isinstance(v, dt.datetime) else v)
