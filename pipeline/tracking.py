"""What key and value range trackers share: claims in increasing order, END, done-ness.

A subclass says how a position sorts (``_key``), what its range's bounds are
(``_bounds``) and how to split (``_split``); claims, checkpoints' bookkeeping,
``check_done`` and progress are the same for both.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker


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
