"""The first steps of the graph: the namespaces to read, and each one's units (the kinds read
in it) planned: read first, and cut into ranges only where big (the elements of the reading
step).

``ExpandNamespaces`` streams the ``__namespace__`` listing (with, where Datastore keeps
statistics, the entity count of the big namespaces). After a ``Reshuffle``, ``SplitNamespaces``
plans them on every worker, several at once on each (``InFlight``, ``--reads_in_flight``): a
unit's first query reads up to ``--query_entities`` entities; a unit it exhausts is done there,
handed to the job as one range read in one slice (``<part>#0``), with no sample; a unit that
fills it is sampled and split, its entities already read being the first slices of the ranges
they fall in (``pipeline.datastore.planning``). Only the rest goes on to ``ReadRanges``.
"""
from __future__ import annotations

import logging
from typing import NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from pipeline.api import hooks
from pipeline.config import ReadConfig, RunConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label, require_listed
from pipeline.core.planning import STATS_MARGIN
from pipeline.core.progress import plan_gaps
from pipeline.core.summary import plural
from pipeline.core.totals import NO_KIND, Totals, UnitPlanned, read_whole
from pipeline.core.units import Unit, unit_for
from pipeline.core.valuerange import ValueRange
from pipeline.datastore import retry
from pipeline.datastore.client import client
from pipeline.datastore.metadata import iter_namespaces, list_kinds
from pipeline.datastore.planning import UnitPlan, first_read_bound, plan_unit
from pipeline.datastore.statistics import big_namespaces, kind_counts
from pipeline.errors import MapperError
from pipeline.graph.apply import CHANGES, STATS, Records, SliceJob
from pipeline.graph.inflight import InFlight
from pipeline.graph.lifecycle import fire
from pipeline.graph.progress import Channel, ProgressCounters
from pipeline.graph.slices import SliceState

log = logging.getLogger(__name__)

#: The tag of the side output that carries every unit planned (a sink's "known" units).
UNITS = "units"
#: The tag of the side output that carries the records of the slices read while planning.
RECORDS = "records"
#: The tag of the side output that carries the totals of each unit read whole while planned:
#: ((namespace, kind), Totals), as the roll-up's unit level gives them.
UNIT_TOTALS = "unit_totals"
#: Namespaces listed between two progress events of the listing.
NAMESPACES_BATCH = 1000

__all__ = ["CHANGES", "RECORDS", "STATS", "UNITS", "UNIT_TOTALS", "ExpandNamespacesFn",
           "NamespaceTask", "RangeTask", "SplitNamespaceFn"]


class NamespaceTask(NamedTuple):
    """A namespace to plan; ``size``: its entities (all kinds) by Datastore's statistics, for
    a namespace they say is big (None: unknown, or small)."""

    namespace: str
    size: Optional[int] = None


class RangeTask(NamedTuple):
    """One initial range of one unit (or what its first read left of it): the element the
    reading SDF gets."""

    unit: Unit
    range_id: str
    restriction: Union[KeyRange, ValueRange]

    @property
    def namespace(self) -> str:
        return self.unit.namespace

    @property
    def kind(self) -> str:
        return self.unit.kind


class ExpandNamespacesFn(beam.DoFn):
    """All namespaces (``__namespace__``, streamed) or the listed ones, which must exist;
    without those a failed run completed (``skip``: --output_mode=resume). Each as a
    NamespaceTask, with its size where the statistics say it is big."""

    def __init__(self, read: ReadConfig, skip: frozenset = frozenset(),
                 progress_dir: Optional[str] = None, metrics_namespace: str = "mapper"):
        self.read, self.skip = read, skip
        self.progress_dir, self.metrics_namespace = progress_dir, metrics_namespace

    def process(self, element):
        read = self.read
        c = client(read.target)
        where = read.target.describe()
        big = big_namespaces(c, read.retry, read.read_time,
                             STATS_MARGIN * first_read_bound(read), where)
        if big:
            log.info("statistics: %d namespaces of %d entities or more are sampled at once",
                     len(big), STATS_MARGIN * first_read_bound(read))
        channel, counters = Channel(self.progress_dir), ProgressCounters(self.metrics_namespace)
        counted = 0  # the listing is streamed: the progress hears of it in batches
        for ns in self._namespaces(c, where):
            if ns not in self.skip:
                counted += 1
                if counted == NAMESPACES_BATCH:
                    channel.emit({"e": "namespaces", "n": counted})
                    counters.inc("namespaces", counted)
                    counted = 0
                yield NamespaceTask(ns, big.get(ns))
        channel.emit({"e": "namespaces", "n": counted})
        counters.inc("namespaces", counted)

    def _namespaces(self, c, where: str):
        read = self.read
        wanted = read.query.namespaces
        listing = iter_namespaces(c, read.retry, read.read_time, where)
        if wanted is None:
            yield from listing
            return
        try:
            require_listed(wanted, listing)
        except ValueError as e:
            raise MapperError(str(e)) from None
        yield from wanted


