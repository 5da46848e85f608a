"""Key ranges: the restriction of the reading splittable DoFn, and its tracker.

A range is a half-open interval of key paths in the backend's ``__key__`` order,
plus the scatter samples that fall strictly inside it. The samples are real keys
spread like the data, so a dynamic split (``try_split``) cuts at a sample: the
split point is a key that exists and the two halves hold similar amounts of
data, with no key arithmetic that could disagree with the backend.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Optional

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker

from pipeline.keyorder import KeyPath, StringOrder, format_path, sort_key


@dataclasses.dataclass(frozen=True)
class KeyRange:
    """Keys k with start <(=) k <(=) end; a None bound is open."""

    start: Optional[KeyPath] = None
    end: Optional[KeyPath] = None
    start_inclusive: bool = True
    end_inclusive: bool = False
    #: scatter samples strictly inside the range, sorted: candidate split points.
    samples: tuple = ()
    order: StringOrder = StringOrder.UTF8

    def _k(self, path: KeyPath) -> tuple:
        return sort_key(path, self.order)

    def after_start(self, path: KeyPath) -> bool:
        if self.start is None:
            return True
        a, b = self._k(path), self._k(self.start)
        return a >= b if self.start_inclusive else a > b

    def before_end(self, path: KeyPath) -> bool:
        if self.end is None:
            return True
        a, b = self._k(path), self._k(self.end)
        return a <= b if self.end_inclusive else a < b

    def at_or_past_end(self, path: KeyPath) -> bool:
        """Nothing of the range is left after a claim attempt at ``path``."""
        return self.end is not None and self._k(path) >= self._k(self.end)

    def contains(self, path: KeyPath) -> bool:
        return self.after_start(path) and self.before_end(path)

    def is_empty(self) -> bool:
        if self.start is None or self.end is None:
            return False
        a, b = self._k(self.start), self._k(self.end)
        return a > b or (a == b and not (self.start_inclusive and self.end_inclusive))

    def split_at(self, point: KeyPath) -> tuple["KeyRange", "KeyRange"]:
        """[start, point) and [point, end), the samples shared out."""
        below = tuple(s for s in self.samples if self._k(s) < self._k(point))
        above = tuple(s for s in self.samples if self._k(s) > self._k(point))
        return (
            dataclasses.replace(self, end=point, end_inclusive=False, samples=below),
            dataclasses.replace(self, start=point, start_inclusive=True, samples=above),
        )

    def split_after(self, point: KeyPath) -> tuple["KeyRange", "KeyRange"]:
        """[start, point] and (point, end): a checkpoint after a claimed key."""
        below = tuple(s for s in self.samples if self._k(s) < self._k(point))
        above = tuple(s for s in self.samples if self._k(s) > self._k(point))
        return (
            dataclasses.replace(self, end=point, end_inclusive=True, samples=below),
            dataclasses.replace(self, start=point, start_inclusive=False, samples=above),
        )

    def describe(self) -> str:
        lo = "[" if self.start_inclusive else "("
        hi = "]" if self.end_inclusive else ")"
        return f"{lo}{format_path(self.start)}, {format_path(self.end)}{hi}"


class _End:
    """Claimed when the reader has exhausted its query: the range is done."""

    def __repr__(self) -> str:
        return "END"

    def __reduce__(self):
        return (_end, ())


def _end() -> "_End":
    return END


END = _End()


def choose_sample(candidates: tuple, fraction: float) -> Optional[KeyPath]:
    """The sample that leaves about ``fraction`` of the remaining samples' gaps below it."""
    if not candidates:
        return None
    idx = round(fraction * (len(candidates) + 1)) - 1
    return candidates[min(max(idx, 0), len(candidates) - 1)]


class KeyRangeTracker(RestrictionTracker):
    """Claims keys in increasing order; splits at checkpoints and at samples."""

    def __init__(self, restriction: KeyRange):
        self._last_claimed: Optional[KeyPath] = None
        self._last_key: Optional[tuple] = None  # sort key of the last claim: claims are per entity
        self._last_attempted: object = None
        self._claimed = 0
        self._lock = threading.Lock()
        self._set_range(restriction)

    def _set_range(self, rng: KeyRange) -> None:
        self._range = rng
        self._start_key = None if rng.start is None else sort_key(rng.start, rng.order)
        self._end_key = None if rng.end is None else sort_key(rng.end, rng.order)

    def current_restriction(self) -> KeyRange:
        with self._lock:
            return self._range

    @property
    def last_claimed(self) -> Optional[KeyPath]:
        return self._last_claimed

    def try_claim(self, position) -> bool:
        with self._lock:
            if position is END:
                self._last_attempted = END
                return False
            rng = self._range
            k = sort_key(position, rng.order)
            if self._last_key is not None and k <= self._last_key:
                raise ValueError(
                    f"keys must be claimed in increasing order: {format_path(position)} after "
                    f"{format_path(self._last_claimed)}")
            start = self._start_key
            if start is not None and (k < start or (k == start and not rng.start_inclusive)):
                raise ValueError(f"{format_path(position)} lies before {rng.describe()}")
            self._last_attempted = position
            end = self._end_key
            if end is not None and (k > end or (k == end and not rng.end_inclusive)):
                return False
            self._last_claimed, self._last_key = position, k
            self._claimed += 1
            return True

    def _done(self) -> bool:
        if self._last_attempted is END or self._range.is_empty():
            return True
        return self._last_attempted is not None and self._range.at_or_past_end(self._last_attempted)

    def try_split(self, fraction_of_remainder: float):
        with self._lock:
            if self._done():
                return None
            rng = self._range
            if fraction_of_remainder <= 0:
                if self._last_claimed is None:
                    # Nothing read yet: everything is the residual.
                    primary = dataclasses.replace(
                        rng, end=rng.start, end_inclusive=False, samples=())
                    if rng.start is None:
                        return None  # an open start cannot be made empty; runner resumes later
                    self._set_range(primary)
                    return primary, rng
                primary, residual = rng.split_after(self._last_claimed)
            else:
                floor = self._last_claimed
                candidates = tuple(
                    s for s in rng.samples
                    if floor is None or sort_key(s, rng.order) > sort_key(floor, rng.order))
                point = choose_sample(candidates, fraction_of_remainder)
                if point is None or not rng.contains(point) or (
                        rng.start is not None and point == rng.start):
                    return None
                primary, residual = rng.split_at(point)
            if residual.is_empty():
                return None
            self._set_range(primary)
            return primary, residual

    def check_done(self) -> None:
        with self._lock:
            if not self._done():
                raise ValueError(
                    f"key range {self._range.describe()} not fully read: last claimed "
                    f"{format_path(self._last_claimed)}")

    def current_progress(self) -> RestrictionProgress:
        with self._lock:
            rng, last = self._range, self._last_claimed
            if self._done():
                return RestrictionProgress(completed=float(self._claimed or 1), remaining=0.0)
            if last is None:
                done = 0
            else:
                done = sum(1 for s in rng.samples if sort_key(s, rng.order) <= sort_key(last, rng.order))
            # Each sample stands for about as many entities as the gaps between them.
            return RestrictionProgress(completed=float(done), remaining=float(len(rng.samples) - done + 1))

    def is_bounded(self) -> bool:
        return True
