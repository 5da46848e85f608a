"""Reading one slice of a range: narrow queries (key slices end at a sample a few gaps
ahead, see ``pipeline.narrowing``) up to the slice's size, paged by the client.

A slice ends when it has read ``slice_entities`` entities, when its time is up
(checked at page ends, where Datastore gives a cursor), when a claim fails (the
range was split), or when the query that reaches the range's end is exhausted —
then END is claimed and the range is done. A transient error inside a slice re-runs the query from the last
claimed position, so no entity is handed to the job twice.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Iterator, Optional

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline import datastore_io as dio
from pipeline.keyorder import path_from_flat
from pipeline.keyrange import KeyRange
from pipeline.narrowing import SampleDensity, query_end
from pipeline.tracking import END
from pipeline.plan import RunPlan
from pipeline.splitting import owner_value
from pipeline.valuerange import Claim, ValueRange
from pipeline.values import value_sort_key

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SliceState:
    entities: int = 0  # handed to the job
    returned: int = 0  # returned by Datastore (includes entities another range owns)
    queries: int = 0
    retries: int = 0
    done: bool = False  # nothing of the range is left for a later slice


class _Retry:
    def __init__(self, what: str, attempts: int = 6):
        self.what, self.attempts, self.failures = what, attempts, 0

    def failed(self, err: Exception, state: SliceState) -> None:
        self.failures += 1
        state.retries += 1
        if self.failures >= self.attempts:
            raise err
        delay = min(20.0, 0.5 * 2 ** (self.failures - 1))
        log.warning("%s: transient error (%s: %s); retry %d/%d in %.1fs", self.what,
                    type(err).__name__, err, self.failures, self.attempts - 1, delay)
        time.sleep(delay)


def read_key_slice(c: datastore.Client, plan: RunPlan, namespace: str, tracker,
                   state: SliceState, density: Optional[SampleDensity] = None
                   ) -> Iterator[datastore.Entity]:
    """Entities of the tracker's key range, in key order, claimed one by one.

    Each query ends at a sample a few gaps ahead (``pipeline.narrowing``), so every
    query is narrow; one that runs out there is followed by the next from that sample.
    Only the query that reaches the range's own end may, by running out, claim END.
    """
    deadline = time.monotonic() + plan.slice_seconds
    remaining = plan.slice_entities
    density = density if density is not None else SampleDensity()
    resume = None  # (key, inclusive): where the next query starts, once anything was read
    retry = _Retry(f"reading {plan.query.kind} in namespace {namespace or '(default)'}")
    while True:
        rng: KeyRange = tracker.current_restriction()
        if resume is not None:
            rng = dataclasses.replace(rng, start=resume[0], start_inclusive=resume[1])
        if rng.is_empty():  # a split moved the end to where this slice had read
            tracker.try_claim(END)
            state.done = True
            return
        step = density.step(plan.query_entities)
        end = query_end(rng, step)
        qrng = rng if end is None else dataclasses.replace(rng, end=end, end_inclusive=False)
        q = dio.key_range_query(c, plan.query, namespace, qrng, plan.query.keys_only)
        limit, got, timed_out = remaining, 0, False
        it = dio.fetch(q, limit=limit, read_time=plan.read_time)
        state.queries += 1
        try:
            for page in it.pages:
                for entity in page:
                    got += 1
                    state.returned += 1
                    path = path_from_flat(entity.key.flat_path)
                    if not tracker.try_claim(path):
                        state.done = True
                        return
                    resume = (path, False)
                    remaining -= 1
                    state.entities += 1
                    yield entity
                if time.monotonic() >= deadline:
                    timed_out = True  # at a page end: the next slice resumes from here
                    break
        except dio.TRANSIENT as e:
            retry.failed(e, state)
            continue
        except gexc.GoogleAPICallError as e:
            raise dio.explain(e, plan.query, namespace, f"reading key range {qrng.describe()}") from None
        # Fewer results than asked for: the query is exhausted. (The emulator says
        # "more results after limit" even at the end, so the count decides.)
        if timed_out or not (got < limit or it.next_page_token is None):
            return  # the slice is full or its time is up: the next slice resumes
        if end is None:
            tracker.try_claim(END)  # exhausted up to the range's end: the range is done
            state.done = True
            return
        # Exhausted up to a sample: read on from that sample (it may itself be an entity).
        density.observe(got, step)
        resume = (end, True)
        if time.monotonic() >= deadline:
            return


def read_value_slice(c: datastore.Client, plan: RunPlan, namespace: str, tracker,
                     state: SliceState) -> Iterator[datastore.Entity]:
    """Entities of the tracker's value range in (value, key) order.

    Every returned entity is claimed at the position the backend sorted it at
    (its smallest value inside this range's query), so checkpoints always move
    forward; it is handed to the job only when this is also its smallest value
    in the job's whole range: the sub-range that owns it.
    """
    deadline = time.monotonic() + plan.slice_seconds
    remaining = plan.slice_entities
    job = plan.query.prop_range
    first: ValueRange = tracker.current_restriction()
    floor = first.start  # the last claimed position: skip anything at or before it
    # A cursor past entities that were skipped without a claim, when a query ran out on
    # them: read on from there, so a slice always claims something or ends the range.
    skipped_to = None
    retry = _Retry(f"reading {plan.query.kind} by {job.prop} in namespace "
                   f"{namespace or '(default)'}")
    while True:
        rng: ValueRange = tracker.current_restriction()
        resume = skipped_to or (floor.cursor if floor is not None else None)
        q = dio.value_range_query(c, plan.query, namespace, rng)
        limit, got, timed_out = remaining, 0, False
        it = dio.fetch(q, limit=limit, start_cursor=resume, read_time=plan.read_time)
        state.queries += 1
        page_start = resume
        try:
            for page in it.pages:
                page_end = it.next_page_token
                items = list(page)
                for i, entity in enumerate(items):
                    got += 1
                    state.returned += 1
                    values = entity.get(rng.prop)
                    here = owner_value(values, rng.query_lo, rng.query_hi, rng.lo_inclusive,
                                       rng.hi_inclusive, plan.order)
                    if here is None:
                        continue  # a value of another type: not in this range
                    cursor = page_end if (i == len(items) - 1 and page_end is not None) else page_start
                    claim = Claim(here, path_from_flat(entity.key.flat_path), cursor)
                    if floor is not None and rng.pos_key(claim) <= rng.pos_key(floor):
                        continue  # read before a checkpoint or a retry
                    if not tracker.try_claim(claim):
                        state.done = True
                        return
                    floor, skipped_to = claim, None
                    remaining -= 1
                    owner = owner_value(values, job.lo, job.hi, job.lo_inclusive,
                                        job.hi_inclusive, plan.order)
                    if owner is not None and value_sort_key(owner, plan.order) == value_sort_key(
                            here, plan.order):
                        state.entities += 1
                        yield entity
                page_start = page_end
                if time.monotonic() >= deadline:
                    timed_out = True  # at a page end: the next slice resumes from here
                    break
        except dio.TRANSIENT as e:
            retry.failed(e, state)
            continue
        except gexc.GoogleAPICallError as e:
            raise dio.explain(e, plan.query, namespace, f"reading {rng.describe()}") from None
        # Fewer results than asked for: the query is exhausted. (The emulator says
        # "more results after limit" even at the end, so the count decides.)
        if not timed_out and (got < limit or it.next_page_token is None):
            tracker.try_claim(END)
            state.done = True
            return
        if timed_out or remaining <= 0:
            return
        # The results ran out on entities skipped without a claim (another type, or
        # read before a checkpoint): claims count, so read on after them.
        skipped_to = it.next_page_token
