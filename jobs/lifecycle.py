"""A job that logs its own lifecycle: every hook, with the counters rolled up to its level."""
from __future__ import annotations

import logging

from pipeline import Context, JobSpec, Params, Query, register

log = logging.getLogger("jobs.lifecycle")


def _counters(counters: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counters.items())) or "no counters"


@register
class LogLifecycle(JobSpec):
    """Count keys and log every lifecycle event (job, namespace, range, slice) with its counters.

    Counters: ``keys``. The hooks only log, so running one twice (a retried bundle) is harmless.
    """

    name = "log_lifecycle"
    parameters = {"kind": "the kind to read (default Item; A|B for several, * for every kind)",
                  "slices": "true: also log slice_started / slice_completed (default true)"}

    def query(self, params: Params) -> Query:
        self.log_slices = params.flag("slices", True)
        return Query(kind=params.kinds("kind", "Item"))

    def next(self, ctx: Context, key) -> None:
        ctx.counters.inc("keys")

    def _log(self, ctx, extra: str = "") -> None:
        where = ctx.where()
        log.info("lifecycle: job %s %s%s%s", ctx.job, ctx.event, f" [{where}]" if where else "",
                 extra)

    def job_started(self, ctx) -> None:
        self._log(ctx, f": params {dict(ctx.params)}")

    def namespace_started(self, ctx) -> None:
        self._log(ctx, f": {ctx.totals.ranges} ranges from {ctx.totals.samples} samples")

    def range_started(self, ctx) -> None:
        self._log(ctx, f": {ctx.range}")

    def slice_started(self, ctx) -> None:
        if self.log_slices:
            self._log(ctx, f": {ctx.range}")

    def slice_completed(self, ctx) -> None:
        if self.log_slices:
            self._log(ctx, f": {ctx.entities} entities; {_counters(ctx.counters)}")

    def range_completed(self, ctx) -> None:
        t = ctx.totals
        self._log(ctx, f": {t.entities} entities in {t.slices} slices; {_counters(t.counters)}")

    def namespace_completed(self, ctx) -> None:
        t = ctx.totals
        self._log(ctx, f": {t.entities} entities in {t.ranges} ranges, {t.slices} slices; "
                       f"{_counters(t.counters)}")

    def job_completed(self, ctx) -> None:
        t = ctx.totals
        self._log(ctx, f": {t.entities} entities in {len(ctx.namespaces)} namespaces, "
                       f"{t.ranges} ranges, {t.slices} slices; {_counters(t.counters)}")
