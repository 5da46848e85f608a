"""Streaming records into BigQuery (--bigquery_table), against the real Datastore emulator and
bqemulator (tests/bigquery_emulator.py)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
from collections import Counter

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.sinks.bigquery.tables import table_part
from tests.support import TEST_PROJECT
from tests.support.bad_rows import bq_bad
from tests.support.runs import IN_PROCESS, run_mapper

SPEC = [NamespaceSpec("", 120), NamespaceSpec("acme.eu", 90), NamespaceSpec("tenant_1", 7)]
SMALL = ["--shards", "4", "--slice_entities", "25"]
TEST_JOBS = ["--job_module", "tests.support.jobs_for_tests"]


def ok(result) -> None:
    assert result.code == 0, (f"exited {result.code}\nstderr:\n{result.stderr[-6000:]}\n"
                              f"stdout:\n{result.stdout[-2000:]}")


def bq_args(bq, table: str) -> list:
    return ["--bigquery_table", table, "--bigquery_emulator_host", bq.host]


def key_of(row: dict) -> tuple:
    k = row["__key__"]
    return k["namespace"], tuple(x for p in k["path"] for x in (p["kind"], p["id"] or p["name"]))


@pytest.fixture
def multi(emulator) -> dict:
    return seed_dataset(TEST_PROJECT, SPEC)


def read_lines(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_stream_entities_lands_every_entity_exactly_once(multi, bigquery_emulator, tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    out = tmp_path / "out"
    result = run_mapper("stream_entities", [*SMALL, *bq_args(bq, f"{ds}.items")], output=str(out),
                        runner=IN_PROCESS)
    ok(result)
    rows = bq.rows(f"{ds}.items")
    expected = Counter((ns, tuple(p)) for ns, paths in multi.items() for p in paths)
    assert Counter(key_of(r) for r in rows) == expected  # every key, once, nothing else
    totals = result.summary["totals"]
    assert totals["counters"]["bigquery_rows"] == sum(expected.values())
    assert totals["counters"]["bigquery_rejected"] == 0
    for ns, paths in multi.items():
        assert result.summary["namespaces"][ns or "__default__"]["counters"]["bigquery_rows"] == \
            len(paths)
    # Rejected rows would be here; the file exists and is empty.
    # Nothing was rejected: no dead-letter file (the summary says so).
    assert not (out / "stream_entities" / "dead_letter.jsonl").exists()
    assert result.summary["dead_letters"] == {"count": 0, "file": None}
    # The seed's properties arrive as typed columns.
    row = next(r for r in rows if r.get("tags"))
    assert isinstance(row["n"], int) and isinstance(row["tags"], list)
    assert isinstance(row["created"], dt.datetime)


def test_a_namespace_template_makes_one_valid_table_per_namespace(multi, bigquery_emulator,
                                                                  tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    result = run_mapper("stream_entities",
                        [*SMALL, *bq_args(bq, f"{bq.project}:{ds}.items_{{namespace}}")],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    ok(result)
    tables = sorted(t.table_id for t in bq.client.list_tables(f"{bq.project}.{ds}",
                                                              retry=bq.retry, timeout=bq.timeout))
    assert tables == sorted(["items___default__", "items_acme_2eeu", "items_tenant_5f1"])
    assert tables == sorted(f"items_{table_part(ns)}" for ns in multi)
    for ns, paths in multi.items():
        rows = bq.rows(f"{ds}.items_{table_part(ns)}")
        assert Counter(key_of(r) for r in rows) == Counter((ns, tuple(p)) for p in paths), ns


def test_nested_repeated_and_unmapped_values_arrive_intact(emulator, bigquery_emulator, tmp_path):
    """Embedded entities, lists, keys, timestamps, bytes and geo points become RECORD/REPEATED
    columns; a property the launch sample did not show lands in __unmapped__, not lost."""
    c = datastore.Client(project=TEST_PROJECT, namespace="shop")
    when = dt.datetime(2026, 11, 27, 8, 30, 15, 250000, tzinfo=dt.timezone.utc)
    first = datastore.Entity(c.key("Order", 1))
    first.update({"customer": {"name": "Ada", "tags": ["vip", "eu"], "address": {"zip": "10115"}},
                  "lines": [{"sku": "a-1", "qty": 2}, {"sku": "b-2", "qty": 1}],
                  "ids": [3, 1, 2], "when": when, "parent": c.key("Customer", "ada"),
                  "blob": b"\x00\xffraw", "where": datastore.helpers.GeoPoint(52.52, 13.405)})
    second = datastore.Entity(c.key("Order", 2))
    second.update({"customer": {"name": "Bob", "tags": [], "address": {"zip": "75001"}},
                   "lines": [], "ids": [7], "when": when, "late": "only here",
                   "blob": b"x", "where": datastore.helpers.GeoPoint(48.85, 2.35),
                   "parent": c.key("Customer", "bob")})
    c.put_multi([first, second])
    bq = bigquery_emulator
    ds = bq.new_dataset()
    result = run_mapper("stream_entities", ["--params", "kind=Order",
                                            "--bigquery_schema_sample", "1",
                                            *bq_args(bq, f"{ds}.orders")],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    ok(result)
    rows = {r["__key__"]["id"]: r for r in bq.rows(f"{ds}.orders")}
    assert set(rows) == {1, 2}
    a, b = rows[1], rows[2]
    assert a["customer"]["name"] == "Ada" and a["customer"]["tags"] == ["vip", "eu"]
    assert a["customer"]["address"] == {"zip": "10115"}
    assert [(x["sku"], x["qty"]) for x in a["lines"]] == [("a-1", 2), ("b-2", 1)]
    assert a["ids"] == [3, 1, 2] and b["ids"] == [7] and b["lines"] == []
    assert a["when"] == when
    assert a["__key__"]["namespace"] == "shop"
    assert a["__key__"]["path"] == [{"kind": "Order", "id": 1, "name": None}]
    assert a["parent"]["path"] == [{"kind": "Customer", "id": None, "name": "ada"}]
    assert base64.b64decode(a["blob"]) == b"\x00\xffraw" if isinstance(a["blob"], str) \
        else a["blob"] == b"\x00\xffraw"
    assert (a["where"]["latitude"], a["where"]["longitude"]) == (52.52, 13.405)
    # The sample (1 entity) did not show "late": it is kept, by its name, as JSON text.
    assert a.get("__unmapped__") is None
    assert result.summary["totals"]["counters"]["unmapped_properties"] == 1
    assert json.loads(b["__unmapped__"]) == {"late": "only here"}
    schema = {f.name: (f.field_type, f.mode) for f in bq.client.get_table(
        f"{bq.project}.{ds}.orders", retry=bq.retry, timeout=bq.timeout).schema}
    assert schema["lines"] == ("RECORD", "REPEATED") and schema["ids"] == ("INTEGER", "REPEATED")
    assert schema["customer"] == ("RECORD", "NULLABLE") and "late" not in schema


def test_declared_schema_two_records_per_entity_and_a_table_per_record(multi, bigquery_emulator,
                                                                        tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    result = run_mapper("test_bq_rows", [*TEST_JOBS, *SMALL, "--params", "split=true",
                                         *bq_args(bq, f"{ds}.unused")],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    ok(result)
    expected = Counter((ns, tuple(str(x) for x in p)) for ns, paths in multi.items()
                       for p in paths)
    for table, copy in (("first", 0), ("second", 1)):
        rows = bq.rows(f"{ds}.{table}")
        assert {r["copy"] for r in rows} == {copy}
        assert Counter((r["namespace"], tuple(r["key"])) for r in rows) == expected, table
        assert all(r["seen"] == dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc)
                   for r in rows)
    assert result.summary["totals"]["counters"]["bigquery_rows"] == 2 * sum(expected.values())


def _bad_keys(multi, every):
    return sorted((ns, tuple(str(x) for x in p)) for ns, paths in multi.items() for p in paths
                  if bq_bad(p, every))


def test_rejected_rows_go_to_the_dead_letter_file_with_their_errors(multi, bigquery_emulator,
                                                                    tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    bad = _bad_keys(multi, 10)
    assert 5 <= len(bad) <= 60
    out = tmp_path / "out"
    result = run_mapper("test_bq_rows", [
        *TEST_JOBS, *SMALL, "--params", "bad_every=10", *bq_args(bq, f"{ds}.rows"),
        "--bigquery_max_bad_rows", str(len(bad))], output=str(out), runner=IN_PROCESS)
    ok(result)
    dead = read_lines(out / "test_bq_rows" / "dead_letter.jsonl")
    assert sorted((d["namespace"], tuple(json.loads(d["row"])["key"])) for d in dead) == bad
    for d in dead:
        assert d["table"] == f"{bq.project}.{ds}.rows" and len(d["insert_id"]) == 40
        assert d["errors"] and all(e.get("message") for e in d["errors"])
        assert json.loads(d["row"])["n"] == "not-a-number"
    total = sum(len(p) for p in multi.values())
    rows = bq.rows(f"{ds}.rows")
    assert len(rows) == 2 * total - len(bad)  # every good row landed, once
    counters = result.summary["totals"]["counters"]
    assert (counters["bigquery_rows"], counters["bigquery_rejected"]) == (len(rows), len(bad))


@pytest.mark.parametrize("runner", [IN_PROCESS], ids=["one-worker"])
def test_more_rejected_rows_than_allowed_fail_the_run(multi, bigquery_emulator, tmp_path, runner):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    bad = _bad_keys(multi, 10)
    out = tmp_path / "out"
    result = run_mapper("test_bq_rows", [
        *TEST_JOBS, *SMALL, "--params", "bad_every=10", *bq_args(bq, f"{ds}.rows"),
        "--bigquery_max_bad_rows", str(len(bad) - 1)], output=str(out), runner=runner)
    assert result.code != 0, result.stderr[-3000:]
    assert "--bigquery_max_bad_rows" in result.stderr and "rejected" in result.stderr
    assert "dead_letter.jsonl" in result.stderr
    assert "Traceback" not in result.stderr.split("error:")[-1]
    # The run fails at its end, after the dead letters are written: none is lost.
    dead = read_lines(out / "test_bq_rows" / "dead_letter.jsonl")
    assert sorted((d["namespace"], tuple(json.loads(d["row"])["key"])) for d in dead) == bad


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_bigquery_fails_at_launch_with_a_clear_message(multi, tmp_path):
    out = tmp_path / "out"
    result = run_mapper("stream_entities", [
        *SMALL, "--bigquery_table", "ds.items", "--bigquery_emulator_host",
        f"127.0.0.1:{_closed_port()}"], output=str(out),
        runner=IN_PROCESS)
    assert result.code == 2, result.stderr[-3000:]
    # A refused connection is a misconfiguration: one line at once, not --bigquery_deadline's
    # retries.
    assert "unreachable (connection refused, not retried" in result.stderr
    assert not (out / "stream_entities" / "summary.json").exists()  # nothing was read


def test_misconfigurations_are_refused_before_reading(multi, bigquery_emulator, tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    out = str(tmp_path / "out")
    cases = [
        (["--bigquery_create=false", *bq_args(bq, f"{ds}.missing")],
         "does not exist, and --bigquery_create=false"),
        ([*bq_args(bq, "no-dots")], "is not a table"),
        ([*bq_args(bq, f"{ds}.a{{namespace}}{{namespace}}")], "at most one {namespace}"),
    ]
    for args, message in cases:
        result = run_mapper("stream_entities", args, output=out, runner=IN_PROCESS)
        assert result.code == 2 and message in result.stderr, (args, result.stderr[-2000:])
    r = run_mapper("stream_entities", [], output=out, runner=IN_PROCESS)
    assert r.code == 2 and "pass --bigquery_table" in r.stderr
    r = run_mapper("count_keys", bq_args(bq, f"{ds}.t"), output=out, runner=IN_PROCESS)
    assert r.code == 2 and "declares no BigQuery schema" in r.stderr
    r = run_mapper("stream_entities", bq_args(bq, f"{ds}.t"), runner=IN_PROCESS)
    assert r.code == 2 and "--dead_letter" in r.stderr
    assert not os.path.exists(out)


def test_write_disposition_empty_refuses_a_table_with_rows(multi, bigquery_emulator, tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    args = [*SMALL, *bq_args(bq, f"{ds}.items"), "--bigquery_write_disposition=empty",
            "--output_mode=replace"]
    ok(run_mapper("stream_entities", args, output=str(tmp_path / "o"), runner=IN_PROCESS))
    again = run_mapper("stream_entities", args, output=str(tmp_path / "o"), runner=IN_PROCESS)
    assert again.code == 2 and "already hold(s) rows" in again.stderr, again.stderr[-2000:]
    assert len(bq.rows(f"{ds}.items")) == sum(len(p) for p in multi.values())