class NamespacePlan(NamedTuple):
    namespace: str
    units: list  # (Unit, UnitPlan)


class SplitNamespaceFn(beam.DoFn):
    """A NamespaceTask -> its units planned (every kind listed from ``__kind__`` for
    ALL_KINDS): the unit on ``units``, firing ``namespace_started`` once its units are planned
    and each ``range_started``; then the slices its first reads made, handed to the job
    (records on ``records``, a writing job's writes and their samples on ``changes``:
    ``SliceJob``). A unit its first read exhausted is rolled up here: its totals on
    ``unit_totals``, its ``range_completed`` fired. A unit split for ``ReadRanges`` gives its
    UnitPlanned record and its first slices' SliceStats on ``stats``, and the RangeTasks left
    (main output).

    The queries of up to ``read.reads_in_flight`` namespaces run at once on a pool
    (``InFlight``); everything else (hooks, the job) runs in the DoFn's thread."""

    def __init__(self, run: RunConfig, records: Records = Records()):
        self.run, self.records = run, records
        self.job, self.read, self.output = run.job, run.read, run.output

    def setup(self):
        self._client = client(self.read.target)
        self._slices = SliceJob(self.run, self.records, self._client)
        self._inflight = InFlight(self.read.reads_in_flight)
        self._channel = Channel(self.output.progress_dir)
        self._counters = ProgressCounters(self.job.metrics_namespace)

    def start_bundle(self):
        self._inflight.reset()

    def process(self, task):
        if isinstance(task, str):  # a bare namespace (tests feed them)
            task = NamespaceTask(task)
        for plan in self._inflight.submit(self._plan, task):
            yield from self._emit(plan)

    def finish_bundle(self):
        for plan in self._inflight.drain():
            for out in self._emit(plan):
                yield _windowed(out)

    def teardown(self):
        inflight = getattr(self, "_inflight", None)
        if inflight is not None:
            inflight.close()

    # -- on the pool: queries only -------------------------------------------------------------
    def _kinds(self, namespace: str) -> tuple:
        """The kinds read in ``namespace``: the job's one kind (planned even where it has no
        entity, so every namespace has its file, as before kinds), or those of the listed
        kinds (or every kind, for ALL_KINDS) the namespace's ``__kind__`` listing holds."""
        read = self.read
        kinds = read.query.kinds
        if kinds is not None and len(kinds) == 1:
            return kinds
        listed = retry.call(
            lambda: list_kinds(self._client, namespace, read.retry, read.read_time),
            f"listing the kinds of namespace {namespace_label(namespace)}", read.retry,
            where=read.target.describe())
        return tuple(listed) if kinds is None else tuple(k for k in kinds if k in set(listed))

    def _plan(self, task: NamespaceTask) -> NamespacePlan:
        read, ns = self.read, task.namespace
        counts = {}
        if task.size is not None:  # a big namespace: which of its kinds are big?
            counts = kind_counts(self._client, ns, read.retry, read.read_time,
                                 read.target.describe())
        units = []
        for kind in self._kinds(ns):
            unit = unit_for(ns, kind, read.query.per_kind, self.output.case_insensitive)
            units.append((unit, plan_unit(self._client, read, ns, kind, counts.get(kind))))
        return NamespacePlan(ns, units)

    # -- in the DoFn's thread: hooks, the job, outputs -------------------------------------------
    def _emit(self, plan: NamespacePlan):
        job, ns = self.job, plan.namespace
        fire(job, hooks.NAMESPACE_STARTED, namespace=ns,
             totals=Totals(ranges=sum(len(p.ranges) for _, p in plan.units),
                           samples=sum(p.samples for _, p in plan.units)))
        if not plan.units:  # none of the job's kinds here: the namespace still completes
            yield beam.pvalue.TaggedOutput(UNIT_TOTALS, ((ns, NO_KIND), Totals()))
        planned = []
        for unit, p in plan.units:
            self._log(unit, p)
            yield beam.pvalue.TaggedOutput(UNITS, unit)
            planned.append(UnitPlanned(ns, len(p.ranges), p.samples, retries=p.retries,
                                       kind=unit.kind))
            if p.to_read:  # rolled up with the ranges ReadRanges reads
                yield beam.pvalue.TaggedOutput(STATS, planned[-1])
            for i, r in enumerate(p.ranges):
                fire(job, hooks.RANGE_STARTED, namespace=ns, kind=unit.kind,
                     range_id=f"{unit.part}#{i}", range=r.describe())
        self._report(plan)
        for (unit, p), record in zip(plan.units, planned):
            if not p.to_read:
                yield from self._done_here(unit, p, record)
                continue
            yield from self._first_slices(unit, p)
            for i, r in p.to_read:
                yield RangeTask(unit, f"{unit.part}#{i}", r)

    def _done_here(self, unit: Unit, p: UnitPlan, planned: UnitPlanned):
        """A unit its first read exhausted: its slices handed to the job, then its ranges'
        and its own totals rolled up here (``read_whole``), each ``range_completed`` fired,
        and the unit's totals on ``unit_totals``: no shuffle for what is already whole."""
        slices = []
        for out in self._first_slices(unit, p):
            if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == STATS:
                slices.append(out.value)
            else:
                yield out
        ranges, totals = read_whole(planned, slices, self.job.max_counters)
        for range_id, t in ranges.items():
            fire(self.job, hooks.RANGE_COMPLETED, namespace=unit.namespace, kind=unit.kind,
                 range_id=range_id, totals=t)
        yield beam.pvalue.TaggedOutput(UNIT_TOTALS, ((unit.namespace, unit.kind), totals))

    def _report(self, plan: NamespacePlan) -> None:
        """The namespace's plan on the progress channel and the progress counters."""
        limit = self.read.shards * self.read.oversampling
        for unit, p in plan.units:
            gaps = sum(plan_gaps(r) for r in p.ranges)
            self._channel.emit({"e": "unit", "unit": unit.label, "ns": plan.namespace,
                                "ranges": len(p.ranges), "gaps": gaps,
                                "capped": p.samples >= limit, "stat": None})
            self._counters.inc("ranges", len(p.ranges))
            self._counters.inc("sample_gaps", gaps)
        self._channel.emit({"e": "planned", "ns": plan.namespace})
        self._counters.inc("namespaces_planned")

    def _first_slices(self, unit: Unit, p: UnitPlan):
        """The slices the unit's first read made: one per range it reached (the read's one
        query and its retries are the first slice's)."""
        one_query = not p.to_read  # the first read was the whole unit
        for n, s in enumerate(p.first_slices):
            state = SliceState(entities=s.stop - s.start, returned=s.stop - s.start,
                               queries=1 if n == 0 else 0,
                               retries=p.first_retries if n == 0 else 0, done=s.rest is None)
            r = p.ranges[s.index]
            # the gaps this first slice passed: its range's, less those left for ReadRanges
            gaps = plan_gaps(r) - (plan_gaps(s.rest) if s.rest is not None else 0.0)
            for out in self._slices.run(unit, f"{unit.part}#{s.index}", r.describe(),
                                        p.first[s.start:s.stop], state, one_query,
                                        progress=lambda _, g=gaps, d=s.rest is None: (g, d)):
                yield out if isinstance(out, beam.pvalue.TaggedOutput) else \
                    beam.pvalue.TaggedOutput(RECORDS, out)

    def _log(self, unit: Unit, p: UnitPlan) -> None:
        what = "unit" if self.read.query.per_kind else "namespace"
        if not p.to_read:  # read in one query: thousands of these say nothing worth a line
            log.debug("%s %s: read first, %d entities, one query", what, unit.label,
                      len(p.first))
            return
        log.info("%s %s: %s from %s%s", what, unit.label, plural(len(p.ranges), "range"),
                 plural(p.samples, "sample"),
                 f" ({plural(len(p.first), 'entity', 'entities')} read first)"
                 if p.read_first else "")


def _windowed(out):
    """An output of ``finish_bundle``: Beam needs it windowed (batch: the global window)."""
    if isinstance(out, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(out.tag, GlobalWindows.windowed_value(out.value))
    return GlobalWindows.windowed_value(out)
