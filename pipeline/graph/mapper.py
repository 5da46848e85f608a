"""``MapDatastore``: the whole mapper as one composite transform.

::

    Create ─ JobStarted ─ ExpandNamespaces ─ Reshuffle ─ SplitNamespaces ─ Reshuffle ─ ReadRanges
                                                               │ NamespacePlanned        │ records, SliceStats
                                                               └────────── Flatten ──────┘
    RangeTotals → RangeCompleted → NamespaceTotals → NamespaceCompleted → JobTotals → JobCompleted → Summary

A sink (``write``) is a PTransform over ``(records, namespaces)`` returning, per namespace, a
``NamespaceOutput``; ``NamespaceCompleted`` consumes it (a CoGroupByKey with the namespace's
totals), so ``namespace_completed`` runs after the sink is done with that namespace. The
sink's ``encode`` turns each record into what it writes, in ``ReadRanges``, so a record that
cannot be written is a dead letter of its entity. Namespaces a failed run completed
(--output_mode=resume) are not read; their totals join the job's before ``JobTotals``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import apache_beam as beam

from pipeline.config import RunConfig
from pipeline.core.totals import Totals
from pipeline.graph.lifecycle import (
    JobCompletedFn,
    JobStartedFn,
    NamespaceCompletedFn,
    RangeCompletedFn,
)
from pipeline.graph.namespaces import STATS, ExpandNamespacesFn, SplitNamespaceFn
from pipeline.graph.read import ReadRangeFn, RecordId
from pipeline.graph.rollup import JobSummaryFn, TotalsFn, by_range, totals_with_output
from pipeline.graph.summary import BuildSummaryFn


class MapDatastore(beam.PTransform):
    """PBegin -> {'records': (namespace, record), 'summary': dict (not yet written: see
    ``FinishRunFn``), 'files': (namespace, NamespaceOutput) or None}.

    ``write`` (optional): the sink, a PTransform over ``(records, namespaces)`` returning
    (namespace, NamespaceOutput) once per namespace; ``record_id`` (optional): the records
    reach it as (namespace, (id, record)) (see ``ReadRangeFn``); ``encode`` (optional): each
    record as the sink writes it.
    """

    def __init__(self, run: RunConfig, write: Optional[beam.PTransform] = None,
                 record_id: Optional[RecordId] = None,
                 encode: Optional[Callable[[Any], Any]] = None):
        super().__init__()
        self.run = run
        self.write = write
        self.record_id = record_id
        self.encode = encode

    def expand(self, pbegin):
        job, read, output = self.run.job, self.run.read, self.run.output
        resumed = {r.namespace: Totals.from_dict(r.totals) for r in output.resumed}
        namespaces = (
            pbegin
            | "Start" >> beam.Create([None])
            | "JobStarted" >> beam.ParDo(JobStartedFn(job))
            | "ExpandNamespaces" >> beam.ParDo(ExpandNamespacesFn(read, frozenset(resumed))))
        split = (
            namespaces
            | "ReshuffleNamespaces" >> beam.Reshuffle()
            | "SplitNamespaces" >> beam.ParDo(SplitNamespaceFn(job, read)).with_outputs(
                STATS, main="ranges"))
        read_out = (
            split.ranges
            | "ReshuffleRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(ReadRangeFn(
                job, read, output, self.record_id, self.encode)).with_outputs(
                STATS, main="records"))
        namespace_totals = (
            (split[STATS], read_out[STATS])
            | "AllStats" >> beam.Flatten()
            | "ByRange" >> beam.Map(by_range)
            | "RangeTotals" >> beam.CombinePerKey(TotalsFn(job.max_counters))
            | "RangeCompleted" >> beam.ParDo(RangeCompletedFn(job))  # -> (namespace, Totals)
            | "NamespaceTotals" >> beam.CombinePerKey(TotalsFn(job.max_counters)))
        files = None
        if self.write is not None:
            files = (read_out.records, namespaces) | "WriteFiles" >> self.write
            namespace_totals = (
                {"totals": namespace_totals, "output": files}
                | "TotalsWithFiles" >> beam.CoGroupByKey()
                | "JoinFiles" >> beam.FlatMap(totals_with_output))  # -> (namespace, (Totals, output))
        completed = namespace_totals | "NamespaceCompleted" >> beam.ParDo(
            NamespaceCompletedFn(self.run))
        if resumed:
            completed = (
                (completed, pbegin | "Resumed" >> beam.Create(sorted(resumed.items())))
                | "WithResumed" >> beam.Flatten())
        summary = (
            completed
            | "JobTotals" >> beam.CombineGlobally(JobSummaryFn())  # emits {} for an empty job
            | "JobCompleted" >> beam.ParDo(JobCompletedFn(job))
            | "Summary" >> beam.ParDo(BuildSummaryFn(self.run)))
        return {"records": read_out.records, "summary": summary, "files": files}
