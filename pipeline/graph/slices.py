"""The slice loop: reading one slice of a range, query after query, page after page.

A slice ends when it has read ``slice_entities`` entities, when its time is up (checked at page
ends, where Datastore gives a cursor), when a claim fails (the range was split), or when the
query that reaches the range's end is exhausted: then END is claimed and the range is done. A
transient error re-runs the query from the last claimed position (``pipeline.datastore.retry``),
so no entity is handed to the job twice.

One loop for both kinds of range; what differs is the position rules:

- ``KeyPositions``: narrow queries (each ends at a scatter sample a few gaps ahead, see
  ``pipeline.core.narrowing``); a query exhausted at a sample is followed by the next one from
  that sample; only the query that reaches the range's own end may, by running out, claim END.
  Every entity returned is claimed at its key.
- ``ValuePositions``: one fixed query per range, resumed from a cursor. Every entity is claimed
  at the position the backend sorted it at (its smallest value inside this range's query), so
  checkpoints always move forward; it is handed to the job only when this is also its smallest
  value in the job's whole range: the sub-range that owns it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator, Optional, Union

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline.config import ReadConfig
from pipeline.core.keyorder import path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label
from pipeline.core.narrowing import SampleDensity, query_end
from pipeline.core.splitting import owner_value
from pipeline.core.valuerange import Claim, ValueRange
from pipeline.core.values import value_sort_key
from pipeline.datastore import retry
from pipeline.datastore.client import fetch
from pipeline.datastore.errors import explain
from pipeline.datastore.queries import key_range_query, value_range_query
from pipeline.graph.trackers import END

# What a claim rule says of one returned entity.
OWN = "own"  # claimed, and this range owns it: hand it to the job
CLAIMED = "claimed"  # claimed, but another range owns it (a list value elsewhere)
SKIP = "skip"  # not claimed: another type, or read before a checkpoint or a retry
STOP = "stop"  # the claim failed: the range was split before this position


@dataclasses.dataclass
class SliceState:
    entities: int = 0  # handed to the job
    returned: int = 0  # returned by Datastore (includes entities another range owns)
    queries: int = 0
    retries: int = 0
    done: bool = False  # nothing of the range is left for a later slice
    #: the slice's position rules (their last position tells the progress how far it got)
    positions: Any = dataclasses.field(default=None, repr=False, compare=False)

    def last_key(self) -> Any:
        """The key range's last position read (a key, or a sample a query ran out at); None
        for a value range, or before anything was read."""
        resume = getattr(self.positions, "resume", None)
        return resume[0] if resume else None


class KeyPositions:
    """A key range's rules: narrow queries, every entity claimed at its key."""

    def __init__(self, c: datastore.Client, read: ReadConfig, namespace: str, kind: str, tracker,
                 density: Optional[SampleDensity] = None):
        self.c, self.read, self.namespace, self.kind, self.tracker = (c, read, namespace, kind,
                                                                      tracker)
        self.density = density if density is not None else SampleDensity()
        self.resume = None  # (key, inclusive): where the next query starts, once anything was read
        self.step = 0
        self.end = None  # the running query's end sample; None: the range's own end
        self.query_range: Optional[KeyRange] = None

    def retrying(self) -> str:
        return f"reading {self.kind} in namespace {namespace_label(self.namespace)}"

    def what(self) -> str:
        return f"reading key range {self.query_range.describe()}"

    def next_query(self):
        """(query, start cursor) of the next query; None once the range is empty (done)."""
        rng: KeyRange = self.tracker.current_restriction()
        if self.resume is not None:
            rng = dataclasses.replace(rng, start=self.resume[0], start_inclusive=self.resume[1])
        if rng.is_empty():  # a split moved the end to where this slice had read
            self.tracker.try_claim(END)
            return None
        self.step = self.density.step(self.read.query_entities)
        self.end = query_end(rng, self.step)
        self.query_range = (rng if self.end is None
                            else dataclasses.replace(rng, end=self.end, end_inclusive=False))
        q = key_range_query(self.c, self.read.query, self.namespace, self.kind, self.query_range,
                            self.read.query.keys_only)
        return q, None

    def claim(self, entity: datastore.Entity, cursor) -> str:
        path = path_from_flat(entity.key.flat_path)
        if not self.tracker.try_claim(path):
            return STOP
        self.resume = (path, False)
        return OWN

    def exhausted(self, got: int) -> bool:
        """The running query ran out after ``got`` results: is the range done?"""
        if self.end is None:
            self.tracker.try_claim(END)  # exhausted up to the range's end: the range is done
            return True
        # Exhausted up to a sample: read on from that sample (it may itself be an entity).
        self.density.observe(got, self.step)
        self.resume = (self.end, True)
        return False

    def skip_to(self, cursor) -> None:
        raise AssertionError("a key range claims every entity it reads: nothing is skipped")


