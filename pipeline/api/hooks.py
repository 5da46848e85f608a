"""Lifecycle hooks: what a job's ``job_started`` ... ``slice_completed`` get, and when they run.

The hooks run on workers, inside the graph (``pipeline.graph.lifecycle`` fires them). Where
each hook runs (steps of ``MapDatastore`` in ``pipeline/graph/mapper.py``):

- ``job_started``: ``JobStarted``, after ``Start`` and before ``ExpandNamespaces``;
- ``namespace_started``: ``SplitNamespaces``, once the namespace is planned into ranges;
- ``range_started``: ``SplitNamespaces``, as each initial range is emitted (before any read);
- ``slice_started`` / ``slice_completed``: ``ReadRanges``, around each slice (the latter with
  that slice's counters);
- ``range_completed``: ``RangeCompleted``, after ``RangeTotals`` (every piece of the range read);
  for a unit read whole by its first query, ``SplitNamespaces``, right after that slice;
- ``namespace_completed``: ``NamespaceCompleted``, after ``NamespaceTotals`` and, with
  ``--output``, after the namespace's file is composed (``TotalsWithFiles`` joins the two);
- ``job_completed``: ``JobCompleted``, after ``JobTotals`` (fed by ``NamespaceCompleted``),
  before ``Summary`` writes summary.json.

Every "after" is a data dependency: a step consumes the outputs of the step that fires the
earlier hook, so no runner can reorder them. A hook that raises fails the run with a
``JobFailed`` naming the hook and the job. A runner that retries a bundle runs that bundle's
hooks again: hooks must be idempotent.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from pipeline.core.namespaces import namespace_label
from pipeline.core.totals import Totals

JOB_STARTED = "job_started"
JOB_COMPLETED = "job_completed"
NAMESPACE_STARTED = "namespace_started"
NAMESPACE_COMPLETED = "namespace_completed"
RANGE_STARTED = "range_started"
RANGE_COMPLETED = "range_completed"
SLICE_STARTED = "slice_started"
SLICE_COMPLETED = "slice_completed"
HOOKS = (JOB_STARTED, NAMESPACE_STARTED, RANGE_STARTED, SLICE_STARTED,
         SLICE_COMPLETED, RANGE_COMPLETED, NAMESPACE_COMPLETED, JOB_COMPLETED)


@dataclasses.dataclass(frozen=True)
class HookContext:
    """What a lifecycle hook gets.

    - ``event``: the hook's name (``"range_completed"``, ...).
    - ``job``, ``params``: the job's name and the run's parameters (as in ``next``).
    - ``namespace`` (``""`` is the default namespace): namespace, range and slice events;
      None for job events.
    - ``kind``: range and slice events, the kind the range is of (a job may read several).
    - ``range_id`` (e.g. ``acme#3``, the *initial* range; ``acme/Order#3`` when the job reads
      several kinds): range and slice events.
    - ``range``: the bounds, described: the initial range (``range_started``) or what is
      left of the range when the slice starts (slice events).
    - ``totals``: a ``pipeline.Totals`` rolled up to this level — the slice's
      (``slice_completed``), the initial range's (``range_completed``), the namespace's
      (``namespace_completed``), the job's (``job_completed``): entities, records, slices,
      queries, retries, counters, ranges, ... ``namespace_started`` gets the plan only
      (``ranges``, ``samples``); the other "started" events get empty totals.
    - ``namespaces``: ``job_completed`` only: namespace -> its Totals.
    - ``output``: the namespace's output file, complete (``namespace_completed`` with
      ``--output``, e.g. ``OUTPUT/JOB/namespaces/acme.jsonl``; or the namespace's tables when
      streaming); None without a sink. A job reading several kinds has an output per kind:
      ``outputs`` maps each kind to it, and ``output`` joins them.
    - ``kinds`` (a property): the totals per kind, when the job reads several kinds
      (``namespace_completed``, ``job_completed``).
    """

    event: str
    job: str
    params: Mapping[str, str]  # the job's Params
    namespace: Optional[str] = None
    range_id: Optional[str] = None
    range: Optional[str] = None
    totals: Totals = dataclasses.field(default_factory=Totals)
    namespaces: Optional[dict] = None
    output: Optional[str] = None
    kind: Optional[str] = None
    outputs: Optional[dict] = None

    @property
    def counters(self) -> dict:
        """The job's counters rolled up to this level (name -> count)."""
        return self.totals.counters

    @property
    def entities(self) -> int:
        """Entities handed to the job at this level."""
        return self.totals.entities

    @property
    def kinds(self) -> dict:
        """A namespace's (or the job's) totals per kind, when the job reads several kinds."""
        return self.totals.kinds

    def where(self) -> str:
        """Where the hook ran, for messages: ``namespace acme, range acme#3``."""
        parts = []
        if self.namespace is not None:
            parts.append(f"namespace {namespace_label(self.namespace)}")
        if self.kind is not None:
            parts.append(f"kind {self.kind}")
        if self.range_id is not None:
            parts.append(f"range {self.range_id}")
        return ", ".join(parts)
