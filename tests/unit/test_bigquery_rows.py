"""Rows for streaming inserts: insert ids, JSON values, batches and error kinds
(``pipeline.sinks.bigquery.streaming_rows``)."""
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

from pipeline.sinks.bigquery.streaming_rows import (
    batches,
    insert_id,
    is_transient,
    json_ready,
    row_bytes,
)

UTC = dt.timezone.utc


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
