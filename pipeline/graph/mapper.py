"""``MapDatastore``: the whole mapper as one composite transform.

::

    Create ─ JobStarted ─ ExpandNamespaces ─ Reshuffle ─ SplitNamespaces ─ Reshuffle ─ ReadRanges
                       units │ UnitPlanned, records, SliceStats, changes │ records, SliceStats, changes
                                   records ─→ the sink ←─ records (each part as it is made)
    RangeTotals → RangeCompleted → UnitTotals, + the units read whole (rolled up while planned)
      (+ the sink's outputs) → NamespaceTotals → NamespaceCompleted → JobTotals → JobCompleted → Summary
      [→ CheckErased: a tenant erase that wrote, see ``pipeline.graph.erase``]

A unit is a kind in a namespace: one per namespace for a job reading one kind, one per
(namespace, kind) for a job reading several or all. Each unit is read first by
``SplitNamespaces`` (one query: a small unit is done there, records, hooks and totals all), and
only a unit that fills that query is split and read on by ``ReadRanges``.

A sink (``write``) is a PTransform over ``(records, units)`` (records as (Unit, record), a tuple
of PCollections: see ``pipeline.sinks.inputs``) returning,
per unit, ((namespace, kind), ``NamespaceOutput``); ``UnitCompleted`` consumes it (a
CoGroupByKey with the unit's totals), so ``namespace_completed`` runs after the sink is done with
that namespace. The
sink's ``encode`` turns each record into what it writes, in ``ReadRanges``, so a record that
cannot be written is a dead letter of its entity. Namespaces a failed run completed
(--output_mode=resume) are neither read nor have their hooks fired again; their totals join the
job's before ``JobTotals``.
"""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from pipeline.config import RunConfig
from pipeline.core.totals import Totals
from pipeline.graph.changes import WriteChanges
from pipeline.graph.erase import CheckErasedFn, checks_erase
from pipeline.graph.lifecycle import (
    JobCompletedFn,
    JobStartedFn,
    NamespaceCompletedFn,
    RangeCompletedFn,
    unit_done,
)
from pipeline.graph.namespaces import (
    RECORDS,
    STATS,
    UNIT_TOTALS,
    UNITS,
    ExpandNamespacesFn,
    SplitNamespaceFn,
)
from pipeline.graph.read import CHANGES, ReadRangeFn, Records
from pipeline.graph.rollup import (
    JobSummaryFn,
    NamespaceTotalsFn,
    TotalsFn,
    by_range,
    totals_with_output,
)
from pipeline.graph.summary import BuildSummaryFn


