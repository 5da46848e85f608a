"""Unit tests (no emulator): queries, the job API, summaries, launch checks, options, errors."""
from __future__ import annotations

import argparse
import datetime as dt

import pytest
from google.api_core import exceptions as gexc

from pipeline import datastore_io as dio
from pipeline.cli import failure_message
from pipeline.errors import JobFailed, MapperError, QueryError, UsageError
from pipeline.job import OVERFLOW_COUNTER, Counters, JobSpec, Params
from pipeline.launch import job_params, parse_read_time
from pipeline.options import key_value_list, name_list, parse_bool, positive_float, positive_int
from pipeline.query import (
    ALL_NAMESPACES, DEFAULT_NAMESPACE_ONLY, PropertyRange, Query, ResolvedQuery, resolve)
from pipeline.summary import (
    NamespacePlanned, SliceStats, Totals, TotalsFn, build_summary, format_summary,
    merge_counters, to_json_text)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- query.resolve


def test_resolve_equalities_and_a_range():
    rq = resolve(Query(kind="Item", filters=[("status", "=", "open"), ("size", ">", 5),
                                             ("owner", "==", "ann"), ("size", "<=", 50)]))
    assert rq.kind == "Item"
    assert rq.equalities == (("status", "open"), ("owner", "ann"))
    assert rq.prop_range == PropertyRange(prop="size", lo=5, lo_inclusive=False, hi=50,
                                          hi_inclusive=True)
    assert rq.namespaces is ALL_NAMESPACES and rq.ancestor is None and rq.keys_only
    assert "size > 5" in rq.describe() and "size <= 50" in rq.describe()


def test_resolve_one_sided_ranges():
    r = resolve(Query(kind="Item", filters=[("n", ">=", 3)])).prop_range
    assert (r.prop, r.lo, r.lo_inclusive, r.hi) == ("n", 3, True, None)
    r = resolve(Query(kind="Item", filters=[("n", "<", 3)])).prop_range
    assert (r.lo, r.hi, r.hi_inclusive) == (None, 3, False)
    assert resolve(Query(kind="Item")).prop_range is None
    # Naive datetime bounds are taken as UTC.
    r = resolve(Query(kind="Item", filters=[("t", ">=", dt.datetime(2026, 1, 1))])).prop_range
    assert r.lo == dt.datetime(2026, 1, 1, tzinfo=UTC) and r.lo.tzinfo is not None


def test_resolve_rejects_inequalities_on_two_properties():
    with pytest.raises(QueryError) as e:
        resolve(Query(kind="Item", filters=[("price", ">", 5), ("weight", "<", 3)]))
    assert "price" in str(e.value) and "weight" in str(e.value)


@pytest.mark.parametrize("op", ["!=", "IN", "in", "not-in", "=>"])
def test_resolve_rejects_unsupported_operators(op):
    with pytest.raises(QueryError) as e:
        resolve(Query(kind="Item", filters=[("a", op, 1)]))
    msg = str(e.value)
    assert repr(op) in msg
    for supported in ("=", "<", "<=", ">", ">="):
        assert supported in msg.split("use one of", 1)[1]


@pytest.mark.parametrize("filters, fragment", [
    ([("n", ">", 5), ("n", "<", "z")], "different types"),
    ([("n", ">=", 10), ("n", "<", 5)], "empty"),
    ([("n", ">", 5), ("n", "<", 5)], "empty"),
    ([("n", ">=", 5), ("n", "<", 5)], "empty"),
    ([("n", ">", 1), ("n", ">=", 2)], "two lower bounds"),
    ([("n", "<", 1), ("n", "<=", 2)], "two upper bounds"),
    ([("n", ">", True)], "boolean"),
    ([("n", ">", b"x")], "bytes"),
    ([("__key__", ">", 1)], "__key__"),
    ([("n", "=")], "triple"),
])
def test_resolve_rejects_bad_ranges(filters, fragment):
    with pytest.raises(QueryError, match=fragment):
        resolve(Query(kind="Item", filters=filters))


