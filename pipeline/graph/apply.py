"""Handing one slice's entities to the job: ``SliceJob``, shared by the two steps that read.

``ReadRanges`` reads a range slice by slice; ``SplitNamespaces`` reads each unit first and hands
a small unit (or the first slices of a big one) over itself. Either way a slice is the same
thing for the job: ``slice_started``, ``next`` on each entity (its records encoded by the sink,
with their stable ids), a writing job's ``migrate`` and free mutations (``Writer``: written
before the slice ends, so before its checkpoint; their samples on ``changes``),
``slice_completed``, the counters and a ``SliceStats``, dead letters for entities the job fails
on, progress and the lease's heartbeat.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.api import hooks
from pipeline.api.job import Context, Counters
from pipeline.api.mutations import Delete, Put
from pipeline.config import RunConfig
from pipeline.core import deadletters
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.namespaces import namespace_label
from pipeline.core.totals import SliceStats, Totals
from pipeline.core.units import Unit
from pipeline.datastore.writes import KeyMaker
from pipeline.errors import JobFailed, MapperError
from pipeline.graph.lifecycle import fire
from pipeline.graph.progress import WORKER_LOG, Channel, ProgressCounters, SliceReporter
from pipeline.graph.writer import Writer
from pipeline.sinks.files.deadletters import write_part
from pipeline.sinks.files.lease import WorkerHeartbeat

#: (job name, namespace, entity key's flat path, index among the entity's records) -> an id.
RecordId = Callable[[str, str, tuple, int], str]


@dataclasses.dataclass(frozen=True)
class Records:
    """Where the job's records go, as the sink wants them: each ``encode``d where it is made (a
    line of a file, a row for BigQuery), with a stable ``record_id`` for a sink that
    deduplicates; ``no_sink``: the run keeps no records (no sink, and not --discard_records),
    so the job's first record fails it."""

    encode: Optional[Callable[[Any], Any]] = None
    record_id: Optional[RecordId] = None
    no_sink: bool = False


@dataclasses.dataclass
class _Slice:
    """What one slice run keeps while it goes: its unit and range, the job's context and
    counters, when it started, its records and dead letters so far, its progress reporter."""

    unit: Unit
    range_id: str
    described: str
    counters: Counters
    ctx: Context
    started: float
    reporter: Any
    #: What the job defines, looked up once a slice, not once an entity: ``next`` (None: it
    #: defines none) and whether it migrates (with a writer).
    next_fn: Optional[Callable] = None
    migrates: bool = False
    records: int = 0
    letters: list = dataclasses.field(default_factory=list)
#: The Beam metric (and summary counter) of entities dead-lettered.
ERRORS_COUNTER = "errors"
#: The tag of the side output that carries SliceStats and UnitPlanned records.
STATS = "stats"
#: The tag of the side output of a writing job's before/after samples: (namespace, sample).
CHANGES = "changes"


def undeclared_record_message(job: str) -> str:
    """Why a run without a sink stops at a job's first record (no silent drops)."""
    return (f"job {job} yielded a record, but this run has nowhere to put records and the job "
            "does not declare yields_records = True: pass --output DIR, --bigquery_table "
            "[PROJECT:]DATASET.TABLE or --discard_records; declaring yields_records = True on "
            "the job makes such a run refused at launch")


