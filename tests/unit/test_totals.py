"""Counters with a cap, totals rolled up slice -> range -> namespace -> job, the summary."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.api.job import Counters
from pipeline.core.counters import OVERFLOW_COUNTER, merge_counters
from pipeline.core.summary import build_summary, format_summary, json_pieces
from pipeline.core.totals import SliceStats, Totals, UnitPlanned, read_whole
from pipeline.graph.rollup import TotalsFn

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


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
              UnitPlanned("a", ranges=2, samples=40)]:
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
    assert b"".join(json_pieces(s)).endswith(b"}\n")


def test_build_summary_of_an_empty_job():
    s = build_summary("j", "q", {}, NOW, NOW, {}, cap=10)
    assert s["totals"]["entities"] == 0 and s["namespaces"] == {}
    assert s["read_time"] is None
    assert format_summary(s).startswith("job j: 0 entities in 0 namespaces, 0 ranges,")


def test_summary_says_one_range_not_one_ranges():
    t = Totals(ranges=1, samples=0)
    t.add_slice(_slice("", "__default__#0", 1, {}), cap=10)
    s = build_summary("j", "q", {}, NOW, NOW + dt.timedelta(seconds=1), {"": t}, cap=10)
    assert format_summary(s).startswith("job j: 1 entity in 1 namespace, 1 range, 1.0 s")


def test_range_entities_sorted_numerically():
    t = Totals()
    for i in (10, 2, 1):
        t.add_slice(_slice("a", f"a#{i}", i), cap=5)
    assert list(t.to_json()["range_entities"]) == ["a#1", "a#2", "a#10"]


def test_a_unit_read_whole_rolls_up_as_the_combiners_do():
    """SplitNamespaces rolls a unit its first read exhausted up itself (``read_whole``): the
    ranges' and the unit's totals must be what RangeTotals and UnitTotals make of the same
    plan record and slices."""
    planned = UnitPlanned("a", ranges=2, samples=3, retries=1, kind="K")
    slices = [_slice("a", "a#0", 5, {"x": 1, "y": 2}, records=2, queries=1, seconds=0.5,
                     kind="K", ended=1_700_000_001.2),
              _slice("a", "a#1", 0, {}, worker="w2", queries=0, kind="K"),
              _slice("a", "a#0", 7, {"x": 2}, errors=1, retries=2, seconds=1.5, kind="K",
                     ended=1_700_000_003.0)]
    fn = TotalsFn(cap=10)
    by_range: dict = {}
    for item in [planned, *slices]:
        key = item.range_id
        by_range[key] = fn.add_input(by_range.get(key) or fn.create_accumulator(), item)
    combined_unit = fn.create_accumulator()
    for t in by_range.values():
        combined_unit = fn.add_input(combined_unit, fn.extract_output(t))
    ranges, unit = read_whole(planned, slices, cap=10)
    assert list(ranges) == ["a#0", "a#1"]
    assert ranges == {k: v for k, v in by_range.items() if k}
    assert unit == combined_unit
    assert unit.entities == 12 and unit.ranges == 2 and unit.retries == 3
    assert unit.range_entities == {"a#0": 12, "a#1": 0} and unit.workers == {"w1", "w2"}
    # a namespace without the job's kinds: its plan record alone, nothing read
    assert read_whole(UnitPlanned("b", 0, 0), [], cap=10) == ({}, Totals())


def test_summary_json_in_pieces_is_the_whole_text():
    """FinishRunFn writes summary.json piece by piece (never whole in memory): the pieces are
    the text json.dumps gives, UTF-8, however they are cut."""
    summary = {"job": "j", "namespaces": {f"tenant-é{i}": {"entities": i, "when": NOW,
                                                          "counters": {"日本": i}}
                                          for i in range(50)}, "ratio": 0.5}
    whole = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    pieces = list(json_pieces(summary, size=100))
    assert len(pieces) > 10 and all(pieces)
    assert b"".join(pieces) == whole.encode("utf-8")
    assert [len(p) for p in json_pieces(summary)] == [len(whole.encode("utf-8"))]
