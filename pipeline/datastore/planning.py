"""Planning one unit (a kind in a namespace): read it first, and split only what is big.

``plan_unit`` makes the queries; what they mean is ``pipeline.core.planning`` (pure):

- a key-range unit's first query reads up to ``bound`` entities in key order (the job's query:
  its filters and ancestor kept). Fewer came back: the unit is done, one range read in one
  slice, and nothing else is asked of Datastore. ``bound`` came back: the unit is sampled and
  split (``pipeline.datastore.sampling``), and the entities already read are the first slices
  of the ranges they fall in; the reading step reads only what lies after the last of them;
- a unit the statistics say is big, and a unit split on a property's values, is sampled and
  split at once (a value range has no key order to read first in).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline.config import ReadConfig
from pipeline.core.keyorder import path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label
from pipeline.core.planning import (
    FirstSlice,
    after_first_read,
    check_increasing,
    first_read_done,
    known_big,
)
from pipeline.datastore import retry
from pipeline.datastore.client import fetch
from pipeline.datastore.errors import explain
from pipeline.datastore.queries import key_range_query
from pipeline.datastore.sampling import split_unit

OnRetry = Optional[Callable[[Exception], None]]


@dataclasses.dataclass
class UnitPlan:
    """A unit's initial ranges (range ``#i`` is ``ranges[i]``), the samples they were cut from,
    the first read's entities and the ranges' first slices among them, and what is left for
    the reading step: (range index, restriction) pairs."""

    ranges: list
    samples: int
    to_read: list
    first: list = dataclasses.field(default_factory=list)
    first_slices: tuple = ()  # FirstSlice per range the first read reached
    read_first: bool = False  # a first read was made (its query is the first slice's)
    first_retries: int = 0  # transient errors retried by the first read
    retries: int = 0  # ... by the sampling and the bound searches


def read_first(c: datastore.Client, read: ReadConfig, namespace: str, kind: str, bound: int,
               on_retry: OnRetry = None) -> list:
    """Up to ``bound`` entities (or keys) of the unit, in key order: one query. A transient
    error runs it again from the start: nothing of it has been handed to the job yet."""
    q = key_range_query(c, read.query, namespace, kind, KeyRange(order=read.order),
                        read.query.keys_only)
    what = f"reading {kind} in namespace {namespace_label(namespace)} (first read)"
    try:
        return retry.call(lambda: list(fetch(q, read.retry, limit=bound,
                                             read_time=read.read_time)),
                          what, read.retry, on_retry, read.target.describe())
    except gexc.GoogleAPICallError as e:
        raise explain(e, read.query, namespace, what, kind) from None


def first_read_bound(read: ReadConfig) -> int:
    """How much a first read takes: a narrow query's worth, never more than a slice."""
    return max(1, min(read.query_entities, read.slice_entities))


def plan_unit(c: datastore.Client, read: ReadConfig, namespace: str, kind: str,
              count: Optional[int] = None) -> UnitPlan:
    """The unit's plan (``count``: its entities by the statistics, None when unknown)."""
    bound = first_read_bound(read)
    retries: list = []
    if read.query.prop_range is not None or known_big(count, bound):
        ranges, samples = split_unit(c, read, namespace, kind, on_retry=retries.append)
        return UnitPlan(ranges, samples, list(enumerate(ranges)), retries=len(retries))
    first_retries: list = []
    first = read_first(c, read, namespace, kind, bound, first_retries.append)
    if first_read_done(len(first), bound):
        return UnitPlan([KeyRange(order=read.order)], 0, [], first,
                        (FirstSlice(0, 0, len(first)),), True, len(first_retries))
    paths = [path_from_flat(e.key.flat_path) for e in first]
    check_increasing(paths, read.order)
    ranges, samples = split_unit(c, read, namespace, kind, on_retry=retries.append)
    after = after_first_read(ranges, paths)
    to_read = sorted([(s.index, s.rest) for s in after.slices if s.rest is not None]
                     + list(after.unread), key=lambda pair: pair[0])
    return UnitPlan(ranges, samples, to_read, first, after.slices, True, len(first_retries),
                    len(retries))
