"""Firing a job's lifecycle hooks (``pipeline.api.hooks``), and the steps that fire the
job, range and namespace ones after the roll-up: ``JobStarted``, ``RangeCompleted``,
``NamespaceCompleted`` (which then records a manifest per unit of the namespace: a resumed run
need not read it again, nor fire its hooks), ``JobCompleted``.
(``namespace_started`` and ``range_started`` fire in ``SplitNamespaces``, the slice hooks in
``ReadRanges``.)"""
from __future__ import annotations

import copy
import json
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.api import hooks
from pipeline.api.hooks import HookContext
from pipeline.config import JobConfig, RunConfig
from pipeline.core.terminal import safe_stdout
from pipeline.core.totals import Totals
from pipeline.core.units import unit_for
from pipeline.errors import JobFailed
from pipeline.graph.progress import ProgressCounters
from pipeline.sinks.files.layout import manifest_path
from pipeline.sinks.files.prepare import manifest


#: The fields a hook is given a copy of.
_COPIED = frozenset({"totals", "namespaces"})


def fire(job: JobConfig, event: str, **fields) -> None:
    """Run the job's ``event`` hook with a HookContext; its failure fails the run, named."""
    spec = job.spec
    if not spec.defines(event):
        return
    # the hook gets copies of the totals (it may change them), made only for a hook defined
    fields = {k: copy.deepcopy(v) if k in _COPIED else v for k, v in fields.items()}
    ctx = HookContext(event, job.name, job.params, **fields)
    try:
        with safe_stdout():  # what the hook prints reaches a terminal escaped
            getattr(spec, event)(ctx)
    except Exception as e:
        where = ctx.where()
        raise JobFailed(
            f"job {job.name}: hook {event} failed" + (f" ({where})" if where else "")
            + f": {type(e).__name__}: {e}") from e


class JobStartedFn(beam.DoFn):
    """Fires ``job_started``, then passes the start element on to the namespace listing."""

    def __init__(self, job: JobConfig):
        self.job = job

    def process(self, element):
        fire(self.job, hooks.JOB_STARTED)
        yield element


class RangeCompletedFn(beam.DoFn):
    """((namespace, kind, range id), Totals) -> ((namespace, kind), Totals), firing
    ``range_completed``.

    The key (namespace, kind, "") carries the unit's plan record, not a range: no hook.
    """

    def __init__(self, job: JobConfig):
        self.job = job

    def process(self, kv):
        (namespace, kind, range_id), totals = kv
        if range_id:
            fire(self.job, hooks.RANGE_COMPLETED, namespace=namespace, kind=kind,
                 range_id=range_id, totals=totals)
        yield (namespace, kind), totals


def unit_done(kv):
    """((namespace, kind), Totals or (Totals, output)) -> (namespace, (kind, Totals, output))."""
    (namespace, kind), value = kv
    output = None
    if isinstance(value, tuple):
        value, output = value
    return namespace, (kind, value, output)


class NamespaceCompletedFn(beam.DoFn):
    """(namespace, NamespaceDone) -> (namespace, Totals), firing ``namespace_completed`` with
    where the sink put the namespace's records as ``ctx.output`` (its file, or its tables; for a
    job reading several kinds each kind's, joined, and ``ctx.outputs``: kind -> output).

    With --output, once the hook has run, each of the namespace's units gets its manifest: the
    namespace is complete, and a resumed run neither reads it again nor fires its hooks.

    A namespace whose hook fails fails the run, but only once the bundle's other namespaces
    are complete (hook run, manifest written): one tenant's failure does not make a resumed
    run read the others again."""

    def __init__(self, run: RunConfig, case_insensitive: bool = False):
        self.run, self.case_insensitive = run, case_insensitive
        self._failed: Optional[JobFailed] = None

    def start_bundle(self):
        self._failed = None

    def finish_bundle(self):
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed

    def process(self, kv):
        namespace, done = kv
        per_kind = self.run.read.query.per_kind
        outputs = done.outputs or None
        output = ", ".join(sorted(outputs.values())) if outputs else None
        try:
            fire(self.run.job, hooks.NAMESPACE_COMPLETED, namespace=namespace,
                 totals=done.totals, output=output,
                 outputs=dict(outputs) if outputs and per_kind else None)
        except JobFailed as e:
            self._failed = self._failed or e
            return
        ProgressCounters(self.run.job.metrics_namespace).inc("namespaces_done")
        out = self.run.output
        if out.directory:
            units = (done.totals.kinds.items() if per_kind
                     else [(self.run.read.query.kinds[0], done.totals)])
            for kind, totals in units:
                part = unit_for(namespace, kind, per_kind, self.case_insensitive).part
                m = manifest(self.run, namespace, kind, part, totals.to_dict(),
                             (done.outputs or {}).get(kind))
                with FileSystems.create(manifest_path(out.directory, self.run.job.name,
                                                      part)) as f:
                    f.write(json.dumps(m, ensure_ascii=False, indent=1).encode("utf-8"))
        yield namespace, done.totals


class JobCompletedFn(beam.DoFn):
    """{namespace: Totals} -> the same, firing ``job_completed`` (also for an empty job)."""

    def __init__(self, job: JobConfig):
        self.job = job

    def process(self, per_namespace: dict):
        if self.job.spec.defines(hooks.JOB_COMPLETED):
            total = Totals()
            for t in per_namespace.values():
                total.add(t, self.job.max_counters)
            fire(self.job, hooks.JOB_COMPLETED, totals=total,
                 namespaces=per_namespace)
        yield per_namespace
