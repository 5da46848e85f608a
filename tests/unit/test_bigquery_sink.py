"""The streaming sink's pure pieces: a job's table choice, a namespace's output, a record
checked as a row (``pipeline.sinks.bigquery.stream``), and the limits the finished run checks
(``pipeline.graph.summary.run_failure``)."""
from __future__ import annotations

import pytest

from pipeline.core.records import RecordError
from pipeline.errors import JobFailed
from pipeline.graph.summary import run_failure
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.stream import (
    REJECTED_COUNTER,
    ROWS_COUNTER,
    _resolve_choice,
    streamable_row,
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
    ("t_{namespace}_{kind}", "a", "run-proj.ds.t_a_Order_5fLine"),
    (TableSpec("x", "y", "{kind}"), "", "x.y.Order_5fLine"),
])
def test_resolve_choice(chosen, namespace, want):
    assert str(_resolve_choice(chosen, DEFAULT, namespace, "Order_Line")) == want


@pytest.mark.parametrize("chosen", ["bad table", "a.b.c.d", "p:ds", "ds.{namespace}{namespace}",
                                    "bad-ds.t", "", ["x"], "ds.{kind}_{kind}"])
def test_resolve_choice_refuses(chosen):
    with pytest.raises(JobFailed, match="bigquery_table"):
        _resolve_choice(chosen, DEFAULT, "ns", "Item")


def test_settings_give_each_kind_its_columns():
    from pipeline.core.export_format import columns_from_rows, typed_row

    class E(dict):
        def __init__(self, key, **props):
            super().__init__(**props)
            self.key = key

    from google.cloud import datastore
    c = datastore.Client(project="p", credentials=None, _http=object())
    order = typed_row(E(c.key("Order", 1), total=3))
    user = typed_row(E(c.key("User", "ann"), email="a@b"))
    s = BigQuerySettings(table=DEFAULT, schema=(), columns={
        "Order": columns_from_rows([order]), "User": columns_from_rows([user])})
    names = lambda kind: [f["name"] for f in s.schema_for(kind)]  # noqa: E731
    assert "total" in names("Order") and "email" not in names("Order")
    assert "email" in names("User")
    # a kind the launch's sample did not see: the key and the unmapped column only
    assert names("Other") == [f["name"] for f in columns_from_rows([])["schema"]]
    declared = BigQuerySettings(table=DEFAULT, schema=({"name": "x", "type": "STRING"},))
    assert declared.schema_for("Anything") == declared.schema


def settings(max_bad_rows):
    return BigQuerySettings(table=DEFAULT, schema=(), max_bad_rows=max_bad_rows,
                            dead_letter="/tmp/out/job/dead_letter.jsonl")


def summary(rejected):
    counters = {} if rejected is None else {REJECTED_COUNTER: rejected}
    return {"job": "j", "totals": {"counters": counters}}


@pytest.mark.parametrize("max_bad, rejected", [(0, None), (0, 0), (3, 3), (5, 1)])
def test_rejected_rows_within_the_limit_do_not_fail_the_run(max_bad, rejected):
    assert run_failure(summary(rejected), 0, settings(max_bad), None) is None


def test_a_summary_without_totals_does_not_fail_the_run():
    assert run_failure({}, 0, settings(0), None) is None


@pytest.mark.parametrize("max_bad, rejected", [(0, 1), (3, 4)])
def test_more_rejected_rows_than_allowed_fail_the_run(max_bad, rejected):
    msg = run_failure(summary(rejected), 0, settings(max_bad), None)
    assert f"rejected {rejected} row(s)" in msg
    assert f"--bigquery_max_bad_rows={max_bad}" in msg
    assert "/tmp/out/job/dead_letter.jsonl" in msg


@pytest.mark.parametrize("max_errors, errors, fails", [(0, 0, False), (0, 1, True), (3, 3, False),
                                                       (3, 4, True)])
def test_more_failed_entities_than_allowed_fail_the_run(max_errors, errors, fails):
    s = {"totals": {"errors": errors, "counters": {}}}
    msg = run_failure(s, max_errors, None, "gs://b/out/job/dead_letter.jsonl")
    if not fails:
        assert msg is None
        return
    assert f"{errors} entities failed, more than --max_errors={max_errors}" in msg
    assert "gs://b/out/job/dead_letter.jsonl" in msg


def test_a_record_is_checked_as_a_row_before_it_is_streamed():
    assert streamable_row({"a": 1, "b": [float("nan")]}) == {"a": 1, "b": ["NaN"]}
    circular: dict = {}
    circular["self"] = circular
    for bad, words in [(["not", "a", "dict"], "dict of column"), (circular, "circular")]:
        with pytest.raises(RecordError, match=words):
            streamable_row(bad)


def test_streamed_output():
    s = streamed_output({"p.ds.b": [3, 1, 0], "p.ds.a": [2, 0, 0]})
    assert s.output == "p.ds.a, p.ds.b"
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1}
    s = streamed_output({"p.ds.b": [3, 1, 2], "p.ds.a": [2, 0, 4]})
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1, "unmapped_properties": 6}
    empty = streamed_output({})
    assert empty.output == ""
    assert empty.counters == {ROWS_COUNTER: 0, REJECTED_COUNTER: 0}
