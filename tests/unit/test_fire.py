"""Hooks get copies of the totals (``lifecycle.fire``): a hook that changes them changes
nothing of the run's, and a job without the hook costs no copy."""
from __future__ import annotations

import datetime as dt

from pipeline.api import hooks
from pipeline.api.job import JobSpec, Params
from pipeline.config import JobConfig
from pipeline.core.totals import Totals
from pipeline.graph import lifecycle

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


class Greedy(JobSpec):
    seen: list = []

    def namespace_completed(self, ctx):
        ctx.totals.counters["taken"] = 99
        Greedy.seen.append(ctx.totals)


def _totals() -> Totals:
    t = Totals()
    t.counters["keys"] = 5
    return t


def test_a_hook_changing_its_totals_changes_nothing_of_the_runs():
    totals = _totals()
    lifecycle.fire(JobConfig(Greedy(), "greedy", Params({}, NOW)), hooks.NAMESPACE_COMPLETED,
                   namespace="a", totals=totals, output=None, outputs=None)
    assert Greedy.seen and Greedy.seen[-1].counters["taken"] == 99
    assert totals.counters == {"keys": 5}


def test_no_copy_is_made_for_a_hook_the_job_does_not_define(monkeypatch):
    copies = []
    monkeypatch.setattr(lifecycle.copy, "deepcopy", lambda v: copies.append(v) or v)
    lifecycle.fire(JobConfig(JobSpec(), "plain", Params({}, NOW)), hooks.RANGE_COMPLETED,
                   namespace="a", kind="K", range_id="r1", totals=_totals())
    assert copies == []
    lifecycle.fire(JobConfig(Greedy(), "greedy", Params({}, NOW)), hooks.NAMESPACE_COMPLETED,
                   namespace="a", totals=_totals(), output=None, outputs=None)
    assert len(copies) == 1