class SliceJob:
    """Applies the job to slices. Emits the job's records as (unit, record) — encoded by the
    sink's ``encode`` (a line of a file, a row for BigQuery), and as (unit, (id, record)) with
    ``record_id``, for a sink that deduplicates by a stable id — and a SliceStats per slice on
    ``stats``.

    An entity the job fails on, or whose records cannot be encoded, is not the end of the run:
    it becomes a dead letter (``pipeline.core.deadletters``), its records are dropped as a
    whole, and the slice's letters are written by this worker at the slice's end. Once more
    entities failed than ``--max_errors`` allows, the worker fails the run, after writing them.
    Without a dead-letter file (no --output) the first failure fails the run.
    """

    def __init__(self, run: RunConfig, records: Records = Records(), client: Any = None):
        job, read, output, write = run.job, run.read, run.output, run.write
        self.job, self.read, self.output = job, read, output
        self.no_sink = records.no_sink  # records would go nowhere: the first one fails the run
        self._channel = Channel(output.progress_dir)
        self._progress = ProgressCounters(job.metrics_namespace)
        self.record_id, self.encode = records.record_id, records.encode
        self._keys = KeyMaker(client, read.retry) if client is not None else None
        self._writer = (Writer(job, read, write, output.run_id, client, self._write_failed)
                        if write.enabled else None)
        #: The slice being run: the writer's failures (``_write_failed``) are its dead letters.
        self._slice: Optional[_Slice] = None
        self._metric_ns = job.metrics_namespace
        self._entities = Metrics.counter(self._metric_ns, "entities")
        self._records = Metrics.counter(self._metric_ns, "records")
        self._errors_metric = Metrics.counter(self._metric_ns, ERRORS_COUNTER)
        self._metrics: dict = {}
        self._failed = 0  # entities this worker dead-lettered in this run

    def run(self, unit: Unit, range_id: str, described: str, entities: Iterable,
            state, one_query: bool = False,
            progress: Optional[Callable[[Any], tuple]] = None) -> Iterator:
        """One slice: ``entities`` (an iterable the slice's queries fill as they are consumed,
        after ``slice_started``), described by ``described`` (what is left of the range);
        ``state`` (a ``SliceState``) counts what was read. ``one_query``: the slice is the whole
        unit, read in one query while planning (progress counts those apart). ``progress``:
        state -> (sample gaps passed, whether the slice ended its range), for the job-wide
        progress (default: no gaps, ended when ``state.done``)."""
        s = self._begin(unit, range_id, described)
        keys_only = self.read.query.keys_only
        seen = 0
        for entity in entities:
            seen += 1
            if not seen & 255:
                s.reporter.reading(seen, s.counters.values if self._writer is not None else None)
            produced = self._apply(s, entity, entity.key if keys_only else entity)
            if produced:
                yield from self._records_of(s, entity.key.flat_path, produced)
        yield from self._end(s, state, one_query, progress)

    def _begin(self, unit: Unit, range_id: str, described: str) -> "_Slice":
        """``slice_started``, and the writer started on the slice's context."""
        job = self.job
        counters = Counters(job.max_counters)
        ctx = Context(job.name, job.params, unit.namespace, range_id, described, counters,
                      unit.kind, self._keys)
        fire(job, hooks.SLICE_STARTED, namespace=unit.namespace, kind=unit.kind,
             range_id=range_id, range=described)
        spec = job.spec
        s = self._slice = _Slice(
            unit, range_id, described, counters, ctx, time.monotonic(),
            SliceReporter(self._channel, unit.label, unit.namespace, range_id),
            next_fn=spec.next if spec.defines("next") else None,
            migrates=self._writer is not None and spec.defines("migrate"))
        if self._writer is not None:
            self._writer.start(ctx)
        return s

    def _apply(self, s: "_Slice", entity, item) -> Optional[list]:
        """The job on one entity: its ``migrate`` and ``next``, free mutations handed to the
        writer; returns its records, encoded for the sink (all or none: an entity the job
        fails on, or one of whose records cannot be encoded, is a dead letter, None)."""
        job, writer = self.job, self._writer
        key = entity.key.flat_path
        try:
            if s.migrates:
                writer.migrate(entity)
            out = s.next_fn(s.ctx, item) if s.next_fn is not None else None
            produced = list(out) if out is not None else []
            if writer is not None and produced:
                mutations = [r for r in produced if isinstance(r, (Put, Delete))]
                if mutations:
                    produced = [r for r in produced if not isinstance(r, (Put, Delete))]
                    for m in mutations:
                        writer.mutation(m)
        except MapperError:
            raise
        except Exception as e:
            s.letters.append(deadletters.job_error(job.name, s.unit.namespace, s.unit.kind,
                                                   key, e))
            self._entity_failed(s.unit, s.range_id, s.letters, s.described, e, key)
            return None
        if not produced:
            return None
        if self.no_sink:
            raise JobFailed(undeclared_record_message(job.name))
        if self.encode is None:
            return produced
        encoded = []
        for i, record in enumerate(produced):
            try:
                encoded.append(self.encode(record))
            except Exception as e:
                s.letters.append(deadletters.record_error(job.name, s.unit.namespace,
                                                          s.unit.kind, key, i, record, e))
                self._entity_failed(s.unit, s.range_id, s.letters, s.described, e, key)
                return None
        return encoded

    def _records_of(self, s: "_Slice", key: tuple, produced: list) -> Iterator:
        """An entity's records as (unit, record), or (unit, (stable id, record)) for a sink
        that deduplicates by id: (job, namespace, key, index)."""
        s.records += len(produced)
        record_id = self.record_id
        for i, record in enumerate(produced):
            if record_id is not None:
                record = (record_id(self.job.name, s.unit.namespace, key, i), record)
            yield s.unit, record

    def _end(self, s: "_Slice", state, one_query: bool,
             progress: Optional[Callable[[Any], tuple]]) -> Iterator:
        """The slice's writes (before its checkpoint), its dead letters, the lease's
        heartbeat, metrics and progress, ``slice_completed`` and its ``SliceStats``."""
        job, writer, unit = self.job, self._writer, s.unit
        namespace, kind = unit.namespace, unit.kind
        if writer is not None:  # the slice's writes, before its checkpoint
            for sample in writer.finish():
                yield beam.pvalue.TaggedOutput(CHANGES, (namespace, sample))
        if s.letters:
            self._write_letters(namespace, s.range_id, s.described, s.letters)
        if self.output.directory:  # a remote run's lease lives on its workers' renewals
            WorkerHeartbeat.maybe_renew(self.output.directory, job.name, self.output.run_id)
        seconds = time.monotonic() - s.started
        counters = s.counters
        self._report(unit, s.range_id, state, counters, s.records, len(s.letters), one_query)
        gaps, range_done = progress(state) if progress is not None else (0.0, state.done)
        s.reporter.done(state.entities, s.records, len(s.letters), state.retries, gaps,
                        range_done, counters.values if writer is not None else None)
        self._progress.inc("sample_gaps_read", gaps)
        if range_done:
            self._progress.inc("ranges_done")
        stats = SliceStats(
            namespace, s.range_id, state.entities, s.records, state.queries, state.retries,
            seconds, counters.values, f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}",
            errors=len(s.letters), kind=kind, ended=time.time())
        if job.spec.defines(hooks.SLICE_COMPLETED):
            totals = Totals()
            totals.add_slice(dataclasses.replace(stats, counters=dict(counters.values)),
                             job.max_counters)
            fire(job, hooks.SLICE_COMPLETED, namespace=namespace, kind=kind,
                 range_id=s.range_id, range=s.described, totals=totals)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _write_failed(self, namespace: str, kind: str, key: tuple, err: Exception,
                      what: str) -> None:
        """The writer could not write a mutation of the slice being run: a dead letter,
        counted as a failed entity."""
        s = self._slice
        s.letters.append(deadletters.write_error(
            self.job.name, namespace, kind, key, f"{type(err).__name__}: {err}",
            mutation=what))
        self._entity_failed(s.unit, s.range_id, s.letters, s.described, err, key)

    def _entity_failed(self, unit: Unit, range_id: str, letters: list, start: str,
                       err: Exception, key: tuple) -> None:
        """Count a failed entity; fail the run (letters written first) past --max_errors."""
        self._failed += 1
        if self._failed <= self.job.max_errors:
            return
        job = self.job
        first = (f"job {job.name} failed on entity "
                 f"{format_path(path_from_flat(key))} in namespace "
                 f"{namespace_label(unit.namespace)}: {type(err).__name__}: {err}")
        where = ""
        if self.output.dead_letter_parts:
            self._write_letters(unit.namespace, range_id, start, letters)
            where = f"; dead letters: {self.output.dead_letter}"
        if job.max_errors == 0 and not where:
            raise JobFailed(first) from err
        raise JobFailed(f"{first} ({self._failed} entities failed, more than "
                        f"--max_errors={job.max_errors}{where})") from err

    def _write_letters(self, namespace: str, range_id: str, start: str, letters: list) -> None:
        parts = self.output.dead_letter_parts
        if parts is None:
            return
        write_part(parts, deadletters.slice_part_name(namespace, range_id, start), letters)

    def _report(self, unit: Unit, range_id: str, state, counters, records: int, errors: int,
                one_query: bool) -> None:
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
        if self.output.progress_dir is None:  # no channel (Dataflow): the worker's own line
            WORKER_LOG.add(unit.label, range_id, state.entities, self.read.progress_seconds,
                           done=state.done, one_query=one_query)
