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
from typing import Any, NamedTuple, Optional

from pipeline.core.keyorder import KeyPath, StringOrder, format_path, sort_key
from pipeline.core.values import to_json_value, value_sort_key


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
