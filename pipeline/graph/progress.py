"""Progress while a run goes on, logged by the steps that read (``SliceJob``).

Beam metrics reach a local runner's launcher only at the end, so each worker process logs its
own running totals every few seconds: one line whatever the number of tenants, with counts (the
units done here, those read in one query) and the few biggest units still in flight here,
never a list of every namespace. A unit is in flight on a worker from its first slice there
until a slice of it ends its range (what this worker knows; another worker may hold more of
it).
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("pipeline.progress")

#: In-flight units named on a progress line (the biggest first).
SHOWN = 3


class Progress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_log = self._start
        self._last_total = 0
        self._total = 0
        self._in_flight: dict[str, list] = {}  # unit -> [entities read here, open range ids]
        self._done = 0  # units whose ranges read here are all done
        self._one_query = 0  # ... of which read in one query, while planning

    def add(self, unit: str, range_id: str, n: int, every: float, done: bool = False,
            one_query: bool = False) -> None:
        """A slice of range ``range_id`` of ``unit`` read ``n`` entities; ``done``: it ended
        the range; ``one_query``: it was the whole unit, read in one query while planning."""
        with self._lock:
            self._total += n
            self._count(unit, range_id, n, done, one_query)
            now = time.monotonic()
            if every <= 0 or now - self._last_log < every:
                return
            line = self._line(now)
            self._last_log, self._last_total = now, self._total
        log.info("%s", line)

    def _count(self, unit: str, range_id: str, n: int, done: bool, one_query: bool) -> None:
        if one_query:
            self._done += 1
            self._one_query += 1
            return
        entry = self._in_flight.setdefault(unit, [0, set()])
        entry[0] += n
        if done:
            entry[1].discard(range_id)
        else:
            entry[1].add(range_id)
        if not entry[1]:
            del self._in_flight[unit]
            self._done += 1

    def _line(self, now: float) -> str:
        rate = (self._total - self._last_total) / max(now - self._last_log, 1e-9)
        overall = self._total / max(now - self._start, 1e-9)
        biggest = sorted(self._in_flight.items(), key=lambda kv: (-kv[1][0], kv[0]))[:SHOWN]
        flight = ", ".join(f"{u} {c[0]}" for u, c in biggest)
        more = len(self._in_flight) - len(biggest)
        return (f"progress: {self._total} entities read by this worker ({rate:.0f}/s now, "
                f"{overall:.0f}/s overall); {self._done} units done here "
                f"({self._one_query} read in one query); {len(self._in_flight)} in flight"
                + (f": {flight}" if flight else "") + (f" and {more} more" if more > 0 else ""))


PROGRESS = Progress()
