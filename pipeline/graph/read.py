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
from typing import Any, Callable, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from pipeline.api import hooks
from pipeline.api.job import Context, Counters
from pipeline.api.mutations import Delete, Put
from pipeline.config import JobConfig, OutputConfig, ReadConfig, WriteConfig
from pipeline.core import deadletters
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label
from pipeline.core.narrowing import SampleDensity
from pipeline.core.totals import SliceStats, Totals
from pipeline.datastore.client import client
from pipeline.datastore.writes import KeyMaker
from pipeline.errors import JobFailed, MapperError
from pipeline.graph.lifecycle import fire
from pipeline.graph.namespaces import STATS, RangeTask
from pipeline.core.progress import gaps_passed
from pipeline.graph.progress import WORKER_LOG, Channel, ProgressCounters, SliceReporter
from pipeline.graph.slices import SliceState, read_slice
from pipeline.graph.trackers import KeyRangeTracker, ValueRangeTracker
from pipeline.graph.writer import Writer
from pipeline.sinks.files.deadletters import write_part
from pipeline.sinks.files.lease import WorkerHeartbeat

#: (job name, namespace, entity key's flat path, index among the entity's records) -> an id.
RecordId = Callable[[str, str, tuple, int], str]
#: The Beam metric (and summary counter) of entities dead-lettered.
ERRORS_COUNTER = "errors"
#: The tag of the side output of a writing job's before/after samples: (namespace, sample).
CHANGES = "changes"


