"""Cutting a namespace into ranges: pure functions, unit tested without Datastore.

Key splitting follows the Go mapper: sample ``shards × oversampling`` scatter
keys, sort them in the backend's key order, cut at even quantiles, and give a
namespace with few samples fewer ranges.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from pipeline.core.keyorder import KeyPath, StringOrder, sorted_paths
from pipeline.core.keyrange import KeyRange
from pipeline.core.valuerange import ValueRange
from pipeline.core.values import UnsupportedValue, split_points, value_sort_key


def range_count(samples: int, shards: int, oversampling: int) -> int:
    """min(shards, max(1, samples // oversampling)): small namespaces get fewer ranges."""
    return min(shards, max(1, samples // oversampling))


def quantile_cuts(sorted_samples: Sequence[KeyPath], n: int) -> list[KeyPath]:
    """The n-1 split points keys[floor(i·len/n)], without repeats."""
    cuts: list[KeyPath] = []
    for i in range(1, n):
        point = sorted_samples[(i * len(sorted_samples)) // n]
        if not cuts or cuts[-1] != point:
            cuts.append(point)
    return cuts


def key_ranges(samples: Sequence[KeyPath], shards: int, oversampling: int,
               order: StringOrder, start: Optional[KeyPath] = None,
               end: Optional[KeyPath] = None) -> list[KeyRange]:
    """Contiguous ranges covering [start, end) (open bounds: the whole key space).

    Every sample lands in the range that holds it (a split point opens the next
    range), so ranges keep the samples they can later be split at.
    """
    ordered = sorted_paths(samples, order)
    n = range_count(len(ordered), shards, oversampling)
    cuts = quantile_cuts(ordered, n) if ordered else []
    bounds = [start, *cuts, end]
    ranges = []
    for lo, hi in zip(bounds, bounds[1:]):
        rng = KeyRange(start=lo, end=hi, order=order)
        inside = tuple(s for s in ordered if rng.contains(s) and s != lo)
        ranges.append(KeyRange(start=lo, end=hi, samples=inside, order=order))
    return ranges


def value_ranges(prop: str, lo: Any, hi: Any, hi_inclusive: bool, n: int,
                 order: StringOrder, lo_inclusive: bool = True) -> list[ValueRange]:
    """n (or fewer, where values cannot be told apart) contiguous ranges over [lo, hi)."""
    points = split_points(lo, hi, n, order) if n > 1 else []
    bounds = [lo, *points, hi]
    ranges = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        last = i == len(bounds) - 2
        ranges.append(ValueRange(prop=prop, query_lo=a, query_hi=b,
                                 hi_inclusive=hi_inclusive if last else False,
                                 lo_inclusive=lo_inclusive if i == 0 else True, order=order))
    return ranges


def owner_value(values: Any, lo: Any, hi: Any, lo_inclusive: bool, hi_inclusive: bool,
                order: StringOrder, largest: bool = False) -> Any:
    """The smallest (or largest) of an entity's values inside the job's range.

    None when no value is inside. Bounds may be None (open). Values of another
    type than the bounds are ignored.
    """
    candidates = values if isinstance(values, list) else [values]
    best = None
    best_key = None
    for v in candidates:
        try:
            k = value_sort_key(v, order)
        except UnsupportedValue:
            continue
        if lo is not None:
            lk = value_sort_key(lo, order)
            if k < lk or (k == lk and not lo_inclusive) or k[0] != lk[0]:
                continue
        if hi is not None:
            hk = value_sort_key(hi, order)
            if k > hk or (k == hk and not hi_inclusive) or k[0] != hk[0]:
                continue
        if best_key is None or (k > best_key if largest else k < best_key):
            best, best_key = v, k
    return best


__all__ = ["range_count", "quantile_cuts", "key_ranges", "value_ranges", "owner_value"]
