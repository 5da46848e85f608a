"""Test-only jobs that put the data on the terminal every way a job can: ``--job_module
tests.support.jobs_terminal`` (``tests/emulator/test_terminal_safety.py``)."""
from __future__ import annotations

import logging

from pipeline import Context, JobSpec, Params, Query, register

log = logging.getLogger("tests.support.jobs_terminal")


@register
class EchoValues(JobSpec):
    """Counts ``value:<v>`` of ``property`` (default category), logs each value, prints the
    counter names from a hook; with ``fail_on``, raises (the value in the message, raw) on the
    entity whose value starts with it."""

    name = "echo_values"
    parameters = {"kind": "kind (default Item)", "property": "property (default category)",
                  "fail_on": "raise on the value that starts with this"}

    def query(self, params: Params) -> Query:
        self.prop = params.get("property", "category")
        self.fail_on = params.get("fail_on")
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def next(self, ctx: Context, entity) -> None:
        value = entity.get(self.prop)
        ctx.counters.inc(f"value:{value}")
        log.warning("value of %s: %s", entity.key.kind, value)
        if self.fail_on and str(value).startswith(self.fail_on):
            raise ValueError(f"cannot handle {value}")

    def namespace_completed(self, ctx) -> None:
        print("hook: counters " + ", ".join(sorted(ctx.counters)))