class MapDatastore(beam.PTransform):
    """PBegin -> {'records': a tuple of PCollections of (Unit, record) (planning's, ReadRanges'; see
    ``pipeline.sinks.inputs``), 'summary': dict (not yet written: see
    ``FinishRunFn``), 'files': ((namespace, kind), NamespaceOutput) or None}.

    ``write`` (optional): the sink, a PTransform over ``(records, units)`` returning
    ((namespace, kind), NamespaceOutput) once per unit; ``records``: how the records reach it
    (``Records``: encoded, with ids as (Unit, (id, record)), or nowhere: the first fails the
    run).
    """

    def __init__(self, run: RunConfig, write: Optional[beam.PTransform] = None,
                 records: Records = Records()):
        super().__init__()
        self.run, self.write, self.records = run, write, records

    def expand(self, pbegin):
        job, read, output = self.run.job, self.run.read, self.run.output
        cap, per_kind = job.max_counters, read.query.per_kind
        case = output.case_insensitive
        resumed = resumed_namespaces(output.resumed, cap, per_kind)
        started = (pbegin
                   | "Start" >> beam.Create([None])
                   | "JobStarted" >> beam.ParDo(JobStartedFn(job)))
        split, read_out = read_units(started, self.run, self.records, skip=frozenset(resumed))
        # Not flattened: each part goes to the sink where it is made (see pipeline.sinks.inputs).
        records = (split[RECORDS], read_out.records)
        unit_totals = (
            (split[STATS], read_out[STATS])
            | "AllStats" >> beam.Flatten()
            | "ByRange" >> beam.Map(by_range)
            | "RangeTotals" >> beam.CombinePerKey(TotalsFn(cap))
            | "RangeCompleted" >> beam.ParDo(RangeCompletedFn(job))  # -> ((ns, kind), Totals)
            | "UnitTotals" >> beam.CombinePerKey(TotalsFn(cap)))
        # a unit read whole while planned comes rolled up (most units of a many-tenant run)
        unit_totals = ((unit_totals, split[UNIT_TOTALS])
                       | "AllUnitTotals" >> beam.Flatten())
        files = None
        if self.write is not None:
            files = (records, split[UNITS]) | "WriteFiles" >> self.write
            unit_totals = (
                {"totals": unit_totals, "output": files}
                | "TotalsWithFiles" >> beam.CoGroupByKey()
                | "JoinFiles" >> beam.FlatMap(totals_with_output))  # -> ((ns, kind), (Totals, output))
        completed = (
            unit_totals
            | "UnitCompleted" >> beam.Map(unit_done)  # -> (namespace, (kind, Totals, output))
            | "NamespaceTotals" >> beam.CombinePerKey(NamespaceTotalsFn(cap, per_kind))
            | "NamespaceCompleted" >> beam.ParDo(NamespaceCompletedFn(self.run, case)))
        if resumed:
            completed = (
                (completed, pbegin | "Resumed" >> beam.Create(sorted(resumed.items())))
                | "WithResumed" >> beam.Flatten())
        summary = (
            completed
            | "JobTotals" >> beam.CombineGlobally(JobSummaryFn())  # emits {} for an empty job
            | "JobCompleted" >> beam.ParDo(JobCompletedFn(job))
            | "Summary" >> beam.ParDo(BuildSummaryFn(self.run)))
        if checks_erase(self.run):  # a tenant erase: is anything left?
            summary = summary | "CheckErased" >> beam.ParDo(CheckErasedFn(self.run))
        changes = None
        if self.run.write.enabled and self.run.write.changes_path:
            changes = ((split[CHANGES], read_out[CHANGES]) | "AllChanges" >> beam.Flatten()
                       | "Changes" >> WriteChanges(self.run.write))
        return {"records": records, "summary": summary, "files": files, "changes": changes}


def read_units(start, run: RunConfig, records: Records = Records(), skip: frozenset = frozenset()):
    """The reading half of the mapper, applied to ``start`` (one element): every unit planned
    (``SplitNamespaces``: a small unit read whole there) and the big ones read range by range
    (``ReadRanges``), the job applied to every entity read. Returns the two steps' outputs:
    ``split`` (main: ranges; ``RECORDS``, ``STATS``, ``UNITS``, ``UNIT_TOTALS``, ``CHANGES``)
    and ``read_out``
    (main: records; ``STATS``, ``CHANGES``). ``skip``: namespaces not read (resumed)."""
    job, read = run.job, run.read
    split = (
        start
        | "ExpandNamespaces" >> beam.ParDo(ExpandNamespacesFn(
            read, skip, run.output.progress_dir, job.metrics_namespace))
        | "ReshuffleNamespaces" >> beam.Reshuffle()
        | "SplitNamespaces" >> beam.ParDo(SplitNamespaceFn(run, records))
        .with_outputs(STATS, UNITS, UNIT_TOTALS, RECORDS, CHANGES, main="ranges"))
    read_out = (
        split.ranges
        | "ReshuffleRanges" >> beam.Reshuffle()
        | "ReadRanges" >> beam.ParDo(ReadRangeFn(run, records))
        .with_outputs(STATS, CHANGES, main="records"))
    return split, read_out


def resumed_namespaces(units, cap: int, per_kind: bool) -> dict:
    """The completed units a failed run left (their manifests) -> namespace -> its Totals."""
    out: dict = {}
    for r in units:
        t = out.setdefault(r.namespace, Totals())
        unit = Totals.from_dict(r.totals)
        if per_kind:
            t.add_kind(r.kind, unit, cap)
        else:
            t.add(unit, cap)
    return out
