"""The Beam graph's pieces: expand namespaces, split them, read ranges (an SDF
that applies the job), roll up counters into the summary."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import NamedTuple, Union

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from pipeline import datastore_io as dio
from pipeline import hooks
from pipeline.errors import JobFailed, MapperError
from pipeline.job import Context, Counters
from pipeline.keyorder import format_path, path_from_flat
from pipeline.keyrange import KeyRange, KeyRangeTracker
from pipeline.narrowing import SampleDensity
from pipeline.plan import RunPlan
from pipeline.planning import plan_namespace
from pipeline.progress import PROGRESS
from pipeline.query import namespace_label
from pipeline.reading import SliceState, read_key_slice, read_value_slice
from pipeline.sinks.bigquery_rows import insert_id
from pipeline.summary import (JobSummaryFn, NamespacePlanned, SliceStats, Totals, TotalsFn,
                              build_summary, format_summary, to_json_text)
from pipeline.valuerange import ValueRange, ValueRangeTracker

log = logging.getLogger(__name__)
STATS = "stats"


class RangeTask(NamedTuple):
    """One initial range of one namespace: the element the reading SDF gets."""

    namespace: str
    range_id: str
    restriction: Union[KeyRange, ValueRange]


def _client(plan: RunPlan):
    return dio.client(plan.project, plan.database, plan.emulator_host)


class ExpandNamespacesFn(beam.DoFn):
    """All namespaces (``__namespace__``) or the listed ones, which must exist."""

    def __init__(self, plan: RunPlan):
        self.plan = plan

    def process(self, _):
        existing = dio.with_retries(
            lambda: dio.list_namespaces(_client(self.plan), self.plan.read_time),
            "listing namespaces")
        wanted = self.plan.query.namespaces
        if wanted is None:
            yield from existing
            return
        missing = [n for n in wanted if n not in set(existing)]
        if missing:
            raise MapperError(unknown_namespaces_message(missing, existing))
        yield from wanted


def unknown_namespaces_message(missing, existing) -> str:
    shown = ", ".join(namespace_label(n) for n in existing[:20])
    more = f" and {len(existing) - 20} more" if len(existing) > 20 else ""
    return (f"namespace(s) not found: {', '.join(namespace_label(n) for n in missing)}; "
            f"namespaces with entities: {shown or '(none)'}{more}")


class SplitNamespaceFn(beam.DoFn):
    """A namespace -> its initial ranges (and a NamespacePlanned record)."""

    def __init__(self, plan: RunPlan):
        self.plan = plan

    def process(self, namespace: str):
        ranges, samples = plan_namespace(_client(self.plan), self.plan, namespace)
        label = namespace_label(namespace)
        log.info("namespace %s: %d ranges from %d samples", label, len(ranges), samples)
        hooks.fire(self.plan, hooks.NAMESPACE_STARTED, namespace=namespace,
                   totals=Totals(ranges=len(ranges), samples=samples))
        yield beam.pvalue.TaggedOutput(STATS, NamespacePlanned(namespace, len(ranges), samples))
        for i, r in enumerate(ranges):
            range_id = f"{label}#{i}"
            hooks.fire(self.plan, hooks.RANGE_STARTED, namespace=namespace, range_id=range_id,
                       range=r.describe())
            yield RangeTask(namespace, range_id, r)


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

    After each slice it checkpoints (``defer_remainder``), so a failure repeats
    one slice, never the range; a runner may also split the unread remainder.
    Emits the job's records as (namespace, record) and a SliceStats per slice.
    """

    def __init__(self, plan: RunPlan):
        self.plan = plan

    def setup(self):
        self._client = _client(self.plan)
        self._metric_ns = self.plan.metrics_namespace
        self._entities = Metrics.counter(self._metric_ns, "entities")
        self._records = Metrics.counter(self._metric_ns, "records")
        self._metrics: dict = {}
        self._density: dict = {}  # namespace -> SampleDensity, learnt by this worker's queries

    def process(self, task: RangeTask, tracker=beam.DoFn.RestrictionParam(RangeRestrictions())):
        plan = self.plan
        state = SliceState()
        counters = Counters(plan.max_counters)
        ctx = Context(plan.job_name, plan.params, task.namespace, task.range_id,
                      tracker.current_restriction().describe(), counters)
        keys_only = plan.query.keys_only
        hooks.fire(plan, hooks.SLICE_STARTED, namespace=task.namespace, range_id=task.range_id,
                   range=ctx.range)
        started = time.monotonic()
        records = 0
        next_fn = plan.job.next
        with_ids = plan.bigquery is not None
        if plan.query.prop_range is not None:
            entities = read_value_slice(self._client, plan, task.namespace, tracker, state)
        else:
            density = self._density.setdefault(task.namespace, SampleDensity())
            entities = read_key_slice(self._client, plan, task.namespace, tracker, state, density)
        for entity in entities:
            item = entity.key if keys_only else entity
            try:
                out = next_fn(ctx, item)
                if out is not None:
                    for i, record in enumerate(out):
                        records += 1
                        if with_ids:  # a stable insert id: (job, namespace, key, index)
                            record = (insert_id(plan.job_name, task.namespace,
                                                entity.key.flat_path, i), record)
                        yield task.namespace, record
            except MapperError:
                raise
            except Exception as e:
                raise JobFailed(
                    f"job {plan.job_name} failed on entity "
                    f"{format_path(path_from_flat(entity.key.flat_path))} in namespace "
                    f"{namespace_label(task.namespace)}: {type(e).__name__}: {e}") from e
        seconds = time.monotonic() - started
        self._report(task, state, counters, records, seconds)
        stats = SliceStats(
            task.namespace, task.range_id, state.entities, records, state.queries, state.retries,
            seconds, counters.values, f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
        if hooks.overrides(plan.job, hooks.SLICE_COMPLETED):
            totals = Totals()
            totals.add_slice(dataclasses.replace(stats, counters=dict(counters.values)),
                             plan.max_counters)
            hooks.fire(plan, hooks.SLICE_COMPLETED, namespace=task.namespace,
                       range_id=task.range_id, range=ctx.range, totals=totals)
        yield beam.pvalue.TaggedOutput(STATS, stats)
        if not state.done:
            tracker.defer_remainder()

    def _report(self, task, state, counters, records, seconds) -> None:
        self._entities.inc(state.entities)
        if records:
            self._records.inc(records)
        for name, n in counters.values.items():
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = Metrics.counter(self._metric_ns, name)
            metric.inc(n)
        PROGRESS.add(task.namespace, state.entities, self.plan.progress_seconds)


class WriteSummaryFn(beam.DoFn):
    """Builds the job summary, logs it, and writes it as JSON when asked."""

    def __init__(self, plan: RunPlan):
        self.plan = plan

    def process(self, per_namespace: dict):
        plan = self.plan
        summary = build_summary(
            plan.job_name, plan.query.describe(), dict(plan.params), plan.started,
            dt.datetime.now(dt.timezone.utc), per_namespace, plan.max_counters, plan.read_time)
        log.info("summary:\n%s", format_summary(summary))
        if plan.summary_path:
            with FileSystems.create(plan.summary_path) as f:
                f.write(to_json_text(summary).encode("utf-8"))
        yield summary


def _by_range(stats):
    """Slices of a range (and a namespace's plan record) share a key: (namespace, range id)."""
    return (stats.namespace, getattr(stats, "range_id", "")), stats


class MapDatastore(beam.PTransform):
    """PBegin -> {'records': (namespace, record), 'summary': dict, 'files': (namespace, path)}:
    the whole mapper.

    ``write`` (optional): a PTransform applied to ``(records, namespaces)`` that writes the
    records and returns (namespace, final file path) per namespace, e.g.
    ``pipeline.sinks.files.WriteNamespaceFiles``. ``NamespaceCompleted`` then consumes those
    paths (a CoGroupByKey with the namespace totals): ``namespace_completed`` runs after the
    namespace's file is complete, and gets its path as ``ctx.output``.
    """

    def __init__(self, plan: RunPlan, write=None):
        super().__init__()
        self.plan = plan
        self.write = write

    def expand(self, pbegin):
        plan = self.plan
        namespaces = (
            pbegin
            | "Start" >> beam.Create([None])
            | "JobStarted" >> beam.ParDo(hooks.JobStartedFn(plan))
            | "ExpandNamespaces" >> beam.ParDo(ExpandNamespacesFn(plan)))
        split = (
            namespaces
            | "ReshuffleNamespaces" >> beam.Reshuffle()
            | "SplitNamespaces" >> beam.ParDo(SplitNamespaceFn(plan)).with_outputs(STATS, main="ranges"))
        read = (
            split.ranges
            | "ReshuffleRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(ReadRangeFn(plan)).with_outputs(STATS, main="records"))
        namespace_totals = (
            (split[STATS], read[STATS])
            | "AllStats" >> beam.Flatten()
            | "ByRange" >> beam.Map(_by_range)
            | "RangeTotals" >> beam.CombinePerKey(TotalsFn(plan.max_counters))
            | "RangeCompleted" >> beam.ParDo(hooks.RangeCompletedFn(plan))  # -> (namespace, Totals)
            | "NamespaceTotals" >> beam.CombinePerKey(TotalsFn(plan.max_counters)))
        files = None
        if self.write is not None:
            files = (read.records, namespaces) | "WriteFiles" >> self.write
            namespace_totals = (
                {"totals": namespace_totals, "output": files}
                | "TotalsWithFiles" >> beam.CoGroupByKey()
                | "JoinFiles" >> beam.FlatMap(_totals_with_file))  # -> (namespace, (Totals, path))
        summary = (
            namespace_totals
            | "NamespaceCompleted" >> beam.ParDo(hooks.NamespaceCompletedFn(plan))
            | "JobTotals" >> beam.CombineGlobally(JobSummaryFn())  # emits {} for an empty job
            | "JobCompleted" >> beam.ParDo(hooks.JobCompletedFn(plan))
            | "Summary" >> beam.ParDo(WriteSummaryFn(plan)))
        return {"records": read.records, "summary": summary, "files": files}


def _totals_with_file(kv):
    """A namespace's totals joined with its output: a file path, or what its rows did in
    BigQuery (whose counters join the namespace's)."""
    namespace, groups = kv
    for totals in groups["totals"]:
        outputs = list(groups["output"])
        out = outputs[0] if outputs else None
        extra = getattr(out, "counters", None)
        if extra is not None:
            totals = dataclasses.replace(totals, counters={**totals.counters, **extra})
            out = out.output
        yield namespace, (totals, out)
