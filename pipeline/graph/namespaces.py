"""The first steps of the graph: the namespaces to read, and each one's units (the kinds read
in it) cut into their initial ranges (the elements of the reading step)."""
from __future__ import annotations

import logging
from typing import NamedTuple, Optional, Union

import apache_beam as beam

from pipeline.api import hooks
from pipeline.config import JobConfig, ReadConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label, require_namespaces
from pipeline.core.progress import plan_gaps
from pipeline.core.summary import plural
from pipeline.core.totals import NO_KIND, Totals, UnitPlanned
from pipeline.core.units import Unit, unit_for
from pipeline.core.valuerange import ValueRange
from pipeline.datastore import retry
from pipeline.datastore.client import client
from pipeline.datastore.metadata import list_kinds, list_namespaces
from pipeline.datastore.sampling import split_unit
from pipeline.errors import MapperError
from pipeline.graph.lifecycle import fire
from pipeline.graph.progress import Channel, ProgressCounters

log = logging.getLogger(__name__)

#: The tag of the side output that carries SliceStats and UnitPlanned records.
STATS = "stats"
#: The tag of the side output that carries every unit planned (a sink's "known" units).
UNITS = "units"


class RangeTask(NamedTuple):
    """One initial range of one unit: the element the reading SDF gets."""

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
    """All namespaces (``__namespace__``) or the listed ones, which must exist; without those a
    failed run completed (``skip``: --output_mode=resume)."""

    def __init__(self, read: ReadConfig, skip: frozenset = frozenset(),
                 progress_dir: Optional[str] = None, metrics_namespace: str = "mapper"):
        self.read, self.skip = read, skip
        self.progress_dir, self.metrics_namespace = progress_dir, metrics_namespace

    def process(self, element):
        todo = [ns for ns in self._namespaces() if ns not in self.skip]
        Channel(self.progress_dir).emit({"e": "namespaces", "n": len(todo)})
        ProgressCounters(self.metrics_namespace).inc("namespaces", len(todo))
        yield from todo

    def _namespaces(self):
        read = self.read
        existing = retry.call(
            lambda: list_namespaces(client(read.target), read.retry, read.read_time),
            "listing namespaces", read.retry, where=read.target.describe())
        wanted = read.query.namespaces
        if wanted is None:
            yield from existing
            return
        try:
            require_namespaces(wanted, existing)
        except ValueError as e:
            raise MapperError(str(e)) from None
        yield from wanted


class SplitNamespaceFn(beam.DoFn):
    """A namespace -> the initial ranges of each kind read in it (every kind listed from
    ``__kind__`` for ALL_KINDS), a UnitPlanned record per unit on ``stats`` and the unit on
    ``units``, firing ``namespace_started`` once its units are planned and each
    ``range_started``."""

    def __init__(self, job: JobConfig, read: ReadConfig, case_insensitive: bool = False,
                 progress_dir: Optional[str] = None):
        self.job, self.read = job, read
        self.case_insensitive = case_insensitive
        self.progress_dir = progress_dir

    def setup(self):
        self._counters = ProgressCounters(self.job.metrics_namespace)

    def _kinds(self, c, namespace: str) -> tuple:
        """The kinds read in ``namespace``: the job's one kind (planned even where it has no
        entity, so every namespace has its file, as before kinds), or those of the listed
        kinds (or every kind, for ALL_KINDS) the namespace's ``__kind__`` listing holds."""
        read = self.read
        kinds = read.query.kinds
        if kinds is not None and len(kinds) == 1:
            return kinds
        listed = retry.call(
            lambda: list_kinds(c, namespace, read.retry, read.read_time),
            f"listing the kinds of namespace {namespace_label(namespace)}", read.retry,
            where=read.target.describe())
        return tuple(listed) if kinds is None else tuple(k for k in kinds if k in set(listed))

    def process(self, namespace: str):
        read = self.read
        c = client(read.target)
        planned = []
        for kind in self._kinds(c, namespace):
            retries: list = []
            ranges, samples = split_unit(c, read, namespace, kind, on_retry=retries.append)
            unit = unit_for(namespace, kind, read.query.per_kind, self.case_insensitive)
            planned.append((unit, ranges, samples, len(retries)))
            log.info("%s %s: %s from %s", "unit" if read.query.per_kind else "namespace",
                     unit.label, plural(len(ranges), "range"), plural(samples, "sample"))
        fire(self.job, hooks.NAMESPACE_STARTED, namespace=namespace,
             totals=Totals(ranges=sum(len(p[1]) for p in planned),
                           samples=sum(p[2] for p in planned)))
        self._report(namespace, planned)
        if not planned:  # none of the job's kinds here: the namespace still completes
            yield beam.pvalue.TaggedOutput(STATS, UnitPlanned(namespace, 0, 0, kind=NO_KIND))
        for unit, ranges, samples, retries in planned:
            yield beam.pvalue.TaggedOutput(UNITS, unit)
            yield beam.pvalue.TaggedOutput(STATS, UnitPlanned(
                namespace, len(ranges), samples, retries=retries, kind=unit.kind))
            for i, r in enumerate(ranges):
                range_id = f"{unit.part}#{i}"
                fire(self.job, hooks.RANGE_STARTED, namespace=namespace, kind=unit.kind,
                     range_id=range_id, range=r.describe())
                yield RangeTask(unit, range_id, r)

    def _report(self, namespace: str, planned: list) -> None:
        """The namespace's plan on the progress channel and the progress counters."""
        channel, limit = Channel(self.progress_dir), self.read.shards * self.read.oversampling
        for unit, ranges, samples, _ in planned:
            gaps = sum(plan_gaps(r) for r in ranges)
            channel.emit({"e": "unit", "unit": unit.label, "ns": namespace,
                          "ranges": len(ranges), "gaps": gaps, "capped": samples >= limit,
                          "stat": None})
            self._counters.inc("ranges", len(ranges))
            self._counters.inc("sample_gaps", gaps)
        channel.emit({"e": "planned", "ns": namespace})
        self._counters.inc("namespaces_planned")
