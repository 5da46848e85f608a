"""Progress while a run goes on, logged by the reading DoFns themselves.

Beam metrics reach a local runner's launcher only at the end, so each worker
process logs its own running totals every few seconds.
"""
from __future__ import annotations

import logging
import threading
import time

from pipeline.core.namespaces import namespace_label

log = logging.getLogger("pipeline.progress")


class Progress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._start = time.monotonic()
        self._last_log = self._start
        self._last_total = 0

    def add(self, namespace: str, n: int, every: float) -> None:
        with self._lock:
            self._done[namespace] = self._done.get(namespace, 0) + n
            now = time.monotonic()
            if every <= 0 or now - self._last_log < every:
                return
            total = sum(self._done.values())
            rate = (total - self._last_total) / (now - self._last_log)
            parts = ", ".join(f"{namespace_label(ns)}: {c}" for ns, c in sorted(self._done.items()))
            self._last_log, self._last_total = now, total
        log.info("progress: %d entities read by this worker (%.0f/s now, %.0f/s overall); %s",
                 total, rate, total / max(now - self._start, 1e-9), parts)


PROGRESS = Progress()