def test_resolve_allows_an_equal_bounds_range_and_refuses_mixed_numbers():
    r = resolve(Query(kind="Item", filters=[("n", ">=", 5), ("n", "<=", 5)])).prop_range
    assert (r.lo, r.hi) == (5, 5)
    # Datastore orders all integers before all floats: 1 <= n < 2.5 is not a numeric range there.
    with pytest.raises(QueryError, match="different types"):
        resolve(Query(kind="Item", filters=[("n", ">=", 1), ("n", "<", 2.5)]))


@pytest.mark.parametrize("kind", ["__kind__", "__namespace__", "", None])
def test_resolve_rejects_metadata_or_missing_kinds(kind):
    with pytest.raises(QueryError):
        resolve(Query(kind=kind))


def test_resolve_ancestor():
    rq = resolve(Query(kind="Item", ancestor=("Customer", "c1", "Order", 7)))
    assert rq.ancestor == (("Customer", "c1"), ("Order", 7))
    with pytest.raises(QueryError, match="ancestor"):
        resolve(Query(kind="Item", ancestor=("Customer", "c1", "Order")))


def test_resolve_namespaces():
    assert resolve(Query(kind="K", namespaces=DEFAULT_NAMESPACE_ONLY)).namespaces == ("",)
    assert resolve(Query(kind="K", namespaces=["__default__", "a", "a"])).namespaces == ("", "a")
    assert resolve(Query(kind="K", namespaces=["b", "", "__default__"])).namespaces == ("b", "")
    with pytest.raises(QueryError):
        resolve(Query(kind="K", namespaces="a"))
    with pytest.raises(QueryError):
        resolve(Query(kind="K", namespaces=[]))


def test_resolve_rejects_something_that_is_not_a_query():
    with pytest.raises(QueryError, match="pipeline.Query"):
        resolve({"kind": "Item"})


# --------------------------------------------------------------------------- counters, summary


def test_counters_cap_sends_new_names_to_overflow():
    c = Counters(max_names=3)
    for name in ("a", "b", "c"):
        c.inc(name)
    c.inc("a", 5)
    c.inc("d", 2)
    c.inc("e")
    c.inc("c", 4)  # a kept name still counts normally
    assert c.values == {"a": 6, "b": 1, "c": 5, OVERFLOW_COUNTER: 3}
    assert c.get("d") == 0 and c.get(OVERFLOW_COUNTER) == 3 and c.get("a") == 6
    unlimited = Counters()
    for i in range(1000):
        unlimited.inc(f"n{i}")
    assert OVERFLOW_COUNTER not in unlimited.values and len(unlimited.values) == 1000
    unlimited.inc("one-more")
    assert unlimited.values[OVERFLOW_COUNTER] == 1


def test_counters_with_non_string_names_accumulate():
    # Regression: inc(2024) stored "2024" but looked up 2024, so each call overwrote the count.
    c = Counters()
    c.inc(2024)
    c.inc(2024, 2)
    c.inc("2024")
    assert c.values == {"2024": 4}
    assert c.get(2024) == 4 and c.get("2024") == 4


def test_merge_counters_respects_the_cap_and_keeps_the_sum():
    into = {"a": 1, "b": 2}
    merge_counters(into, {"a": 10, "c": 3, "d": 4, OVERFLOW_COUNTER: 5}, cap=3)
    assert into["a"] == 11 and into["b"] == 2 and into["c"] == 3
    assert "d" not in into
    assert into[OVERFLOW_COUNTER] == 4 + 5
    assert sum(into.values()) == 1 + 2 + 10 + 3 + 4 + 5
    assert merge_counters({}, {"x": 1}, cap=0) == {OVERFLOW_COUNTER: 1}


def _slice(ns, rid, entities, counters=None, worker="w1", **kw):
    return SliceStats(namespace=ns, range_id=rid, entities=entities, counters=counters or {},
                      worker=worker, **kw)


