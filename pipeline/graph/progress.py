"""Progress while a run goes on, from the steps themselves.

Three ways out, for three audiences:

- **The progress channel** (local runs): the launcher gives the run a private directory
  (``OutputConfig.progress_dir``); each worker process appends its events
  (``pipeline.core.progress``) as JSON lines to a file of its own there, and the launcher
  folds every file into the job-wide view. A line per slice, a line per unit planned, and
  at most one line a second for a slice still going: nothing on the read path per entity.
  Beam's metrics reach a local launcher only at the end, and ``p.run()`` blocks, so this is
  the way a local run is watched.
- **Beam counters** (``datastore_mapper.JOB.progress``): the same figures, for Dataflow's
  console and ``--wait``.
- **A worker's log line** every ``--progress_seconds``, when there is no channel (Dataflow's
  worker logs): one line whatever the number of tenants, with counts (the units done here,
  those read in one query) and the few biggest units still in flight here, never a list of
  every namespace.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Optional

from apache_beam.metrics import Metrics

from pipeline.core.writes import WRITTEN

#: The prefix of the write counters (``writes.put``, ...).
WRITES_PREFIX = "writes."

log = logging.getLogger("pipeline.progress")

#: The metric namespace of the progress counters, after the job's own.
PROGRESS_METRICS = "progress"
#: How often a slice still going reports (seconds).
READING_EVERY = 1.0


def progress_metrics_namespace(job_metrics_namespace: str) -> str:
    return f"{job_metrics_namespace}.{PROGRESS_METRICS}"


class ProgressCounters:
    """The Beam counters of progress (namespaces, units, ranges, sample gaps planned and
    read), for Dataflow's console and ``--wait``."""

    def __init__(self, job_metrics_namespace: str):
        self.ns = progress_metrics_namespace(job_metrics_namespace)
        self._counters: dict = {}

    def inc(self, name: str, n: float = 1) -> None:
        c = self._counters.get(name)
        if c is None:
            c = self._counters[name] = Metrics.counter(self.ns, name)
        c.inc(int(round(n)))


class Channel:
    """This process's events file in the progress directory (one per process and
    directory; appends are whole lines, under a lock)."""

    _lock = threading.Lock()
    _files: dict = {}  # directory -> file object

    def __init__(self, directory: Optional[str]):
        self.directory = directory

    def emit(self, event: dict) -> None:
        if not self.directory:
            return
        line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            f = self._files.get(self.directory)
            try:
                if f is None:
                    path = os.path.join(self.directory, f"events-{os.getpid()}.jsonl")
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                                 0o600)
                    f = self._files[self.directory] = os.fdopen(fd, "ab", buffering=0)
                f.write(line)
            except OSError as e:  # the launcher went away, or the directory with it
                log.debug("progress channel %s: %s", self.directory, e)
                self.directory = None


def worker_id() -> str:
    return f"{os.getpid()}:{threading.get_ident()}"


class SliceReporter:
    """A slice's progress: a ``reading`` event at most every second while it goes on (called
    every few hundred entities), its ``slice`` event at the end."""

    def __init__(self, channel: Channel, unit: str, namespace: str, range_id: str):
        self.channel, self.unit, self.namespace, self.range_id = (channel, unit, namespace,
                                                                  range_id)
        self.worker = worker_id()
        self._last = time.monotonic()

    def reading(self, entities: int, counters: Optional[dict] = None) -> None:
        """``counters``: the slice's counters so far, for a job that writes (its writes)."""
        now = time.monotonic()
        if now - self._last >= READING_EVERY:
            self._last = now
            event = {"e": "reading", "w": self.worker, "entities": entities}
            if counters is not None:
                event["written"] = sum(counters.get(n, 0) for n in WRITTEN)
            self.channel.emit(event)

    def done(self, entities: int, records: int, errors: int, retries: int, gaps: float,
             range_done: bool, counters: Optional[dict] = None) -> None:
        event = {"e": "slice", "w": self.worker, "unit": self.unit, "ns": self.namespace,
                 "range": self.range_id, "entities": entities, "records": records,
                 "errors": errors, "retries": retries, "gaps": round(gaps, 3),
                 "range_done": range_done}
        if counters is not None:
            event["writes"] = write_counts(counters)
        self.channel.emit(event)


def write_counts(counters: dict) -> dict:
    """A slice's ``writes.*`` counters, without the prefix, those not zero."""
    return {name[len(WRITES_PREFIX):]: n for name, n in counters.items()
            if name.startswith(WRITES_PREFIX) and n}


#: In-flight units named on a worker's progress line (the biggest first).
SHOWN = 3


class WorkerLog:
    """A worker's own running totals, logged every ``--progress_seconds`` (runs without a
    progress channel: Dataflow's worker logs)."""

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


WORKER_LOG = WorkerLog()
