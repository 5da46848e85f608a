"""Splitting one unit (a kind in a namespace): sample its scatter keys (or find its value
bounds) and cut ranges.

The queries live here; the cutting itself is ``pipeline.core.splitting`` (pure functions).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Optional, Union

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline.config import ReadConfig
from pipeline.core.keyorder import KeyPath, path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label
from pipeline.core.splitting import key_ranges, owner_value, range_count, value_ranges
from pipeline.core.valuerange import ValueRange
from pipeline.core.values import value_sort_key
from pipeline.datastore import retry
from pipeline.datastore.client import fetch
from pipeline.datastore.errors import explain
from pipeline.datastore.queries import base_query, value_query

log = logging.getLogger(__name__)
Restriction = Union[KeyRange, ValueRange]


OnRetry = Optional[Callable[[Exception], None]]


def sample_scatter(c: datastore.Client, read: ReadConfig, namespace: str, kind: str,
                   on_retry: OnRetry = None) -> list[KeyPath]:
    """Up to shards × oversampling scatter keys, with the query's equality filters and
    ancestor so the sample matches the data read; without them when the database
    lacks the index that combination needs."""
    limit = read.shards * read.oversampling

    def run(with_filters: bool) -> list[KeyPath]:
        q = base_query(c, read.query, namespace, kind, keys_only=True, with_filters=with_filters)
        q.order = ["__scatter__"]
        return [path_from_flat(e.key.flat_path)
                for e in fetch(q, read.retry, limit=limit, read_time=read.read_time)]

    what = f"sampling scatter keys of {kind} in namespace {namespace_label(namespace)}"
    where = read.target.describe()
    try:
        return retry.call(lambda: run(True), what, read.retry, on_retry, where)
    except gexc.FailedPrecondition as e:
        if not (read.query.equalities or read.query.ancestor):
            raise explain(e, read.query, namespace, what, kind) from None
        log.warning("namespace %s: %s with the query's filters needs an index (%s); "
                    "sampling without them", namespace_label(namespace), what, e.message)
        return retry.call(lambda: run(False), what, read.retry, on_retry, where)


# The extremes of a type in Datastore's value order: an open side of a range is capped
# there, so the bound search does not start among other types (None sorts before every
# timestamp, strings and floats after them).
_TS_MIN = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
_TS_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)


def _type_caps(given):
    if isinstance(given, dt.datetime):
        return _TS_MIN, _TS_MAX
    if isinstance(given, str):
        return "", None
    if isinstance(given, int):
        return -2 ** 63, 2 ** 63 - 1
    return None, None


def _same_type(value, given) -> bool:
    if isinstance(given, dt.datetime):
        return isinstance(value, dt.datetime)
    return type(value) is type(given)


def find_bound(c: datastore.Client, read: ReadConfig, namespace: str, kind: str,
               descending: bool, on_retry: OnRetry = None):
    """The smallest (or largest) in-range value of the range property.

    Entities are scanned in the property's order until one whose values are all of
    the bound's type: entities sorted before it may hold other types (integers sort
    among timestamps, lists mix types) and are looked at, not trusted.
    """
    r = read.query.prop_range
    given = r.lo if r.lo is not None else r.hi
    cap_lo, cap_hi = _type_caps(given)
    lo, lo_incl = (r.lo, r.lo_inclusive) if r.lo is not None else (cap_lo, True)
    hi, hi_incl = (r.hi, r.hi_inclusive) if r.hi is not None else (cap_hi, True)
    q = value_query(c, read.query, namespace, kind, r.prop, lo, lo_incl, hi, hi_incl,
                    order=[("-" if descending else "") + r.prop])
    what = (f"finding the {'largest' if descending else 'smallest'} {r.prop} of "
            f"{kind} in namespace {namespace_label(namespace)}")

    def scan():
        best, best_key = None, None
        for entity in fetch(q, read.retry, read_time=read.read_time):
            values = entity.get(r.prop)
            v = owner_value(values, r.lo, r.hi, r.lo_inclusive, r.hi_inclusive, read.order,
                            largest=descending)
            if v is None:
                continue
            k = value_sort_key(v, read.order)
            if best is None or (k > best_key if descending else k < best_key):
                best, best_key = v, k
            if all(_same_type(x, given) for x in (values if isinstance(values, list) else [values])):
                return best  # sorted at its own extreme value: nothing later goes further
        return best

    try:
        return retry.call(scan, what, read.retry, on_retry, read.target.describe())
    except gexc.GoogleAPICallError as e:
        raise explain(e, read.query, namespace, what, kind) from None


def split_unit(c: datastore.Client, read: ReadConfig, namespace: str, kind: str,
               on_retry: OnRetry = None) -> tuple[list[Restriction], int]:
    """The initial ranges of ``kind`` in ``namespace`` and how many samples they were cut from
    (``on_retry`` hears of each transient error retried on the way)."""
    samples = sample_scatter(c, read, namespace, kind, on_retry)
    r = read.query.prop_range
    if r is None:
        return key_ranges(samples, read.shards, read.oversampling, read.order), len(samples)
    lo, lo_incl, hi, hi_incl = r.lo, r.lo_inclusive, r.hi, r.hi_inclusive
    if lo is None:
        lo, lo_incl = find_bound(c, read, namespace, kind, descending=False,
                                 on_retry=on_retry), True
        if lo is None:
            return [], len(samples)
    if hi is None:
        hi, hi_incl = find_bound(c, read, namespace, kind, descending=True,
                                 on_retry=on_retry), True
        if hi is None:
            return [], len(samples)
    n = range_count(len(samples), read.shards, read.oversampling)
    return value_ranges(r.prop, lo, hi, hi_incl, n, read.order, lo_inclusive=lo_incl), len(samples)