def test_totals_fn_sums_slices_and_range_entities():
    fn = TotalsFn(cap=10)
    acc1 = fn.create_accumulator()
    for s in [_slice("a", "a#0", 5, {"x": 1}, records=2, queries=1, seconds=0.5),
              _slice("a", "a#0", 7, {"x": 2, "y": 1}, worker="w2", queries=2, retries=1),
              NamespacePlanned("a", ranges=2, samples=40)]:
        acc1 = fn.add_input(acc1, s)
    acc2 = fn.add_input(fn.create_accumulator(), _slice("a", "a#1", 3, {"y": 4}, records=1))
    out = fn.extract_output(fn.merge_accumulators([acc1, acc2]))
    assert out.entities == 15 and out.records == 3 and out.slices == 3
    assert out.queries == 3 and out.retries == 1 and out.read_seconds == pytest.approx(0.5)
    assert out.counters == {"x": 3, "y": 5}
    assert out.workers == {"w1", "w2"}
    assert out.ranges == 2 and out.samples == 40
    assert out.range_entities == {"a#0": 12, "a#1": 3}
    # A Totals input folds in at the next level of the roll-up.
    job = fn.add_input(fn.add_input(fn.create_accumulator(), out), out)
    assert job.entities == 30 and job.range_entities == {"a#0": 24, "a#1": 6}
    assert job.ranges == 4 and job.counters == {"x": 6, "y": 10}


def test_totals_merge_respects_the_counter_cap():
    fn = TotalsFn(cap=2)
    acc = fn.create_accumulator()
    acc = fn.add_input(acc, _slice("", "__default__#0", 1, {"a": 1, "b": 1}))
    acc = fn.add_input(acc, _slice("", "__default__#0", 1, {"c": 7, "a": 1}))
    assert acc.counters == {"a": 2, "b": 1, OVERFLOW_COUNTER: 7}


def test_build_summary_totals_equal_the_sum_over_namespaces():
    def totals(entities, counters, ranges, rid_prefix):
        t = Totals(ranges=ranges, samples=ranges * 10)
        for i in range(ranges):
            t.add_slice(_slice("", f"{rid_prefix}#{i}", entities // ranges, counters,
                               worker=f"w{i}"), cap=100)
        return t

    per_ns = {"": totals(10, {"k": 1}, 2, "__default__"), "b": totals(30, {"k": 2, "m": 1}, 3, "b"),
              "a": totals(0, {}, 1, "a")}
    started = NOW
    s = build_summary("count", "kind Item", {"p": "1"}, started, started + dt.timedelta(seconds=4),
                      per_ns, cap=100, read_time=NOW)
    assert list(s["namespaces"]) == ["__default__", "a", "b"]
    t = s["totals"]
    for field in ("entities", "records", "ranges", "samples", "slices", "queries", "retries"):
        assert t[field] == sum(n[field] for n in s["namespaces"].values()), field
    assert t["entities"] == 40
    assert t["counters"] == {"k": 2 * 1 + 3 * 2, "m": 3}
    assert s["seconds"] == 4 and s["entities_per_second"] == 10
    assert s["read_time"] == NOW.isoformat() and s["params"] == {"p": "1"}
    assert s["namespaces"]["b"]["range_entities"] == {"b#0": 10, "b#1": 10, "b#2": 10}
    text = format_summary(s)
    assert "40 entities in 3 namespaces" in text and "__default__" in text
    assert to_json_text(s).endswith("\n")


def test_build_summary_of_an_empty_job():
    s = build_summary("j", "q", {}, NOW, NOW, {}, cap=10)
    assert s["totals"]["entities"] == 0 and s["namespaces"] == {}
    assert s["read_time"] is None
    format_summary(s)


def test_range_entities_sorted_numerically():
    t = Totals()
    for i in (10, 2, 1):
        t.add_slice(_slice("a", f"a#{i}", i), cap=5)
    assert list(t.to_json()["range_entities"]) == ["a#1", "a#2", "a#10"]


# --------------------------------------------------------------------------- Params, launch


