"""The queries the mapper runs, built from plain data (a resolved query, key paths, value ranges).

Every query of a run is one of three shapes: one kind in one namespace with the job's equality
filters and ancestor (``base_query``), plus a key range sorted by key (``key_range_query``), or
plus a range of one property's values sorted by that property (``value_query``,
``value_range_query``). A job reading several kinds runs them kind by kind, never kindless.
"""
from __future__ import annotations

from typing import Any, Sequence

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from pipeline.api.query import ResolvedQuery
from pipeline.core.keyrange import KeyRange
from pipeline.core.valuerange import ValueRange
from pipeline.datastore.client import key_of


def base_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, kind: str, *,
               keys_only: bool, with_filters: bool = True) -> datastore.Query:
    """One kind in one namespace, with the job's equality filters and ancestor (unless
    ``with_filters`` is false: a sample without them, when an index is missing)."""
    q = c.query(kind=kind, namespace=namespace or None)
    if with_filters:
        for prop, value in rq.equalities:
            q.add_filter(filter=PropertyFilter(prop, "=", value))
        if rq.ancestor:
            q.ancestor = key_of(c, rq.ancestor, namespace)
    if keys_only:
        q.keys_only()
    return q


def key_range_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, kind: str,
                    rng: KeyRange, keys_only: bool) -> datastore.Query:
    """The entities (or keys) of a key range, in key order."""
    q = base_query(c, rq, namespace, kind, keys_only=keys_only)
    if rng.start is not None:
        q.add_filter(filter=PropertyFilter("__key__", ">=" if rng.start_inclusive else ">",
                                           key_of(c, rng.start, namespace)))
    if rng.end is not None:
        q.add_filter(filter=PropertyFilter("__key__", "<=" if rng.end_inclusive else "<",
                                           key_of(c, rng.end, namespace)))
    q.order = ["__key__"]
    return q


def value_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, kind: str, prop: str,
                lo: Any, lo_inclusive: bool, hi: Any, hi_inclusive: bool,
                order: Sequence[str]) -> datastore.Query:
    """Full entities whose ``prop`` has a value in [lo, hi] (each side inclusive or not; a
    None side open), sorted by ``order``. Always full entities: an entity's other values
    decide which range owns it."""
    q = base_query(c, rq, namespace, kind, keys_only=False)
    if lo is not None:
        q.add_filter(filter=PropertyFilter(prop, ">=" if lo_inclusive else ">", lo))
    if hi is not None:
        q.add_filter(filter=PropertyFilter(prop, "<=" if hi_inclusive else "<", hi))
    q.order = list(order)
    return q


def value_range_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, kind: str,
                      rng: ValueRange) -> datastore.Query:
    """A value range's fixed query (its cursors belong to it), sorted by (value, key)."""
    return value_query(c, rq, namespace, kind, rng.prop, rng.query_lo, rng.lo_inclusive,
                       rng.query_hi, rng.hi_inclusive, order=(rng.prop, "__key__"))
