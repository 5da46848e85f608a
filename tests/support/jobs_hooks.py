"""Test-only job for the lifecycle hooks: load with ``--job_module tests.support.jobs_hooks``.

Every hook appends one JSON line to the file named by the ``events`` parameter (O_APPEND,
one write per line: worker processes share the file, and the file's order is the order
in which the hooks ran).
"""
from __future__ import annotations

import json
import os

from pipeline import Context, JobSpec, Params, Query, register
from pipeline.api.hooks import HOOKS


def _record(path: str, ctx, **extra) -> None:
    t = ctx.totals
    line = json.dumps({
        "event": ctx.event, "job": ctx.job, "params": dict(ctx.params),
        "namespace": ctx.namespace, "range_id": ctx.range_id, "range": ctx.range,
        "entities": ctx.entities, "counters": ctx.counters, "records": t.records,
        "slices": t.slices, "ranges": t.ranges, "samples": t.samples,
        "namespaces": ({ns: {"entities": n.entities, "counters": n.counters}
                        for ns, n in ctx.namespaces.items()} if ctx.namespaces is not None
                       else None),
        "output": ctx.output, "pid": os.getpid(), "kind": ctx.kind, "outputs": ctx.outputs,
        "kinds": {k: t.entities for k, t in ctx.kinds.items()} or None, **extra,
    }, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _hook(event: str):
    def hook(self, ctx) -> None:
        assert ctx.event == event, (ctx.event, event)
        _record(self.events, ctx)
        if self.fail_in == event:
            raise RuntimeError(f"hook {event} was told to fail")
    hook.__name__ = event
    return hook


@register
class RecordHooks(JobSpec):
    """Counts keys (``keys``, ``ids``/``names``); records every lifecycle event in ``events``."""

    name = "record_hooks"
    parameters = {"events": "file to append one JSON line per hook to (required)",
                  "kind": "kind (default Item; A|B, or * for every kind)",
                  "fail_in": "a hook name: that hook raises after recording itself"}

    def query(self, params: Params) -> Query:
        self.events = params.text("events")
        self.fail_in = params.get("fail_in")
        return Query(kind=params.kinds("kind", "Item"))

    def next(self, ctx: Context, key):
        ctx.counters.inc("keys")
        ctx.counters.inc("ids" if key.id is not None else "names")
        yield {"namespace": ctx.namespace, "key": list(key.flat_path), "range": ctx.range_id}

    job_started = _hook("job_started")
    namespace_started = _hook("namespace_started")
    range_started = _hook("range_started")
    slice_started = _hook("slice_started")
    slice_completed = _hook("slice_completed")
    range_completed = _hook("range_completed")
    namespace_completed = _hook("namespace_completed")
    job_completed = _hook("job_completed")


assert {n for n in vars(RecordHooks) if n.endswith(("_started", "_completed"))} == set(HOOKS)
