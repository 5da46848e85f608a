"""Whether an entity (its current version) still matches a query's filters, as Datastore
would match it: a transactional delete re-checks this on the version it looked up, so an
entity changed since the read so that it no longer matches is not deleted.

Datastore's rules: a filter on a list property matches when any of its values does; values of
different types never compare equal (an integer filter does not match a float); a range
compares values of the bound's type only. Pure.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

from pipeline.core.values import UnsupportedValue, value_sort_key

_MISSING = object()


def _values(props: Mapping[str, Any], name: str) -> list:
    v = props.get(name, _MISSING)
    if v is _MISSING:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _same_type(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int) and isinstance(b, int):
        return True
    return type(a) is type(b) or (hasattr(a, "tzinfo") and hasattr(b, "tzinfo"))


def _equal(a: Any, b: Any) -> bool:
    if not _same_type(a, b):
        return False
    if hasattr(a, "tzinfo") and hasattr(b, "tzinfo"):
        return value_sort_key(a) == value_sort_key(b)
    return a == b


def _in_range(v: Any, r) -> bool:
    bound = r.lo if r.lo is not None else r.hi
    if not _same_type(v, bound):
        return False
    try:
        key = value_sort_key(v)
        if r.lo is not None:
            lo = value_sort_key(r.lo)
            if key < lo or (key == lo and not r.lo_inclusive):
                return False
        if r.hi is not None:
            hi = value_sort_key(r.hi)
            if key > hi or (key == hi and not r.hi_inclusive):
                return False
    except UnsupportedValue:
        return False
    return True


def matches(props: Mapping[str, Any], equalities: Sequence[Tuple[str, Any]],
            prop_range: Optional[Any] = None) -> bool:
    """``props`` (an entity) matches every equality and the range (``PropertyRange``)."""
    for name, wanted in equalities:
        if not any(_equal(v, wanted) for v in _values(props, name)):
            return False
    if prop_range is not None:
        if not any(_in_range(v, prop_range) for v in _values(props, prop_range.prop)):
            return False
    return True