def test_params_typed_getters():
    p = Params({"day": "2026-11-26", "n": "42", "bad_day": "26/11/2026", "bad_n": "4x2"}, NOW)
    assert p.date("day") == dt.date(2026, 11, 26)
    assert p.integer("n") == 42
    assert p.integer("missing", 7) == 7
    assert p.date("missing", dt.date(2020, 1, 1)) == dt.date(2020, 1, 1)
    assert p.text("n") == "42" and p.text("missing", "d") == "d"
    assert dict(p) == {"day": "2026-11-26", "n": "42", "bad_day": "26/11/2026", "bad_n": "4x2"}
    assert len(p) == 4 and p["n"] == "42" and p.now == NOW
    for call, name in [(lambda: p.date("bad_day"), "bad_day"),
                       (lambda: p.integer("bad_n"), "bad_n"),
                       (lambda: p.date("nope"), "nope"), (lambda: p.integer("nope"), "nope"),
                       (lambda: p.text("nope"), "nope")]:
        with pytest.raises(UsageError, match=name):
            call()


class _Job(JobSpec):
    name = "demo_job"
    parameters = {"day": "the day to count", "limit": "how many"}


class _NoParams(JobSpec):
    name = "bare"


def test_job_params_accepts_known_and_rejects_unknown():
    p = job_params([[("day", "2026-01-01")], [("limit", "3"), ("day", "2026-01-02")]], _Job, NOW)
    assert dict(p) == {"day": "2026-01-02", "limit": "3"} and p.now == NOW
    with pytest.raises(UsageError) as e:
        job_params([[("dya", "2026-01-01")]], _Job, NOW)
    msg = str(e.value)
    assert "'dya'" in msg and "demo_job" in msg
    assert "day (the day to count)" in msg and "limit (how many)" in msg
    with pytest.raises(UsageError, match="none"):
        job_params([[("x", "1")]], _NoParams, NOW)


