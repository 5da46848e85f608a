"""Value ranges: restrictions for queries with an inequality filter.

Such a query must be sorted on its inequality property, so it cannot be cut by
key. It is cut on the property's value range instead and read in (value, key)
order. A cursor is only valid for the query it came from, so a range keeps the
query it was created with (``query_lo``..``query_hi``) for its whole life and
resumes from a cursor after a checkpoint; a dynamic split only moves the claim
bound ``end``, and the residual starts a query of its own.

Ownership: an entity whose list property holds several values inside the job's
range is returned by every sub-range query that holds one of them; it belongs
only to the sub-range holding its smallest in-range value (the position the
backend sorts it at), so it is read exactly once.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, NamedTuple, Optional

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from pipeline.keyorder import KeyPath, StringOrder, format_path, sort_key
from pipeline.keyrange import END
from pipeline.values import interpolate, strictly_between, to_json_value, value_sort_key


class Claim(NamedTuple):
    """A (value, key) position, and the cursor from which the entities after it are read."""

    value: Any
    key: Optional[KeyPath]  # None: before every key with this value
    cursor: Optional[bytes] = None


@dataclasses.dataclass(frozen=True)
class ValueRange:
    prop: str
    query_lo: Any  # the query that cursors belong to: query_lo <= v ...
    query_hi: Any  # ... and v < query_hi (v <= query_hi when hi_inclusive)
    hi_inclusive: bool = False
    lo_inclusive: bool = True
    start: Optional[Claim] = None  # exclusive: resume after this position, from its cursor
    end: Optional[Claim] = None  # claims stop here (None: at query_hi)
    end_inclusive: bool = False
    order: StringOrder = StringOrder.UTF8

    def pos_key(self, pos: Claim) -> tuple:
        return (value_sort_key(pos.value, self.order),
                (0,) if pos.key is None else (1, sort_key(pos.key, self.order)))

    def before_end(self, pos: Claim) -> bool:
        if self.end is None:
            return True
        a, b = self.pos_key(pos), self.pos_key(self.end)
        return a <= b if self.end_inclusive else a < b

    def at_or_past_end(self, pos: Claim) -> bool:
        return self.end is not None and self.pos_key(pos) >= self.pos_key(self.end)

    def upper_value(self) -> Any:
        return self.query_hi if self.end is None else self.end.value

    def is_empty(self) -> bool:
        if self.end is None:
            return False
        lo = self.start if self.start is not None else Claim(self.query_lo, None)
        a, b = self.pos_key(lo), self.pos_key(self.end)
        if self.start is None and self.lo_inclusive:
            return a > b or (a == b and not self.end_inclusive)
        return a >= b

    @property
    def cursor(self) -> Optional[bytes]:
        return None if self.start is None else self.start.cursor

    def describe(self) -> str:
        hi = "]" if (self.end is None and self.hi_inclusive) or self.end_inclusive else ")"
        lo = "[" if self.lo_inclusive else "("
        s = f"{self.prop} in {lo}{to_json_value(self.query_lo)!r}, {to_json_value(self.upper_value())!r}{hi}"
        if self.start is not None:
            s += f" after ({to_json_value(self.start.value)!r}, {format_path(self.start.key)})"
        return s


class ValueRangeTracker(RestrictionTracker):
    """Claims (value, key) positions in increasing order."""

    def __init__(self, restriction: ValueRange):
        self._range = restriction
        self._last_claimed: Optional[Claim] = None
        self._last_attempted: object = None
        self._claimed = 0
        self._lock = threading.Lock()

    def current_restriction(self) -> ValueRange:
        with self._lock:
            return self._range

    def try_claim(self, position) -> bool:
        with self._lock:
            if position is END:
                self._last_attempted = END
                return False
            floor = self._last_claimed or self._range.start
            if floor is not None and self._range.pos_key(position) <= self._range.pos_key(floor):
                raise ValueError(f"positions must increase: {position[:2]!r} after {floor[:2]!r}")
            self._last_attempted = position
            if not self._range.before_end(position):
                return False
            self._last_claimed = position
            self._claimed += 1
            return True

    def _done(self) -> bool:
        if self._last_attempted is END or self._range.is_empty():
            return True
        return self._last_attempted is not None and self._range.at_or_past_end(self._last_attempted)

    def try_split(self, fraction_of_remainder: float):
        """Checkpoint (fraction 0) after the last claim, or cut the unread values at a fraction."""
        with self._lock:
            if self._done():
                return None
            rng = self._range
            last = self._last_claimed
            if fraction_of_remainder <= 0:
                if last is None:
                    # Nothing claimed yet (a slice that ran out of time on entities it skips):
                    # the primary is empty, the residual is the whole range, as it was.
                    lo = rng.start if rng.start is not None else Claim(rng.query_lo, None)
                    primary = dataclasses.replace(rng, end=lo, end_inclusive=False)
                    self._range = primary
                    return primary, rng
                primary = dataclasses.replace(rng, end=last, end_inclusive=True)
                residual = dataclasses.replace(rng, start=last)
                self._range = primary
                return primary, residual
            cur = (last or rng.start or Claim(rng.query_lo, None)).value
            hi = rng.upper_value()
            point = interpolate(cur, hi, fraction_of_remainder)
            if not strictly_between(cur, point, hi, rng.order):
                return None
            cut = Claim(point, None)
            primary = dataclasses.replace(rng, end=cut, end_inclusive=False)
            if rng.end is None:
                residual = ValueRange(rng.prop, point, rng.query_hi, rng.hi_inclusive, order=rng.order)
            else:
                residual = ValueRange(rng.prop, point, rng.end.value, True, end=rng.end,
                                      end_inclusive=rng.end_inclusive, order=rng.order)
            self._range = primary
            return primary, residual

    def check_done(self) -> None:
        with self._lock:
            if not self._done():
                raise ValueError(f"value range {self._range.describe()} not fully read")

    def current_progress(self) -> RestrictionProgress:
        with self._lock:
            if self._done():
                return RestrictionProgress(completed=float(self._claimed or 1), remaining=0.0)
            return RestrictionProgress(completed=float(self._claimed), remaining=float(self._claimed + 1))

    def is_bounded(self) -> bool:
        return True
