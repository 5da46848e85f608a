"""Read first, split only what is big: a unit's plan from its first read. Pure: no Datastore.

A unit's first query reads up to ``bound`` entities in key order. When it returns fewer, the
unit is done: one range (``#0``) read in one slice, with no scatter sample. When it returns
``bound`` of them, the unit is sampled and cut into ranges as any unit is (over the whole key
space, so the ranges are as even as before), and the entities already read are handed over as
the first slice of the ranges they fall in (``after_first_read``): the ranges wholly at or
before the last key read are done, the one holding it goes on just after that key, the later
ones are read as usual. Nothing read first is read again, whatever the sample holds (keys
written since the first read included).

Production keeps statistics per namespace and kind (``__Stat_Namespace__``,
``__Stat_Ns_Kind__``); where they say a unit is big (``known_big``), the first read's guess is
skipped and the unit is sampled at once.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from pipeline.core.keyorder import KeyPath, format_path, sort_key
from pipeline.core.keyrange import KeyRange

#: A unit is sampled at once, without a first read, when the statistics count at least this
#: many times the first read's bound: statistics are a day or two old, and a unit near the
#: bound is still most likely read in one query.
STATS_MARGIN = 2


def first_read_done(got: int, bound: int) -> bool:
    """The first query returned fewer entities than it asked for: the unit is all read."""
    return got < bound


def known_big(count: Optional[int], bound: int) -> bool:
    """The statistics' entity count says the unit will not fit a first read of ``bound``."""
    return count is not None and count >= STATS_MARGIN * bound


@dataclasses.dataclass(frozen=True)
class FirstSlice:
    """The first read's entities ``[start, stop)`` belong to range ``index``; ``rest`` is what
    is left of that range to read (None: the range is all read)."""

    index: int
    start: int
    stop: int
    rest: Optional[KeyRange] = None


@dataclasses.dataclass(frozen=True)
class AfterFirstRead:
    slices: tuple  # FirstSlice per range the first read reached, in range order
    unread: tuple  # (index, KeyRange) of the ranges it did not reach


def after_first_read(ranges: Sequence[KeyRange], paths: Sequence[KeyPath]) -> AfterFirstRead:
    """Share a full first read (``paths``: its keys, increasing, not empty) out over the
    unit's ranges (contiguous, sorted, covering the whole key space)."""
    if not paths:
        raise ValueError("a full first read holds at least one key")
    last = paths[-1]
    slices, unread = [], []
    j = 0
    for index, rng in enumerate(ranges):
        if not rng.after_start(last):
            unread.append((index, rng))  # it starts after the last key read
            continue
        start = j
        while j < len(paths) and rng.before_end(paths[j]):
            if not rng.after_start(paths[j]):
                raise ValueError(f"{format_path(paths[j])} lies before {rng.describe()}: the "
                                 "first read's keys must increase and the ranges cover them")
            j += 1
        # Holding the last key read: it goes on just after it. Ending at or before it: done.
        rest = rng.split_after(last)[1] if rng.before_end(last) else None
        slices.append(FirstSlice(index, start, j, rest))
    if j != len(paths):
        raise ValueError(f"{format_path(paths[j])} is in no range")
    return AfterFirstRead(tuple(slices), tuple(unread))


def check_increasing(paths: Sequence[KeyPath], order) -> None:
    """The backend returned keys in the order the mapper sorts them (as the trackers check)."""
    keys = [sort_key(p, order) for p in paths]
    for i in range(1, len(keys)):
        if keys[i] <= keys[i - 1]:
            raise ValueError(
                f"keys must increase: {format_path(paths[i])} after {format_path(paths[i - 1])} "
                "(does --key_order match the backend?)")