def test_parse_read_time():
    assert parse_read_time(None, NOW) is None
    assert parse_read_time("start", NOW) == NOW
    assert parse_read_time(" START ", NOW) == NOW
    t = parse_read_time("2026-11-27T11:30:00Z", NOW)
    assert t == dt.datetime(2026, 11, 27, 11, 30, tzinfo=UTC) and t.utcoffset() == dt.timedelta(0)
    assert parse_read_time("2026-11-27t11:30:00z", NOW) == t
    assert parse_read_time("2026-11-27T13:30:00+02:00", NOW) == t
    frac = parse_read_time("2026-11-27T11:30:00.123456Z", NOW)
    assert frac == t + dt.timedelta(microseconds=123456)
    # Older than an hour but within 7 days: allowed (point-in-time recovery), with a warning.
    assert parse_read_time("2026-11-21T12:00:00Z", NOW) == NOW - dt.timedelta(days=6)
    # Without a "now" (option validation) only the syntax is checked.
    assert parse_read_time("2000-01-01T00:00:00Z", None) == dt.datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text, fragment", [
    ("2026-11-27T11:30:00", "time zone"),
    ("2026-11-27T12:00:01Z", "future"),
    ("2026-11-20T11:59:59Z", "7 days"),
    ("yesterday", "RFC 3339"),
    ("", "RFC 3339"),
])
def test_parse_read_time_rejects(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_read_time(text, NOW)


def test_parse_read_time_naive_rejected_even_without_now():
    with pytest.raises(UsageError, match="time zone"):
        parse_read_time("2026-11-27T11:30:00", None)


# --------------------------------------------------------------------------- options


def test_positive_int():
    assert positive_int("1") == 1 and positive_int(" 42 ") == 42
    for bad in ("0", "-3", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_positive_float():
    assert positive_float("0.5") == 0.5 and positive_float("30") == 30.0
    for bad in ("0", "-1", "nan", "abc", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)


def test_parse_bool():
    for t in ("true", "True", "1", "yes", " TRUE "):
        assert parse_bool(t) is True
    for f in ("false", "False", "0", "no"):
        assert parse_bool(f) is False
    assert parse_bool(True) is True and parse_bool(False) is False
    for bad in ("maybe", "", "2", "on"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_bool(bad)


def test_read_time_option_value():
    from pipeline.options import read_time_value

    assert read_time_value("start") == "start"
    assert read_time_value("2026-11-27T11:30:00Z") == "2026-11-27T11:30:00Z"
    for bad in ("2026-11-27T11:30:00", "noon"):
        with pytest.raises(argparse.ArgumentTypeError):
            read_time_value(bad)


def test_key_value_list_and_name_list():
    assert key_value_list("a=1,b=2") == [("a", "1"), ("b", "2")]
    assert key_value_list(" a = 1 , b=x=y ,") == [("a", "1"), ("b", "x=y")]
    assert key_value_list("empty=") == [("empty", "")]
    assert key_value_list("") == []
    for bad in ("a", "a=1,b", "=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            key_value_list(bad)
    assert name_list("a, b,,__default__") == ["a", "b", "__default__"]


def test_options_parse_through_beam():
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.options import MapperOptions

    m = PipelineOptions(["--job", "x", "--params", "a=1,b=2", "--params", "c=3", "--shards", "4",
                         "--allow_empty_kind", "--launch_checks=false"]).view_as(MapperOptions)
    assert m.job == "x" and m.params == [[("a", "1"), ("b", "2")], [("c", "3")]]
    assert m.shards == 4 and m.oversampling == 32
    assert m.allow_empty_kind is True and m.launch_checks is False


# --------------------------------------------------------------------------- datastore_io.explain


def _rq(**kw):
    base = dict(kind="Order", namespaces=None, equalities=(("status", "open"), ("region", "eu")),
                prop_range=PropertyRange("created", lo=1), ancestor=None, keys_only=True)
    base.update(kw)
    return ResolvedQuery(**base)


def test_explain_missing_index_gives_an_index_yaml_entry():
    err = gexc.FailedPrecondition("no matching index found. recommended index is: - kind: Order")
    out = dio.explain(err, _rq(), "shop", "the read query")
    assert isinstance(out, QueryError)
    msg = str(out)
    assert "namespace shop" in msg and "index.yaml" in msg
    snippet = "\n".join(["indexes:", "- kind: Order", "  properties:", "  - name: status",
                         "  - name: region", "  - name: created"])
    assert snippet in msg
    assert "no matching index found" in msg  # what Datastore said is kept


def test_explain_missing_index_with_ancestor_and_without_range():
    err = gexc.FailedPrecondition("The query requires an index")
    msg = str(dio.explain(err, _rq(prop_range=None, ancestor=(("Customer", "c1"),)), "", "x"))
    assert "namespace (default)" in msg
    assert ("- kind: Order\n  ancestor: yes\n  properties:\n  - name: status\n"
            "  - name: region") in msg
    assert "created" not in msg.split("indexes:", 1)[1].split("(Datastore said")[0]


def test_index_yaml_orders_equalities_then_range():
    y = dio.index_yaml(_rq(), "created")
    lines = y.splitlines()
    names = [line.split("name: ")[1] for line in lines if "name:" in line]
    assert names == ["status", "region", "created"]
    assert lines[:2] == ["indexes:", "- kind: Order"]


def test_explain_other_errors():
    rq = _rq()
    out = dio.explain(gexc.PermissionDenied("caller lacks permission"), rq, "a", "listing")
    assert isinstance(out, MapperError) and "Datastore User role" in str(out)
    out = dio.explain(gexc.Unauthenticated("no creds"), rq, "a", "listing")
    assert "Datastore User role" in str(out)
    out = dio.explain(gexc.NotFound("database missing"), rq, "a", "listing")
    assert "--project" in str(out) and "--database" in str(out)
    assert isinstance(dio.explain(gexc.InvalidArgument("bad"), rq, "a", "x"), QueryError)
    # A FailedPrecondition that is not about indexes is not turned into index advice.
    out = dio.explain(gexc.FailedPrecondition("transaction expired"), rq, "a", "x")
    assert "index.yaml" not in str(out) and "transaction expired" in str(out)


def test_with_retries_retries_transient_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise gexc.ServiceUnavailable("busy")
        return "ok"

    retried = []
    assert dio.with_retries(flaky, "t", base_delay=0.001, max_delay=0.001,
                            on_retry=retried.append) == "ok"
    assert len(calls) == 3 and len(retried) == 2

    def fatal():
        calls.append(1)
        raise gexc.PermissionDenied("no")

    calls.clear()
    with pytest.raises(gexc.PermissionDenied):
        dio.with_retries(fatal, "t", base_delay=0.001)
    assert len(calls) == 1

    def always_busy():
        calls.append(1)
        raise gexc.DeadlineExceeded("slow")

    calls.clear()
    with pytest.raises(gexc.DeadlineExceeded):
        dio.with_retries(always_busy, "t", attempts=3, base_delay=0.001, max_delay=0.001)
    assert len(calls) == 3


# --------------------------------------------------------------------------- cli.failure_message


def test_failure_message_finds_our_error_inside_a_runner_error():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in process\n"
            "pipeline.errors.JobFailed: job x failed on entity K(1) in namespace a: "
            "ValueError: boom [while running 'Mapper/ReadRanges']")
    msg = failure_message(RuntimeError(text))
    assert msg == ("job x failed on entity K(1) in namespace a: ValueError: boom "
                   "(in step Mapper/ReadRanges)")
    # Without the step suffix, and with trailing lines.
    msg = failure_message(RuntimeError("...\npipeline.errors.QueryError: bad query\nmore\n"))
    assert msg == "bad query"


def test_failure_message_from_a_multi_process_runner_error():
    # The text FnApiRunner (multi_processing) raises, as a RuntimeError, for a JobFailed.
    text = ('eam.runners.common.DoFnRunner.process\n  File "apache_beam/runners/common.py", '
            "line 687, in apache_beam.runners.common.SimpleInvoker.invoke_process\n"
            '  File "jobs/x.py", line 7, in process\n    raise JobFailed("...")\n'
            "pipeline.errors.JobFailed: job x failed on entity K(1) in namespace a: ValueError: "
            "boom [while running 'Mapper/ReadRanges']\n")
    assert failure_message(RuntimeError(text)) == (
        "job x failed on entity K(1) in namespace a: ValueError: boom (in step Mapper/ReadRanges)")


def test_failure_message_ignores_other_libraries_errors_with_similar_names():
    # Regression: the pattern had no left boundary, so these were reported as the mapper's own.
    for text in ["click.exceptions.UsageError: no such option: --x",
                 "apache_beam.io.gcp.bigquery_tools.BigQueryError: quota [while running 'W']",
                 "mylib.QueryError: bad sql",
                 "SomeJobFailed: other thing"]:
        assert failure_message(RuntimeError(text)) is None, text
    # ... while our classes are still found with or without their module, after any separator.
    assert failure_message(RuntimeError("JobFailed: j failed")) == "j failed"
    assert failure_message(RuntimeError("wrapped: UsageError: bad")) == "bad"


def test_failure_message_takes_the_last_of_several():
    text = ("pipeline.errors.JobFailed: first [while running 'A']\n"
            "RuntimeError: wrapped\npipeline.errors.JobFailed: second [while running 'B']")
    assert failure_message(Exception(text)) == "second (in step B)"


def test_failure_message_of_our_own_errors_and_unrelated_ones():
    assert failure_message(JobFailed("job y failed")) == "job y failed"
    assert failure_message(UsageError("bad option")) == "bad option"
    unrelated = RuntimeError("ValueError: boom [while running 'Mapper/ReadRanges']")
    assert failure_message(unrelated) is None
    assert failure_message(ValueError("something else entirely")) is None
    assert failure_message(RuntimeError("")) is None


def test_params_flag_is_true_false_or_an_error():
    p = Params({"a": "true", "b": " False ", "c": "yes"}, NOW)
    assert p.flag("a", False) is True and p.flag("b", True) is False
    assert p.flag("missing", True) is True and p.flag("missing", False) is False
    with pytest.raises(UsageError, match="c='yes'"):
        p.flag("c", False)
