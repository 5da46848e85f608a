"""The streaming sink's pure pieces: a job's table choice, the rejected-rows check, a
namespace's output (``pipeline.sinks.bigquery.stream``)."""
from __future__ import annotations

import pytest

from pipeline.errors import JobFailed, MapperError
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.stream import (
    REJECTED_COUNTER,
    ROWS_COUNTER,
    CheckRejectedFn,
    _resolve_choice,
    streamed_output,
)
from pipeline.sinks.bigquery.tables import TableSpec

# --- pipeline.sinks.bigquery.stream: pure pieces -----------------------------------------------

DEFAULT = TableSpec("run-proj", "ds", "rows_{namespace}")


@pytest.mark.parametrize("chosen, namespace, want", [
    ("t", "acme", "run-proj.ds.t"),
    ("t_{namespace}", "acme.eu", "run-proj.ds.t_acme_2eeu"),
    ("other.t", "", "run-proj.other.t"),
    ("p:other.t", "a", "p.other.t"),
    ("p.other.t_{namespace}", "", "p.other.t___default__"),
    (TableSpec("x", "y", "z_{namespace}"), "n-1", "x.y.z_n_2d1"),
    (TableSpec("x", "y", "z"), "n-1", "x.y.z"),
])
def test_resolve_choice(chosen, namespace, want):
    assert str(_resolve_choice(chosen, DEFAULT, namespace)) == want


@pytest.mark.parametrize("chosen", ["bad table", "a.b.c.d", "p:ds", "ds.{namespace}{namespace}",
                                    "bad-ds.t", "", ["x"]])
def test_resolve_choice_refuses(chosen):
    with pytest.raises(JobFailed, match="bigquery_table"):
        _resolve_choice(chosen, DEFAULT, "ns")


def settings(max_bad_rows):
    return BigQuerySettings(table=DEFAULT, schema=(), max_bad_rows=max_bad_rows,
                            dead_letter="/tmp/out/job/dead_letter.jsonl")


def summary(rejected):
    counters = {} if rejected is None else {REJECTED_COUNTER: rejected}
    return {"job": "j", "totals": {"counters": counters}}


@pytest.mark.parametrize("max_bad, rejected", [(0, None), (0, 0), (3, 3), (5, 1)])
def test_check_rejected_passes_the_summary_through(max_bad, rejected):
    s = summary(rejected)
    assert list(CheckRejectedFn(settings(max_bad)).process(s, [])) == [s]


def test_check_rejected_passes_a_summary_without_totals():
    assert list(CheckRejectedFn(settings(0)).process({}, [])) == [{}]


@pytest.mark.parametrize("max_bad, rejected", [(0, 1), (3, 4)])
def test_check_rejected_fails_the_run(max_bad, rejected):
    with pytest.raises(MapperError) as e:
        list(CheckRejectedFn(settings(max_bad)).process(summary(rejected), []))
    assert f"rejected {rejected} row(s)" in str(e.value)
    assert f"--bigquery_max_bad_rows={max_bad}" in str(e.value)
    assert "/tmp/out/job/dead_letter.jsonl" in str(e.value)


def test_streamed_output():
    s = streamed_output({"p.ds.b": [3, 1, 0], "p.ds.a": [2, 0, 0]})
    assert s.output == "p.ds.a, p.ds.b"
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1}
    s = streamed_output({"p.ds.b": [3, 1, 2], "p.ds.a": [2, 0, 4]})
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1, "unmapped_properties": 6}
    empty = streamed_output({})
    assert empty.output == ""
    assert empty.counters == {ROWS_COUNTER: 0, REJECTED_COUNTER: 0}
