"""Unit tests (no emulator): BigQuery streaming's pure parts.

Table names and namespace escaping (``bigquery_tables``), insert ids, JSON values, batches and
error kinds (``bigquery_rows``), rows that may not fit a launch-time schema (``bigquery_json``
section 4), and the small pure pieces of ``pipeline.sinks.bigquery``.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import random
import re

import pytest
from google.cloud import datastore
from google.cloud.datastore.helpers import GeoPoint

from pipeline.errors import JobFailed, MapperError
from pipeline.sinks.bigquery import (REJECTED_COUNTER, ROWS_COUNTER, BigQuerySettings,
                                     CheckRejectedFn, StreamedNamespace, _resolve_choice)
from pipeline.sinks.bigquery_json import (UNMAPPED_COLUMN, UNMAPPED_FIELD, encode,
                                          encode_fitting, plan_from_rows, typed_row)
from pipeline.sinks.bigquery_rows import batches, insert_id, is_transient, json_ready, row_bytes
from pipeline.sinks.bigquery_tables import (DEFAULT_TABLE_PART, FORMS, MAX_TABLE_NAME,
                                            TableSpec, check_table_name,
                                            namespace_from_table_part, parse_table, table_part)

UTC = dt.timezone.utc
PART = re.compile(r"[A-Za-z0-9_]+")

# --- namespace <-> table part -------------------------------------------------------------------

TRICKY = ["", "a", "A", "acme.eu", "tenant-1", "tenant_1", "a_2e", "_", "__", "__default__",
          "default", "é", "日本", "\U0001F600", "a b", "0", "x" * 100, "é" * 100, "_2e",
          "a.b-c_d", "ß\u00a0\u200b", "\U0010FFFF", "Z9"]


@pytest.mark.parametrize("ns", TRICKY)
def test_table_part_round_trips(ns):
    part = table_part(ns)
    assert PART.fullmatch(part), part
    assert namespace_from_table_part(part) == ns
    if ns:
        assert not part.startswith("__")


def test_table_part_examples():
    assert table_part("") == DEFAULT_TABLE_PART == "__default__"
    assert table_part("acme") == "acme"
    assert table_part("acme.eu") == "acme_2eeu"
    assert table_part("tenant_1") == "tenant_5f1"
    assert table_part("tenant-1") == "tenant_2d1"
    assert table_part("é") == "_c3_a9"
    assert table_part("__default__") != DEFAULT_TABLE_PART


def test_table_part_is_injective_over_many_namespaces():
    rng = random.Random(20261127)
    alphabet = list("aAzZ09._-_ ") + ["é", "日", "\U0001F600", "ß", "_2e", "5f"]
    namespaces = {""} | set(TRICKY)
    while len(namespaces) < 20000:
        namespaces.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
    seen: dict = {}
    for ns in namespaces:
        part = table_part(ns)
        assert PART.fullmatch(part), (ns, part)
        assert part not in seen, f"{ns!r} and {seen[part]!r} both map to {part!r}"
        seen[part] = ns
        if ns:
            assert not part.startswith("__"), (ns, part)
        assert namespace_from_table_part(part) == ns


@pytest.mark.parametrize("text", [
    "a_zz", "a_2", "_", "a.b", "_41", "_5F", "a_2E", "___", "__default", "x-y", "é", "",
    "_ff",  # not UTF-8
    "_c3",  # truncated UTF-8
    "_30",  # "0", which table_part keeps as is
])
def test_namespace_from_table_part_refuses_what_table_part_cannot_produce(text):
    with pytest.raises(ValueError):
        namespace_from_table_part(text)


# --- parse_table --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("my-proj:ds.t", ("my-proj", "ds", "t")),
    ("example.com:my-proj:ds.t", ("example.com:my-proj", "ds", "t")),
    ("my-proj.ds.t", ("my-proj", "ds", "t")),
    ("ds.t", ("run-proj", "ds", "t")),
    ("  ds.t  ", ("run-proj", "ds", "t")),
    ("ds_1.T-x_9", ("run-proj", "ds_1", "T-x_9")),
    ("p:ds.t_{namespace}", ("p", "ds", "t_{namespace}")),
    ("ds.{namespace}", ("run-proj", "ds", "{namespace}")),
    ("p.ds.{namespace}_rows", ("p", "ds", "{namespace}_rows")),
])
def test_parse_table_forms(text, want):
    spec = parse_table(text, "run-proj")
    assert (spec.project, spec.dataset, spec.table) == want
    assert spec.templated == ("{namespace}" in want[2])


def test_table_spec_methods():
    spec = parse_table("p:ds.t_{namespace}", None)
    assert spec.templated
    assert str(spec) == "p.ds.t_{namespace}" and spec.dataset_id == "p.ds"
    assert spec.for_namespace("acme.eu") == TableSpec("p", "ds", "t_acme_2eeu")
    assert str(spec.for_namespace("")) == "p.ds.t___default__"
    assert not spec.for_namespace("a").templated
    plain = parse_table("p:ds.t", None)
    assert not plain.templated and plain.for_namespace("anything") is plain
    assert str(plain) == "p.ds.t"
    assert hash(spec) == hash(TableSpec("p", "ds", "t_{namespace}"))  # frozen, usable as a key


@pytest.mark.parametrize("text", [
    "t", "", "a.b.c.d", "p:ds", "p:ds.t.x", "p:", "ds.", ".t", "ds..t",
    "ds-1.t", "d s.t", "dé.t", "ds.t t", "ds.t.", "ds.t/x", "ds.té", "ds.t$",
    "ds.{namespace}{namespace}", "ds.a{namespace}b{namespace}", "ds.{name}", "ds.{NAMESPACE}",
    "P:ds.t", "1proj:ds.t", "proj-:ds.t", "pr_oj.ds.t", "p:{namespace}.t",
    "ds." + "t" * (MAX_TABLE_NAME + 1), ("d" * 1025) + ".t",
])
def test_parse_table_refuses(text):
    with pytest.raises(ValueError):
        parse_table(text, "run-proj")


def test_parse_table_errors_say_what_is_accepted():
    for text in ["t", "a.b.c.d", "p:ds"]:
        with pytest.raises(ValueError) as e:
            parse_table(text, "run-proj")
        assert FORMS in str(e.value) and repr(text) in str(e.value)
    with pytest.raises(ValueError, match="dataset"):
        parse_table("bad-ds.t", "run-proj")
    with pytest.raises(ValueError, match="at most one"):
        parse_table("ds.{namespace}_{namespace}", "run-proj")
    with pytest.raises(ValueError, match="letters, digits, _ and -"):
        parse_table("ds.t!", "run-proj")


@pytest.mark.parametrize("text", [":ds.t", ".ds.t"])
def test_parse_table_refuses_an_empty_project(text):
    with pytest.raises(ValueError):
        parse_table(text, "run-proj")


def test_check_table_name_length():
    spec = parse_table("p:ds.{namespace}", None)
    check_table_name(spec, "a" * MAX_TABLE_NAME)  # exactly at the limit
    with pytest.raises(ValueError, match="1025 characters"):
        check_table_name(spec, "a" * (MAX_TABLE_NAME + 1))
    # Escaping multiplies: 342 dots become 1026 characters.
    with pytest.raises(ValueError, match="BigQuery allows 1024"):
        check_table_name(spec, "." * 342)
    check_table_name(spec, "." * 341)  # 1023
    check_table_name(parse_table("p:ds.t", None), "." * 1000)  # not templated: no change


# --- insert ids ---------------------------------------------------------------------------------

def test_insert_id_is_stable_and_distinguishes_its_inputs():
    base = insert_id("job", "ns", ("Item", 1), 0)
    assert base == insert_id("job", "ns", ["Item", 1], 0)  # any iterable
    assert re.fullmatch(r"[0-9a-f]{40}", base)
    others = [insert_id("job2", "ns", ("Item", 1), 0),
              insert_id("job", "", ("Item", 1), 0),
              insert_id("job", "ns2", ("Item", 1), 0),
              insert_id("job", "ns", ("Item", 2), 0),
              insert_id("job", "ns", ("Item", "1"), 0),
              insert_id("job", "ns", ("Parent", 1, "Item", 1), 0),
              insert_id("job", "ns", ("Item", 1), 1)]
    assert len({base, *others}) == len(others) + 1
    # No ambiguity from joining: the parts are JSON-encoded.
    assert insert_id("a", "b,c", (), 0) != insert_id("a,b", "c", (), 0)
    assert insert_id("j", "é", ("日本", 1), 3) == insert_id("j", "é", ("日本", 1), 3)


# --- json_ready ---------------------------------------------------------------------------------

def test_json_ready_values():
    naive = dt.datetime(2026, 11, 27, 12, 30, 1, 5)
    aware = dt.datetime(2026, 11, 27, 13, 30, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert json_ready(naive) == "2026-11-27 12:30:01.000005 UTC"
    assert json_ready(aware) == "2026-11-27 12:30:01.000005 UTC"
    assert json_ready(dt.date(2026, 1, 2)) == "2026-01-02"
    assert json_ready(b"\x00\xff") == base64.b64encode(b"\x00\xff").decode() == "AP8="
    assert json_ready(bytearray(b"ab")) == "YWI="
    assert json_ready(decimal.Decimal("1.10")) == "1.10"
    assert json_ready(math.nan) == "NaN"
    assert json_ready(math.inf) == "Infinity" and json_ready(-math.inf) == "-Infinity"
    assert json_ready(1.5) == 1.5
    for v in (None, True, False, 0, -7, "x", ""):
        assert json_ready(v) is v or json_ready(v) == v
    assert json_ready(True) is True  # not turned into 1


def test_json_ready_nested_keys_and_geopoints():
    key = datastore.Key("Parent", "p1", "Item", 5, project="p", namespace="acme")
    default_ns_key = datastore.Key("Item", 1, project="p")
    value = {"when": [dt.datetime(2026, 1, 1), {"x": math.nan, 1: b"a"}],
             "key": key, "k0": default_ns_key, "geo": GeoPoint(1.5, -2.25),
             "t": (1, decimal.Decimal("2"))}
    out = json_ready(value)
    assert out == {"when": ["2026-01-01 00:00:00.000000 UTC", {"x": "NaN", "1": "YQ=="}],
                   "key": {"namespace": "acme", "path": ["Parent", "p1", "Item", "5"]},
                   "k0": {"namespace": "", "path": ["Item", "1"]},
                   "geo": {"latitude": 1.5, "longitude": -2.25},
                   "t": [1, "2"]}
    json.dumps(out, allow_nan=False)  # valid strict JSON


# --- batches ------------------------------------------------------------------------------------

def test_batches_respects_both_limits_and_keeps_order():
    items = [(10, i) for i in range(25)]
    got = list(batches(items, max_rows=10, max_bytes=10_000))
    assert got == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    got = list(batches(items, max_rows=100, max_bytes=35))
    assert [len(b) for b in got] == [3] * 8 + [1]
    assert [x for b in got for x in b] == list(range(25))
    assert all(sum(10 for _ in b) <= 35 for b in got)


def test_batches_oversized_item_alone_and_empty_input():
    items = [(5, "a"), (5, "b"), (100, "big"), (5, "c"), (200, "huge"), (200, "huge2")]
    assert list(batches(items, max_rows=10, max_bytes=50)) == [
        ["a", "b"], ["big"], ["c"], ["huge"], ["huge2"]]
    assert list(batches([], 10, 10)) == []
    assert list(batches([(100, "x")], 10, 10)) == [["x"]]
    assert list(batches([(1, "x"), (1, "y")], max_rows=1, max_bytes=100)) == [["x"], ["y"]]


def test_batches_random_invariants():
    rng = random.Random(7)
    for _ in range(200):
        items = [(rng.randint(1, 60), i) for i in range(rng.randint(0, 50))]
        sizes = dict((i, n) for n, i in items)
        max_rows, max_bytes = rng.randint(1, 8), rng.randint(20, 120)
        got = list(batches(items, max_rows, max_bytes))
        assert [x for b in got for x in b] == [i for _, i in items]
        for b in got:
            assert 1 <= len(b) <= max_rows
            assert len(b) == 1 or sum(sizes[i] for i in b) <= max_bytes


def test_row_bytes_counts_utf8():
    assert row_bytes("id", {"a": "é"}) > row_bytes("id", {"a": "e"})


# --- is_transient -------------------------------------------------------------------------------

@pytest.mark.parametrize("reasons", [["backendError"], ["internalError"], ["timeout"],
                                     ["rateLimitExceeded"], ["stopped"], ["BACKENDERROR"],
                                     ["ratelimitexceeded", "Timeout"]])
def test_is_transient_true(reasons):
    assert is_transient([{"reason": r, "message": "m"} for r in reasons])


@pytest.mark.parametrize("errors", [
    [], None, [{"reason": "invalid"}], [{"reason": "invalid"}, {"reason": "backendError"}],
    [{"message": "no reason"}], [{"reason": ""}], [{"reason": "tooLarge"}],
    [{"reason": "notFound"}]])
def test_is_transient_false(errors):
    assert not is_transient(errors)


# --- encode_fitting / plan_from_rows -----------------------------------------------------------

def entity(id_, **props):
    e = datastore.Entity(key=datastore.Key("Item", id_, project="p"))
    e.update(props)
    return e


def sample_plan():
    rows = [typed_row(entity(1, n=1, s="a", tags=["x", "y"], when=dt.datetime(2026, 1, 1),
                             rec={"a": 1, "b": "z"}, **{"order-id": 5, "Name": "N"})),
            typed_row(entity(2, n=2, f=1.5, nums=[1, 2], name="lower"))]
    return plan_from_rows(rows)


def test_plan_from_rows_schema_ends_with_the_unmapped_field():
    result = sample_plan()
    schema = result["schema"]
    assert schema[-1] == UNMAPPED_FIELD and schema[-1]["name"] == UNMAPPED_COLUMN
    assert [f["name"] for f in schema].count(UNMAPPED_COLUMN) == 1
    names = {f["name"] for f in schema}
    assert {"__key__", "n", "s", "tags", "when", "rec", "f", "nums", "Name"} <= names
    assert any(n.startswith("order_id_") for n in names)
    assert any(n.startswith("name_") for n in names)  # case clash with "Name"
    assert plan_from_rows([])["schema"] == [UNMAPPED_FIELD]


def test_fitting_rows_encode_like_encode():
    result = sample_plan()
    for e in [entity(3, n=7, s="b", tags=["q"], when=dt.datetime(2026, 2, 1, 1, 2, 3),
                     rec={"a": 2}, f=2.5, nums=[], **{"order-id": 9, "Name": "M", "name": "m"}),
              entity(4), entity(5, n=None, s=None, tags=[]), entity(6, f=math.nan)]:
        row = typed_row(e)
        out, unmapped = encode_fitting(row, result)
        assert unmapped == 0 and UNMAPPED_COLUMN not in out
        assert out == json.loads(encode(row, result))
        json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("props, unmapped_names", [
    ({"new_prop": 1}, ["new_prop"]),  # absent from the plan
    ({"n": "text"}, ["n"]),  # INTEGER -> STRING
    ({"n": 1.5}, ["n"]),  # INTEGER -> FLOAT
    ({"n": [1, 2]}, ["n"]),  # single -> list
    ({"tags": "x"}, ["tags"]),  # list -> single
    ({"tags": ["x", None]}, ["tags"]),  # a list with a null
    ({"nums": ["a"]}, ["nums"]),  # REPEATED INTEGER -> list of strings
    ({"rec": {"a": 1, "c": True}}, ["rec"]),  # nested record with a new child
    ({"rec": {"a": "one"}}, ["rec"]),  # nested type change
    ({"rec": "flat"}, ["rec"]),  # record -> scalar
    ({"when": dt.date(2026, 1, 1), "s": 5, "other-new": b"\x01"}, ["s", "other-new"]),
])
def test_rows_that_do_not_fit_go_to_unmapped(props, unmapped_names):
    result = sample_plan()
    row = typed_row(entity(9, **{"n": 3, **props}))
    out, count = encode_fitting(row, result)
    assert count == len(unmapped_names)
    unmapped = json.loads(out[UNMAPPED_COLUMN])
    assert set(unmapped) == set(unmapped_names)
    for name in unmapped_names:
        assert name not in out
        expected = props[name]
        if isinstance(expected, bytes):
            expected = base64.b64encode(expected).decode()
        assert unmapped[name] == json_ready(expected), name
    assert out["__key__"]["path"] == [{"kind": "Item", "id": 9, "name": None}]
    if "n" not in props:  # every other property still lands in its own column
        assert out["n"] == 3
    if "when" in props:  # a date fits a TIMESTAMP column
        assert out["when"] == "2026-01-01 00:00:00.000000 UTC"
    json.dumps(out, allow_nan=False)


def test_unmapped_keeps_original_names_and_json_text():
    result = sample_plan()
    row = typed_row(entity(10, **{"order-id": "not an int", "weird name!": [1, "a"],
                                  "Name": 3}))
    out, count = encode_fitting(row, result)
    assert count == 3
    assert isinstance(out[UNMAPPED_COLUMN], str)
    assert json.loads(out[UNMAPPED_COLUMN]) == {"order-id": "not an int", "weird name!": [1, "a"],
                                                "Name": 3}
    assert set(out) == {"__key__", UNMAPPED_COLUMN}
    # Names the plan renamed still use the column name when they fit.
    out, count = encode_fitting(typed_row(entity(11, **{"order-id": 4})), result)
    assert count == 0
    [col] = [c for c in out if c.startswith("order_id_")]
    assert out[col] == 4


def test_conflict_columns_take_anything_as_json_text():
    result = plan_from_rows([typed_row(entity(1, v=1)), typed_row(entity(2, v="a"))])
    [field] = [f for f in result["schema"] if f["name"] == "v"]
    assert field["type"] == "STRING"
    for value, text in [(5, "5"), ("x", '"x"'), ([1, "a"], '[1, "a"]'), ({"k": 1}, '{"k": 1}')]:
        out, count = encode_fitting(typed_row(entity(3, v=value)), result)
        assert count == 0 and out["v"] == text


# --- pipeline.sinks.bigquery: pure pieces ------------------------------------------------------

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


def test_streamed_namespace():
    s = StreamedNamespace({"p.ds.b": [3, 1, 0], "p.ds.a": [2, 0, 0]})
    assert s.output == "p.ds.a, p.ds.b"
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1}
    s = StreamedNamespace({"p.ds.b": [3, 1, 2], "p.ds.a": [2, 0, 4]})
    assert s.counters == {ROWS_COUNTER: 5, REJECTED_COUNTER: 1, "unmapped_properties": 6}
    empty = StreamedNamespace({})
    assert empty.output == ""
    assert empty.counters == {ROWS_COUNTER: 0, REJECTED_COUNTER: 0}
