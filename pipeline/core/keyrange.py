"""Key ranges: the restriction of the reading splittable DoFn (its tracker is
``pipeline.graph.trackers.KeyRangeTracker``).

A range is a half-open interval of key paths in the backend's ``__key__`` order,
plus the scatter samples that fall strictly inside it. The samples are real keys
spread like the data, so a dynamic split (``try_split``) cuts at a sample: the
split point is a key that exists and the two halves hold similar amounts of
data, with no key arithmetic that could disagree with the backend.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from pipeline.core.keyorder import KeyPath, StringOrder, format_path, sort_key


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


def choose_sample(candidates: tuple, fraction: float) -> Optional[KeyPath]:
    """The sample that leaves about ``fraction`` of the remaining samples' gaps below it."""
    if not candidates:
        return None
    idx = round(fraction * (len(candidates) + 1)) - 1
    return candidates[min(max(idx, 0), len(candidates) - 1)]