def undeclared_record_message(job: str) -> str:
    """Why a run without a sink stops at a job's first record (no silent drops)."""
    return (f"job {job} yielded a record, but this run has nowhere to put records and the job "
            "does not declare yields_records = True: pass --output DIR, --bigquery_table "
            "[PROJECT:]DATASET.TABLE or --discard_records; declaring yields_records = True on "
            "the job makes such a run refused at launch")


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

    Emits the job's records as (unit, record) — encoded by the sink's ``encode`` (a line of a
    file, a row for BigQuery), and as (unit, (id, record)) with ``record_id``, for a sink that
    deduplicates by a stable id — and a SliceStats per slice on ``stats``.

    An entity the job fails on, or whose records cannot be encoded, is not the end of the run:
    it becomes a dead letter (``pipeline.core.deadletters``), its records are dropped as a
    whole, and the slice's letters are written by this worker at the slice's end. Once more
    entities failed than ``--max_errors`` allows, the worker fails the run, after writing them.
    Without a dead-letter file (no --output) the first failure fails the run.
    """

    def __init__(self, job: JobConfig, read: ReadConfig, output: Optional[OutputConfig] = None,
                 record_id: Optional[RecordId] = None,
                 encode: Optional[Callable[[Any], Any]] = None, no_sink: bool = False,
                 write: Optional[WriteConfig] = None):
        self.job, self.read, self.record_id, self.encode = job, read, record_id, encode
        self.output = output or OutputConfig()
        self.no_sink = no_sink  # records would go nowhere: the first one fails the run
        self.write = write or WriteConfig()

    def setup(self):
        self._client = client(self.read.target)
        self._metric_ns = self.job.metrics_namespace
        self._entities = Metrics.counter(self._metric_ns, "entities")
        self._records = Metrics.counter(self._metric_ns, "records")
        self._errors_metric = Metrics.counter(self._metric_ns, ERRORS_COUNTER)
        self._metrics: dict = {}
        self._density: dict = {}  # (namespace, kind) -> SampleDensity, learnt by this worker
        self._all_units = SampleDensity()  # over every unit: each new unit's prior
        self._failed = 0  # entities this worker dead-lettered in this run
        self._channel = Channel(self.output.progress_dir)
        self._progress = ProgressCounters(self._metric_ns)
        self._keys = KeyMaker(self._client, self.read.retry)
        self._writer = (Writer(self.job, self.read, self.write, self.output.run_id, self._client,
                               self._write_failed)
                        if self.write.enabled else None)
        self._slice_letters: list = []
        self._slice_task = None

    def process(self, task: RangeTask, tracker=beam.DoFn.RestrictionParam(RangeRestrictions())):
        job, read = self.job, self.read
        state = SliceState()
        counters = Counters(job.max_counters)
        ctx = Context(job.name, job.params, task.namespace, task.range_id,
                      tracker.current_restriction().describe(), counters, task.kind, self._keys)
        keys_only = read.query.keys_only
        fire(job, hooks.SLICE_STARTED, namespace=task.namespace, kind=task.kind,
             range_id=task.range_id, range=ctx.range)
        started = time.monotonic()
        records = 0
        letters: list = []
        start = ctx.range
        restriction = tracker.current_restriction()
        reporter = SliceReporter(self._channel, task.unit.label, task.namespace, task.range_id)
        seen = 0
        self._slice_letters, self._slice_task, self._slice_start = letters, task, start
        next_fn, encode, record_id = job.spec.next, self.encode, self.record_id
        writer = self._writer
        migrates = writer is not None and job.spec.defines("migrate")
        calls_next = job.spec.defines("next")
        if writer is not None:
            writer.start(ctx)
        kind, unit = task.kind, task.unit
        density = self._density.get((task.namespace, kind))
        if density is None:
            density = self._density[(task.namespace, kind)] = SampleDensity(
                prior=self._all_units)
        for entity in read_slice(self._client, read, task.namespace, kind, tracker, state,
                                 density):
            item = entity.key if keys_only else entity
            seen += 1
            if not seen & 255:
                reporter.reading(seen, counters.values if writer is not None else None)
            try:
                if migrates:
                    writer.migrate(entity)
                out = next_fn(ctx, item) if calls_next else None
                produced = list(out) if out is not None else ()  # an entity's records: all or none
                if writer is not None and produced:
                    mutations = [r for r in produced if isinstance(r, (Put, Delete))]
                    if mutations:
                        produced = [r for r in produced if not isinstance(r, (Put, Delete))]
                        for m in mutations:
                            writer.mutation(m)
            except MapperError:
                raise
            except Exception as e:
                letters.append(deadletters.job_error(job.name, task.namespace, kind,
                                                     entity.key.flat_path, e))
                self._entity_failed(task, letters, start, e, entity.key.flat_path)
                continue
            if not produced:
                continue
            if self.no_sink:
                raise JobFailed(undeclared_record_message(job.name))
            if encode is not None:
                try:
                    encoded = []
                    for i, record in enumerate(produced):
                        encoded.append(encode(record))
                except Exception as e:
                    letters.append(deadletters.record_error(job.name, task.namespace, kind,
                                                            entity.key.flat_path, i, record, e))
                    self._entity_failed(task, letters, start, e, entity.key.flat_path)
                    continue
                produced = encoded
            records += len(produced)
            for i, record in enumerate(produced):
                if record_id is not None:  # stable: (job, namespace, key, index)
                    record = (record_id(job.name, task.namespace, entity.key.flat_path, i),
                              record)
                yield unit, record
        if writer is not None:  # the slice's writes, before its checkpoint
            for sample in writer.finish():
                yield beam.pvalue.TaggedOutput(CHANGES, (task.namespace, sample))
        if letters:
            self._write_letters(task, start, letters)
        if self.output.directory:  # a remote run's lease lives on its workers' renewals
            WorkerHeartbeat.maybe_renew(self.output.directory, job.name, self.output.run_id)
        seconds = time.monotonic() - started
        self._report(task, state, counters, records, len(letters))
        self._report_progress(task, tracker, restriction, state, reporter, records,
                              len(letters), counters)
        stats = SliceStats(
            task.namespace, task.range_id, state.entities, records, state.queries, state.retries,
            seconds, counters.values, f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}",
            errors=len(letters), kind=kind, ended=time.time())
        if job.spec.defines(hooks.SLICE_COMPLETED):
            totals = Totals()
            totals.add_slice(dataclasses.replace(stats, counters=dict(counters.values)),
                             job.max_counters)
            fire(job, hooks.SLICE_COMPLETED, namespace=task.namespace, kind=kind,
                 range_id=task.range_id, range=ctx.range, totals=totals)
        yield beam.pvalue.TaggedOutput(STATS, stats)
        if not state.done:
            tracker.defer_remainder()

    def _write_failed(self, namespace: str, kind: str, key: tuple, err: Exception,
                      what: str) -> None:
        """The writer could not write a mutation: a dead letter, counted as a failed entity."""
        letters = self._slice_letters
        letters.append(deadletters.write_error(
            self.job.name, namespace, kind, key, f"{type(err).__name__}: {err}",
            mutation=what))
        self._entity_failed(self._slice_task, letters, self._slice_start, err, key)

    def _entity_failed(self, task: RangeTask, letters: list, start: str, err: Exception,
                       key: tuple) -> None:
        """Count a failed entity; fail the run (letters written first) past --max_errors."""
        self._failed += 1
        if self._failed <= self.job.max_errors:
            return
        job = self.job
        first = (f"job {job.name} failed on entity "
                 f"{format_path(path_from_flat(key))} in namespace "
                 f"{namespace_label(task.namespace)}: {type(err).__name__}: {err}")
        where = ""
        if self.output.dead_letter_parts:
            self._write_letters(task, start, letters)
            where = f"; dead letters: {self.output.dead_letter}"
        if job.max_errors == 0 and not where:
            raise JobFailed(first) from err
        raise JobFailed(f"{first} ({self._failed} entities failed, more than "
                        f"--max_errors={job.max_errors}{where})") from err

    def _write_letters(self, task: RangeTask, start: str, letters: list) -> None:
        parts = self.output.dead_letter_parts
        if parts is None:
            return
        write_part(parts, deadletters.slice_part_name(task.namespace, task.range_id, start),
                   letters)

    def _report(self, task, state, counters, records, errors) -> None:
        self._entities.inc(state.entities)
        if records:
            self._records.inc(records)
        if errors:
            self._errors_metric.inc(errors)
        for name, n in counters.values.items():
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = Metrics.counter(self._metric_ns, name)
            metric.inc(n)
        if self.output.progress_dir is None:
            WORKER_LOG.add(task.unit.label, state.entities, self.read.progress_seconds)

    def _report_progress(self, task, tracker, restriction, state, reporter, records,
                         errors, counters) -> None:
        """The slice on the progress channel and the progress counters: sample gaps passed,
        and whether it finished its range (the piece that ends where the range ends)."""
        current = tracker.current_restriction() if state.done else restriction
        gaps = gaps_passed(current, state.last_key(), state.done)
        range_done = state.done and _end(current) == _end(task.restriction)
        reporter.done(state.entities, records, errors, state.retries, gaps, range_done,
                      counters.values if self._writer is not None else None)
        self._progress.inc("sample_gaps_read", gaps)
        if range_done:
            self._progress.inc("ranges_done")


def _end(restriction):
    """Where a restriction ends: a split piece ends before its range does."""
    return (restriction.end, restriction.end_inclusive)
