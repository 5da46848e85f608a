"""The reading splittable DoFn's restriction trackers: key ranges and value ranges.

Both claim positions in increasing order and finish with ``END`` (claimed when the reader has
exhausted its query). ``OrderedRangeTracker`` holds what they share (claims, checkpoints'
bookkeeping, ``check_done``, progress); a subclass says how a position sorts (``_key``), what
its range's bounds are (``_bounds``) and how to split (``_split``):

- ``KeyRangeTracker`` splits at checkpoints and at the range's scatter samples (real keys spread
  like the data, so both halves hold similar work);
- ``ValueRangeTracker`` splits at checkpoints and at an interpolated value.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Optional

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from pipeline.core.keyorder import KeyPath, format_path, sort_key
from pipeline.core.keyrange import KeyRange, choose_sample
from pipeline.core.valuerange import Claim, ValueRange
from pipeline.core.values import interpolate, strictly_between, to_json_value


class _End:
    """Claimed when the reader has exhausted its query: the range is done."""

    def __repr__(self) -> str:
        return "END"

    def __reduce__(self):
        return (_end, ())


def _end() -> "_End":
    return END


END = _End()


class OrderedRangeTracker(RestrictionTracker):
    """Claims positions in increasing order inside [start, end]; END finishes the range."""

    def __init__(self, restriction: Any):
        self._lock = threading.Lock()
        self._last_claimed: Any = None
        self._last_key: Optional[tuple] = None  # claims come per entity: sort each position once
        self._last_attempted: Any = None
        self._last_attempted_key: Optional[tuple] = None
        self._claimed = 0
        self._set_range(restriction)

    # -- what a subclass provides ------------------------------------------------------------
    def _key(self, position: Any) -> tuple:
        raise NotImplementedError

    def _bounds(self, rng: Any) -> tuple:
        """(start key or None, start inclusive, end key or None, end inclusive)."""
        raise NotImplementedError

    def _split(self, fraction: float) -> Optional[tuple]:
        """(primary, residual) of the current range, or None; called under the lock."""
        raise NotImplementedError

    def _format(self, position: Any) -> str:
        return repr(position)

    # -- shared ------------------------------------------------------------------------------
    def _set_range(self, rng: Any) -> None:
        self._range = rng
        self._start_key, self._start_incl, self._end_key, self._end_incl = self._bounds(rng)

    def current_restriction(self) -> Any:
        with self._lock:
            return self._range

    def try_claim(self, position: Any) -> bool:
        with self._lock:
            if position is END:
                self._last_attempted = END
                return False
            k = self._key(position)
            if self._last_key is not None and k <= self._last_key:
                raise ValueError(
                    f"claims must increase: {self._format(position)} after "
                    f"{self._format(self._last_claimed)} (keys must be claimed in increasing "
                    "order: does --key_order match the backend?)")
            start = self._start_key
            if start is not None and (k < start or (k == start and not self._start_incl)):
                raise ValueError(f"{self._format(position)} lies before the start of "
                                 f"{self._range.describe()}: claims must increase")
            self._last_attempted, self._last_attempted_key = position, k
            end = self._end_key
            if end is not None and (k > end or (k == end and not self._end_incl)):
                return False
            self._last_claimed, self._last_key = position, k
            self._claimed += 1
            return True

    def _done(self) -> bool:
        if self._last_attempted is END or self._range.is_empty():
            return True
        k = self._last_attempted_key
        return k is not None and self._end_key is not None and k >= self._end_key

    def try_split(self, fraction_of_remainder: float):
        with self._lock:
            if self._done():
                return None
            split = self._split(fraction_of_remainder)
            if split is None or split[1].is_empty():
                return None
            self._set_range(split[0])
            return split

    def check_done(self) -> None:
        with self._lock:
            if not self._done():
                raise ValueError(f"{self._range.describe()} not fully read: last claimed "
                                 f"{self._format(self._last_claimed)}")

    def _remaining_work(self) -> tuple:
        """(completed, remaining) while not done; by claims unless a subclass knows better."""
        return float(self._claimed), float(self._claimed + 1)

    def current_progress(self) -> RestrictionProgress:
        with self._lock:
            if self._done():
                return RestrictionProgress(completed=float(self._claimed or 1), remaining=0.0)
            completed, remaining = self._remaining_work()
            return RestrictionProgress(completed=completed, remaining=remaining)

    def is_bounded(self) -> bool:
        return True


class KeyRangeTracker(OrderedRangeTracker):
    """Claims keys in increasing order; splits at checkpoints and at samples."""

    def _key(self, path: KeyPath) -> tuple:
        return sort_key(path, self._range.order)

    def _bounds(self, rng: KeyRange) -> tuple:
        return (None if rng.start is None else sort_key(rng.start, rng.order), rng.start_inclusive,
                None if rng.end is None else sort_key(rng.end, rng.order), rng.end_inclusive)

    def _format(self, path) -> str:
        return format_path(path)

    @property
    def last_claimed(self) -> Optional[KeyPath]:
        return self._last_claimed

    def _split(self, fraction: float):
        rng, last = self._range, self._last_claimed
        if fraction <= 0:
            if last is not None:
                return rng.split_after(last)
            if rng.start is None:
                return None  # nothing read and an open start: no empty primary to give
            # Nothing read yet: an empty primary, everything as the residual.
            return dataclasses.replace(rng, end=rng.start, end_inclusive=False, samples=()), rng
        candidates = rng.samples if last is None else tuple(
            s for s in rng.samples if sort_key(s, rng.order) > self._last_key)
        point = choose_sample(candidates, fraction)
        if point is None or not rng.contains(point) or point == rng.start:
            return None
        return rng.split_at(point)

    def _remaining_work(self) -> tuple:
        # Samples are spread like the data: each stands for a similar number of entities.
        rng = self._range
        done = 0 if self._last_key is None else sum(
            1 for s in rng.samples if sort_key(s, rng.order) <= self._last_key)
        return float(done), float(len(rng.samples) - done + 1)


class ValueRangeTracker(OrderedRangeTracker):
    """Claims (value, key) positions in increasing order."""

    def _key(self, position: Claim) -> tuple:
        return self._range.pos_key(position)

    def _bounds(self, rng: ValueRange) -> tuple:
        # The start is the last position claimed before a checkpoint: exclusive.
        return (None if rng.start is None else rng.pos_key(rng.start), False,
                None if rng.end is None else rng.pos_key(rng.end), rng.end_inclusive)

    def _format(self, position) -> str:
        if position is None:
            return "-"
        return f"({to_json_value(position.value)!r}, {format_path(position.key)})"

    def _split(self, fraction: float):
        """Checkpoint (fraction 0) after the last claim, or cut the unread values at a fraction."""
        rng, last = self._range, self._last_claimed
        if fraction <= 0:
            if last is None:
                # Nothing claimed yet (a slice that ran out of time on entities it skips):
                # the primary is empty, the residual is the whole range, as it was.
                lo = rng.start if rng.start is not None else Claim(rng.query_lo, None)
                return dataclasses.replace(rng, end=lo, end_inclusive=False), rng
            return (dataclasses.replace(rng, end=last, end_inclusive=True),
                    dataclasses.replace(rng, start=last))
        cur = (last or rng.start or Claim(rng.query_lo, None)).value
        hi = rng.upper_value()
        point = interpolate(cur, hi, fraction)
        if not strictly_between(cur, point, hi, rng.order):
            return None
        primary = dataclasses.replace(rng, end=Claim(point, None), end_inclusive=False)
        if rng.end is None:
            residual = ValueRange(rng.prop, point, rng.query_hi, rng.hi_inclusive, order=rng.order)
        else:
            residual = ValueRange(rng.prop, point, rng.end.value, True, end=rng.end,
                                  end_inclusive=rng.end_inclusive, order=rng.order)
        return primary, residual
