"""Writing back, the pure parts: how mutations are batched, how fast they may go (the ramp-up
and a token bucket, on an injectable clock), the counters every mutation is counted in, and
what a batch that meets contention does (retried, then halved): the job's writer and restore
share them.

Nothing here talks to Datastore (``pipeline.datastore.writes`` does) or to a file system.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Hashable, Iterable, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")

# --- counters: every mutation is counted, per slice, rolled up to its namespace and the job ---

PUT = "writes.put"  # an entity that did not exist, created
CHANGED = "writes.changed"  # an existing entity written with a change
DELETED = "writes.deleted"  # an existing entity deleted
UNCHANGED = "writes.unchanged"  # the job left it as it was, or wrote exactly what was there
GONE = "writes.gone"  # deleted by someone else between the read and the write (left alone)
CONFLICTS = "writes.conflicts"  # transactions retried for contention
FAILED = "writes.failed"  # mutations that could not be written: dead letters
OUTSIDE = "writes.outside_namespaces"  # free mutations into a namespace the run does not read
CHANGED_SINCE = "writes.changed_since"  # restore: changed again since the run undone: left
COUNTERS = (PUT, CHANGED, DELETED, UNCHANGED, GONE, CONFLICTS, FAILED, OUTSIDE, CHANGED_SINCE)
#: Counted as writes (what the progress lines and the rate show).
WRITTEN = (PUT, CHANGED, DELETED)
_COUNTER_OF = {"put": PUT, "changed": CHANGED, "deleted": DELETED}


def change_counter(change: str) -> str:
    """The counter of an ``Op.change`` (put, changed, deleted)."""
    return _COUNTER_OF[change]


@dataclasses.dataclass
class Op:
    """One mutation to write: ``after`` None deletes; ``before`` as read (blind) or looked up
    (None: the entity did not exist)."""

    key: Any
    before: Any
    after: Any
    size: int = 0
    before_pb: Any = None  # ``entity_json.Pb`` of before / after, when made already
    after_pb: Any = None

    @property
    def change(self) -> str:
        if self.after is None:
            return "deleted"
        return "put" if self.before is None else "changed"


def entity_group(key: Any) -> tuple:
    """The entity group of a key (its root's kind and id or name): a transaction's bound."""
    return tuple(key.flat_path[:2])

# --- limits ---------------------------------------------------------------------------------

#: Mutations per commit of blind writes (the limit Beam's writer keeps; Datastore's is 500).
BLIND_BATCH = 500
#: Entity groups per transaction: the emulator refuses more than 25 ("too many entity groups in
#: a single transaction"); production Datastore mode takes 500 mutations.
TRANSACTION_GROUPS = 25
#: Bytes per commit: under Datastore's 10 MiB request limit, with room for the request itself.
MAX_COMMIT_BYTES = 9_000_000
#: An entity larger than this is refused by Datastore (1 MiB minus its own overhead).
MAX_ENTITY_BYTES = 1_048_572


def batches(items: Sequence[T], max_count: int, max_bytes: int,
            size: Callable[[T], int], group: Optional[Callable[[T], Hashable]] = None,
            max_groups: Optional[int] = None) -> Iterator[list]:
    """Cut ``items`` (in order) into batches of at most ``max_count`` items, ``max_bytes``
    bytes (an item larger than that goes alone) and, with ``group``, ``max_groups`` distinct
    groups (a transaction's entity groups)."""
    batch: list = []
    used, groups = 0, set()
    for item in items:
        n = size(item)
        g = group(item) if group is not None else None
        new_group = g is not None and g not in groups
        if batch and (len(batch) >= max_count or used + n > max_bytes
                      or (max_groups is not None and new_group and len(groups) >= max_groups)):
            yield batch
            batch, used, groups = [], 0, set()
            new_group = g is not None
        batch.append(item)
        used += n
        if new_group:
            groups.add(g)
    if batch:
        yield batch


def halves(batch: list) -> tuple:
    """A batch that keeps meeting contention, cut in two (down to single mutations)."""
    mid = (len(batch) + 1) // 2
    return batch[:mid], batch[mid:]


# --- contention ----------------------------------------------------------------------------

#: Seconds before the first retry of a batch that met contention (doubling).
CONTENTION_BACKOFF = 0.2


class Contention(Exception):
    """The transaction lost to a concurrent write (retry it, or halve the batch)."""


def retry_then_halve(batch: list, attempt: Callable[[list], None],
                     again: Callable[[list], None], retries: int,
                     conflict: Callable[[], None], gave_up: Callable[[Any, Contention], None],
                     sleep: Callable[[float], None] = time.sleep,
                     backoff: float = CONTENTION_BACKOFF) -> None:
    """Write ``batch`` with ``attempt`` (which raises ``Contention`` when it lost), retried
    ``retries`` times with a doubling backoff; then each half goes to ``again`` (the caller's
    own entry, so its other handling applies to the halves too), down to single items: an item
    that still conflicts goes to ``gave_up``. ``conflict`` is told of every lost attempt."""
    for n in range(retries + 1):
        try:
            attempt(batch)
            return
        except Contention as e:
            conflict()
            if n < retries:
                sleep(backoff * 2 ** n)
                continue
            if len(batch) > 1:
                for half in halves(batch):
                    again(half)
                return
            gave_up(batch[0], e)


# --- how fast --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RampUp:
    """Datastore's "500/50/5" guidance, as Beam's ``RampupThrottlingFn`` applies it: start at
    ``start`` operations/s for the whole job, growing by 50 % per ``period`` seconds after the
    first ``period`` (continuously, as Beam's does), shared out over ``workers``
    (``--write_workers_hint``); ``cap`` (--max_write_rate, for the whole job) bounds it.
    ``enabled`` False: no ramp (the emulator), only the cap."""

    enabled: bool = True
    start: float = 500.0
    growth: float = 1.5
    period: float = 300.0
    workers: int = 1
    cap: Optional[float] = None

    def job_rate(self, elapsed: float) -> float:
        """Operations/s allowed for the whole job ``elapsed`` seconds after the first write."""
        rate = math.inf
        if self.enabled:  # as Beam's: growth ** ((t - delay) / interval), continuous
            exponent = max(0.0, (elapsed - self.period) / self.period)
            rate = self.start * self.growth ** min(exponent, 60.0)
        if self.cap is not None:
            rate = min(rate, self.cap)
        return rate

    def worker_rate(self, elapsed: float) -> float:
        return self.job_rate(elapsed) / max(1, self.workers)


class Throttle:
    """A token bucket at the ramp's rate for this worker: ``wait(n)`` sleeps until ``n``
    operations may go. ``clock`` and ``sleep`` are injectable (tests use a fake clock)."""

    def __init__(self, ramp: RampUp, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.ramp, self.clock, self.sleep = ramp, clock, sleep
        self.first: Optional[float] = None
        self.tokens = 0.0
        self.last = 0.0
        self.slept = 0.0  # seconds waited in all, for the summary

    def unlimited(self) -> bool:
        return not self.ramp.enabled and self.ramp.cap is None

    def wait(self, n: int) -> float:
        """Sleep until ``n`` operations are allowed; returns the seconds slept."""
        if self.unlimited() or n <= 0:
            return 0.0
        now = self.clock()
        if self.first is None:
            self.first, self.last = now, now
            self.tokens = self.ramp.worker_rate(0.0)  # one second's budget to start with
        waited = 0.0
        while True:
            rate = self.ramp.worker_rate(now - self.first)
            self.tokens = min(self.tokens + (now - self.last) * rate, max(rate, float(n)))
            self.last = now
            if self.tokens >= n - 1e-6:  # rounding: a sleep of exactly the gap may fall short
                self.tokens = max(0.0, self.tokens - n)
                self.slept += waited
                return waited
            pause = max((n - self.tokens) / rate, 1e-3)  # never a sleep the clock can't see
            self.sleep(pause)
            waited += pause
            now = self.clock()


def count_groups(items: Iterable, group: Callable) -> int:
    return len({group(i) for i in items})
