"""Lifecycle hooks: a job's ``job_started`` ... ``slice_completed``, run on workers, inside the graph.

Where each hook runs (steps of ``MapDatastore`` in ``transforms.py``):

- ``job_started``: ``JobStarted``, after ``Start`` and before ``ExpandNamespaces``;
- ``namespace_started``: ``SplitNamespaces``, once the namespace is planned into ranges;
- ``range_started``: ``SplitNamespaces``, as each initial range is emitted (before any read);
- ``slice_started`` / ``slice_completed``: ``ReadRanges``, around each slice (the latter with
  that slice's counters);
- ``range_completed``: ``RangeCompleted``, after ``RangeTotals`` (every piece of the range read);
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

import copy
import dataclasses
from typing import Optional

import apache_beam as beam

from pipeline.errors import JobFailed
from pipeline.job import JobSpec, Params
from pipeline.query import namespace_label
from pipeline.summary import Totals

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
    - ``range_id`` (e.g. ``acme#3``, the *initial* range): range and slice events.
    - ``range``: the bounds, described: the initial range (``range_started``) or what is
      left of the range when the slice starts (slice events).
    - ``totals``: a ``pipeline.summary.Totals`` rolled up to this level — the slice's
      (``slice_completed``), the initial range's (``range_completed``), the namespace's
      (``namespace_completed``), the job's (``job_completed``): entities, records, slices,
      queries, retries, counters, ranges, ... ``namespace_started`` gets the plan only
      (``ranges``, ``samples``); the other "started" events get empty totals.
    - ``namespaces``: ``job_completed`` only: namespace -> its Totals.
    - ``output``: the namespace's output file, complete (``namespace_completed`` with
      ``--output``, e.g. ``OUTPUT/JOB/namespaces/acme.jsonl``); None without ``--output``.
    """

    event: str
    job: str
    params: Params
    namespace: Optional[str] = None
    range_id: Optional[str] = None
    range: Optional[str] = None
    totals: Totals = dataclasses.field(default_factory=Totals)
    namespaces: Optional[dict] = None
    output: Optional[str] = None

    @property
    def counters(self) -> dict:
        """The job's counters rolled up to this level (name -> count)."""
        return self.totals.counters

    @property
    def entities(self) -> int:
        """Entities handed to the job at this level."""
        return self.totals.entities

    def where(self) -> str:
        parts = []
        if self.namespace is not None:
            parts.append(f"namespace {namespace_label(self.namespace)}")
        if self.range_id is not None:
            parts.append(f"range {self.range_id}")
        return ", ".join(parts)


def overrides(job: JobSpec, event: str) -> bool:
    """Whether the job defines this hook (the JobSpec defaults do nothing)."""
    return getattr(type(job), event, None) is not getattr(JobSpec, event)


def fire(plan, event: str, **fields) -> None:
    """Run the job's ``event`` hook with a HookContext; its failure fails the run, named."""
    job = plan.job
    if not overrides(job, event):
        return
    ctx = HookContext(event, plan.job_name, plan.params, **fields)
    try:
        getattr(job, event)(ctx)
    except Exception as e:
        where = ctx.where()
        raise JobFailed(
            f"job {plan.job_name}: hook {event} failed" + (f" ({where})" if where else "")
            + f": {type(e).__name__}: {e}") from e


class JobStartedFn(beam.DoFn):
    """Fires ``job_started``, then passes the start element on to the namespace listing."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, element):
        fire(self.plan, JOB_STARTED)
        yield element


class RangeCompletedFn(beam.DoFn):
    """((namespace, range id), Totals) -> (namespace, Totals), firing ``range_completed``.

    The key (namespace, "") carries the namespace's plan record, not a range: no hook.
    """

    def __init__(self, plan):
        self.plan = plan

    def process(self, kv):
        (namespace, range_id), totals = kv
        if range_id:
            fire(self.plan, RANGE_COMPLETED, namespace=namespace, range_id=range_id,
                 totals=copy.deepcopy(totals))
        yield namespace, totals


class NamespaceCompletedFn(beam.DoFn):
    """(namespace, Totals) or (namespace, (Totals, output path)) -> (namespace, Totals),
    firing ``namespace_completed`` (with the namespace's composed file as ``ctx.output``)."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, kv):
        namespace, value = kv
        output = None
        if isinstance(value, tuple):
            value, output = value
        fire(self.plan, NAMESPACE_COMPLETED, namespace=namespace, totals=copy.deepcopy(value),
             output=output)
        yield namespace, value


class JobCompletedFn(beam.DoFn):
    """{namespace: Totals} -> the same, firing ``job_completed`` (also for an empty job)."""

    def __init__(self, plan):
        self.plan = plan

    def process(self, per_namespace: dict):
        if overrides(self.plan.job, JOB_COMPLETED):
            total = Totals()
            for t in per_namespace.values():
                total.add(t, self.plan.max_counters)
            fire(self.plan, JOB_COMPLETED, totals=total,
                 namespaces=copy.deepcopy(per_namespace))
        yield per_namespace
