"""The reading step: a splittable DoFn over a namespace's ranges that applies the job.

Each call reads one slice (``pipeline.graph.slices``), hands every key or entity to the job's
``next``, and checkpoints (``defer_remainder``), so a failure repeats one slice, never the
range; a runner may also split the unread remainder (``try_split`` of the trackers).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from typing import Callable, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from pipeline.api import hooks
from pipeline.api.job import Context, Counters
from pipeline.config import JobConfig, ReadConfig
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label
from pipeline.core.narrowing import SampleDensity
from pipeline.core.totals import SliceStats, Totals
from pipeline.datastore.client import client
from pipeline.errors import JobFailed, MapperError
from pipeline.graph.lifecycle import fire
from pipeline.graph.namespaces import STATS, RangeTask
from pipeline.graph.progress import PROGRESS
from pipeline.graph.slices import SliceState, read_slice
from pipeline.graph.trackers import KeyRangeTracker, ValueRangeTracker

#: (job name, namespace, entity key's flat path, index among the entity's records) -> an id.
RecordId = Callable[[str, str, tuple, int], str]


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
    """Reads a range one slice per call and applies the job to each key or entity.

    Emits the job's records as (namespace, record) — as (namespace, (id, record)) with
    ``record_id``, for a sink that deduplicates by a stable id — and a SliceStats per slice on
    ``stats``.
    """

    def __init__(self, job: JobConfig, read: ReadConfig, record_id: Optional[RecordId] = None):
        self.job, self.read, self.record_id = job, read, record_id

    def setup(self):
        self._client = client(self.read.target)
        self._metric_ns = self.job.metrics_namespace
        self._entities = Metrics.counter(self._metric_ns, "entities")
        self._records = Metrics.counter(self._metric_ns, "records")
        self._metrics: dict = {}
        self._density: dict = {}  # namespace -> SampleDensity, learnt by this worker's queries

    def process(self, task: RangeTask, tracker=beam.DoFn.RestrictionParam(RangeRestrictions())):
        job, read = self.job, self.read
        state = SliceState()
        counters = Counters(job.max_counters)
        ctx = Context(job.name, job.params, task.namespace, task.range_id,
                      tracker.current_restriction().describe(), counters)
        keys_only = read.query.keys_only
        fire(job, hooks.SLICE_STARTED, namespace=task.namespace, range_id=task.range_id,
             range=ctx.range)
        started = time.monotonic()
        records = 0
        next_fn = job.spec.next
        record_id = self.record_id
        density = self._density.setdefault(task.namespace, SampleDensity())
        for entity in read_slice(self._client, read, task.namespace, tracker, state, density):
            item = entity.key if keys_only else entity
            try:
                out = next_fn(ctx, item)
                if out is not None:
                    for i, record in enumerate(out):
                        records += 1
                        if record_id is not None:  # stable: (job, namespace, key, index)
                            record = (record_id(job.name, task.namespace,
                                                entity.key.flat_path, i), record)
                        yield task.namespace, record
            except MapperError:
                raise
            except Exception as e:
                raise JobFailed(
                    f"job {job.name} failed on entity "
                    f"{format_path(path_from_flat(entity.key.flat_path))} in namespace "
                    f"{namespace_label(task.namespace)}: {type(e).__name__}: {e}") from e
        seconds = time.monotonic() - started
        self._report(task, state, counters, records)
        stats = SliceStats(
            task.namespace, task.range_id, state.entities, records, state.queries, state.retries,
            seconds, counters.values, f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
        if job.spec.defines(hooks.SLICE_COMPLETED):
            totals = Totals()
            totals.add_slice(dataclasses.replace(stats, counters=dict(counters.values)),
                             job.max_counters)
            fire(job, hooks.SLICE_COMPLETED, namespace=task.namespace,
                 range_id=task.range_id, range=ctx.range, totals=totals)
        yield beam.pvalue.TaggedOutput(STATS, stats)
        if not state.done:
            tracker.defer_remainder()

    def _report(self, task, state, counters, records) -> None:
        self._entities.inc(state.entities)
        if records:
            self._records.inc(records)
        for name, n in counters.values.items():
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = Metrics.counter(self._metric_ns, name)
            metric.inc(n)
        PROGRESS.add(task.namespace, state.entities, self.read.progress_seconds)
