"""The reading step: a splittable DoFn over the units' ranges that applies the job.

Each call reads one slice (``pipeline.graph.slices``), hands every key or entity to the job's
``next`` (``pipeline.graph.apply``), and checkpoints (``defer_remainder``), so a failure repeats
one slice, never the range; a runner may also split the unread remainder (``try_split`` of the
trackers). Small units never get here: the planner read them first, in one query each
(``pipeline.graph.namespaces``).
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms.core import RestrictionProvider

from pipeline.config import RunConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.narrowing import SampleDensity
from pipeline.core.progress import gaps_passed
from pipeline.datastore.client import client
from pipeline.graph.apply import (
    CHANGES,
    ERRORS_COUNTER,
    RecordId,
    Records,
    SliceJob,
    undeclared_record_message,
)
from pipeline.graph.namespaces import RangeTask
from pipeline.graph.slices import SliceState, read_slice
from pipeline.graph.trackers import KeyRangeTracker, ValueRangeTracker

__all__ = ["CHANGES", "ERRORS_COUNTER", "RangeRestrictions", "ReadRangeFn", "RecordId", "Records",
           "undeclared_record_message"]


class RangeRestrictions(RestrictionProvider):
    """The initial restriction is the range the splitter cut; runners split it further."""

    def initial_restriction(self, task: RangeTask):
        return task.restriction

    def create_tracker(self, restriction):
        if isinstance(restriction, KeyRange):
            return KeyRangeTracker(restriction)
        return ValueRangeTracker(restriction)

    def split(self, task, restriction):
        yield restriction

    def restriction_size(self, task, restriction) -> float:
        if isinstance(restriction, KeyRange):
            return float(len(restriction.samples) + 1)
        return 1.0


class ReadRangeFn(beam.DoFn):
    """Reads a range one slice per call and applies the job to each key or entity
    (``SliceJob``: records as (unit, record), a SliceStats per slice on ``stats``, dead
    letters, and a writing job's writes before the checkpoint, their samples on ``changes``)."""

    def __init__(self, run: RunConfig, records: Records = Records()):
        self.run, self.records = run, records
        self.read = run.read

    def setup(self):
        self._client = client(self.read.target)
        self._slices = SliceJob(self.run, self.records, self._client)
        self._density: dict = {}  # (namespace, kind) -> SampleDensity, learnt by this worker
        self._all_units = SampleDensity()  # over every unit: each new unit's prior

    def process(self, task: RangeTask, tracker=beam.DoFn.RestrictionParam(RangeRestrictions())):
        state = SliceState()
        kind = task.kind
        restriction = tracker.current_restriction()
        density = self._density.get((task.namespace, kind))
        if density is None:
            density = self._density[(task.namespace, kind)] = SampleDensity(
                prior=self._all_units)
        entities = read_slice(self._client, self.read, task.namespace, kind, tracker, state,
                              density)

        def progress(state):
            """Sample gaps passed, and whether the slice ended its range (the piece that ends
            where the range ends: a split piece ends before its range does)."""
            current = tracker.current_restriction() if state.done else restriction
            gaps = gaps_passed(current, state.last_key(), state.done)
            return gaps, state.done and _end(current) == _end(task.restriction)

        yield from self._slices.run(task.unit, task.range_id, restriction.describe(), entities,
                                    state, progress=progress)
        if not state.done:
            tracker.defer_remainder()


def _end(restriction):
    """Where a restriction ends: a split piece ends before its range does."""
    return (restriction.end, restriction.end_inclusive)
