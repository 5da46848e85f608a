"""Named counts with a cap on distinct names, as a job's counters and their roll-ups keep them.

A counter per parent key (say) could otherwise exhaust a worker's memory: names past the cap are
not kept, and their counts are summed under ``_overflow`` instead. One rule for the counters a
job increments and for every level they are rolled up to.
"""
from __future__ import annotations

OVERFLOW_COUNTER = "_overflow"


def add_count(into: dict, name: str, n: int, cap: int) -> None:
    """``into[name] += n``; a new name past ``cap`` distinct names goes to ``_overflow``."""
    if name in into:
        into[name] += n
    elif len(into) < cap or name == OVERFLOW_COUNTER:
        into[name] = n
    else:
        into[OVERFLOW_COUNTER] = into.get(OVERFLOW_COUNTER, 0) + n


def merge_counters(into: dict, other: dict, cap: int) -> dict:
    """Add ``other`` into ``into``, under the same cap; returns ``into``."""
    for name, n in other.items():
        add_count(into, name, n, cap)
    return into
