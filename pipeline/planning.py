"""Per namespace: sample scatter keys (or find the value bounds) and cut ranges."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Union

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline import datastore_io as dio
from pipeline.keyorder import KeyPath, path_from_flat
from pipeline.keyrange import KeyRange
from pipeline.plan import RunPlan
from pipeline.splitting import key_ranges, owner_value, range_count, value_ranges
from pipeline.valuerange import ValueRange
from pipeline.values import value_sort_key

log = logging.getLogger(__name__)
Restriction = Union[KeyRange, ValueRange]


def sample_scatter(c: datastore.Client, plan: RunPlan, namespace: str) -> list[KeyPath]:
    """Up to shards × oversampling scatter keys, with the query's equality filters and
    ancestor so the sample matches the data read; without them when the database
    lacks the index that combination needs."""
    limit = plan.shards * plan.oversampling

    def run(with_filters: bool) -> list[KeyPath]:
        q = dio.base_query(c, plan.query, namespace, keys_only=True, with_filters=with_filters)
        q.order = ["__scatter__"]
        return [path_from_flat(e.key.flat_path)
                for e in dio.fetch(q, limit=limit, read_time=plan.read_time)]

    what = f"sampling scatter keys of {plan.query.kind}"
    try:
        return dio.with_retries(lambda: run(True), what)
    except gexc.FailedPrecondition as e:
        if not (plan.query.equalities or plan.query.ancestor):
            raise dio.explain(e, plan.query, namespace, what) from None
        log.warning("namespace %r: %s with the query's filters needs an index (%s); "
                    "sampling without them", namespace, what, e.message)
        return dio.with_retries(lambda: run(False), what)


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


def _bound(c: datastore.Client, plan: RunPlan, namespace: str, descending: bool):
    """The smallest (or largest) in-range value of the range property.

    Entities are scanned in the property's order until one whose values are all of
    the bound's type: entities sorted before it may hold other types (integers sort
    among timestamps, lists mix types) and are looked at, not trusted.
    """
    r = plan.query.prop_range
    given = r.lo if r.lo is not None else r.hi
    cap_lo, cap_hi = _type_caps(given)
    q = dio.base_query(c, plan.query, namespace, keys_only=False)
    PF = datastore.query.PropertyFilter
    if r.lo is not None:
        q.add_filter(filter=PF(r.prop, ">=" if r.lo_inclusive else ">", r.lo))
    elif cap_lo is not None:
        q.add_filter(filter=PF(r.prop, ">=", cap_lo))
    if r.hi is not None:
        q.add_filter(filter=PF(r.prop, "<=" if r.hi_inclusive else "<", r.hi))
    elif cap_hi is not None:
        q.add_filter(filter=PF(r.prop, "<=", cap_hi))
    q.order = [("-" if descending else "") + r.prop]
    what = f"finding the {'largest' if descending else 'smallest'} {r.prop} of {plan.query.kind}"

    def scan():
        best, best_key = None, None
        for entity in dio.fetch(q, read_time=plan.read_time):
            values = entity.get(r.prop)
            v = owner_value(values, r.lo, r.hi, r.lo_inclusive, r.hi_inclusive, plan.order,
                            largest=descending)
            if v is None:
                continue
            k = value_sort_key(v, plan.order)
            if best is None or (k > best_key if descending else k < best_key):
                best, best_key = v, k
            if all(_same_type(x, given) for x in (values if isinstance(values, list) else [values])):
                return best  # sorted at its own extreme value: nothing later goes further
        return best

    try:
        return dio.with_retries(scan, what)
    except gexc.GoogleAPICallError as e:
        raise dio.explain(e, plan.query, namespace, what) from None


def plan_namespace(c: datastore.Client, plan: RunPlan, namespace: str) -> tuple[list[Restriction], int]:
    """The namespace's ranges and how many samples they were cut from."""
    samples = sample_scatter(c, plan, namespace)
    r = plan.query.prop_range
    if r is None:
        return key_ranges(samples, plan.shards, plan.oversampling, plan.order), len(samples)
    lo, lo_incl, hi, hi_incl = r.lo, r.lo_inclusive, r.hi, r.hi_inclusive
    if lo is None:
        lo, lo_incl = _bound(c, plan, namespace, descending=False), True
        if lo is None:
            return [], len(samples)
    if hi is None:
        hi, hi_incl = _bound(c, plan, namespace, descending=True), True
        if hi is None:
            return [], len(samples)
    n = range_count(len(samples), plan.shards, plan.oversampling)
    return value_ranges(r.prop, lo, hi, hi_incl, n, plan.order, lo_inclusive=lo_incl), len(samples)