class ValuePositions:
    """A value range's rules: one fixed query resumed from a cursor; claims at the backend's
    sort position, entities handed over only by the range that owns them."""

    def __init__(self, c: datastore.Client, read: ReadConfig, namespace: str, kind: str, tracker):
        self.c, self.read, self.namespace, self.kind, self.tracker = (c, read, namespace, kind,
                                                                      tracker)
        first: ValueRange = tracker.current_restriction()
        self.floor = first.start  # the last claimed position: skip anything at or before it
        # A cursor past entities that were skipped without a claim, when a query ran out on
        # them: read on from there, so a slice always claims something or ends the range.
        self.skipped_to = None
        self.rng: Optional[ValueRange] = None

    def retrying(self) -> str:
        return (f"reading {self.kind} by {self.read.query.prop_range.prop} in "
                f"namespace {namespace_label(self.namespace)}")

    def what(self) -> str:
        return f"reading {self.rng.describe()}"

    def next_query(self):
        self.rng = self.tracker.current_restriction()
        resume = self.skipped_to or (self.floor.cursor if self.floor is not None else None)
        return value_range_query(self.c, self.read.query, self.namespace, self.kind,
                                 self.rng), resume

    def claim(self, entity: datastore.Entity, cursor) -> str:
        rng, order = self.rng, self.read.order
        values = entity.get(rng.prop)
        here = owner_value(values, rng.query_lo, rng.query_hi, rng.lo_inclusive,
                           rng.hi_inclusive, order)
        if here is None:
            return SKIP  # a value of another type: not in this range
        claim = Claim(here, path_from_flat(entity.key.flat_path), cursor)
        if self.floor is not None and rng.pos_key(claim) <= rng.pos_key(self.floor):
            return SKIP  # read before a checkpoint or a retry
        if not self.tracker.try_claim(claim):
            return STOP
        self.floor, self.skipped_to = claim, None
        job = self.read.query.prop_range
        owner = owner_value(values, job.lo, job.hi, job.lo_inclusive, job.hi_inclusive, order)
        if owner is not None and value_sort_key(owner, order) == value_sort_key(here, order):
            return OWN
        return CLAIMED

    def exhausted(self, got: int) -> bool:
        self.tracker.try_claim(END)
        return True

    def skip_to(self, cursor) -> None:
        # The results ran out on entities skipped without a claim (another type, or read
        # before a checkpoint): claims count, so read on after them.
        self.skipped_to = cursor


Positions = Union[KeyPositions, ValuePositions]


class _Slice:
    """One slice's budget (entities, time) and its loop; ``queries`` is re-run by the retry
    on a transient error and carries on from the positions' last claim."""

    def __init__(self, read: ReadConfig, state: SliceState, positions: Positions):
        self.read, self.state, self.positions = read, state, positions
        self.deadline = time.monotonic() + read.slice_seconds
        self.remaining = read.slice_entities

    def queries(self) -> Iterator[datastore.Entity]:
        pos, state = self.positions, self.state
        while True:
            planned = pos.next_query()
            if planned is None:
                state.done = True
                return
            q, cursor = planned
            limit, got, timed_out = self.remaining, 0, False
            it = fetch(q, self.read.retry, limit=limit, start_cursor=cursor,
                       read_time=self.read.read_time)
            state.queries += 1
            page_start = cursor
            try:
                for page in it.pages:
                    page_end = it.next_page_token
                    items = list(page)
                    last = len(items) - 1
                    for i, entity in enumerate(items):
                        got += 1
                        state.returned += 1
                        verdict = pos.claim(entity, page_end if (i == last and page_end is not None)
                                            else page_start)
                        if verdict is SKIP:
                            continue
                        if verdict is STOP:
                            state.done = True
                            return
                        self.remaining -= 1
                        if verdict is OWN:
                            state.entities += 1
                            yield entity
                    page_start = page_end
                    if time.monotonic() >= self.deadline and _more_pages(it) and \
                            not _take_ahead(it):
                        timed_out = True  # at a page end: the next slice resumes from here
                        break
            except gexc.GoogleAPICallError as e:
                if retry.is_transient(e):
                    raise  # the retry runs the query again from the last claim
                raise explain(e, self.read.query, pos.namespace, pos.what(), pos.kind) from None
            if timed_out:
                return
            # Fewer results than asked for: the query is exhausted. (The emulator says
            # "more results after limit" even at the end, so the count decides.)
            if got < limit or it.next_page_token is None:
                if pos.exhausted(got):
                    state.done = True
                    return
                if time.monotonic() >= self.deadline:
                    return
                continue
            if self.remaining <= 0:
                return  # the slice is full: the next slice resumes
            pos.skip_to(it.next_page_token)


def _more_pages(it) -> bool:
    """Whether the query has pages left: at its last page the time budget waits for the
    exhaustion rules below (a slice stopped there, out of time, would run the same query again
    next time, forever when its one page takes longer than the budget)."""
    return bool(getattr(it, "_more_results", True))


def _take_ahead(it) -> bool:
    """At the time budget: True when the query's next page was read ahead already (it is read
    too, and nothing more is asked for: a page paid for is not thrown away)."""
    stop = getattr(it, "stop_reading_ahead", None)
    return bool(stop and stop())


def read_slice(c: datastore.Client, read: ReadConfig, namespace: str, kind: str, tracker,
               state: SliceState, density: Optional[SampleDensity] = None
               ) -> Iterator[datastore.Entity]:
    """The entities of one slice of the tracker's range (of ``kind`` in ``namespace``), in the
    backend's order, claimed one by one (``density``: what this worker learnt of the unit's
    sample gaps)."""
    if isinstance(tracker.current_restriction(), KeyRange):
        positions: Positions = KeyPositions(c, read, namespace, kind, tracker, density)
    else:
        positions = ValuePositions(c, read, namespace, kind, tracker)
    state.positions = positions
    one = _Slice(read, state, positions)

    def retried(_err) -> None:
        state.retries += 1

    return retry.stream(one.queries, positions.retrying(), read.retry, on_retry=retried,
                        where=read.target.describe())
