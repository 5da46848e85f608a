"""Read first, split only what is big (``pipeline.core.planning``), the statistics' counts
(``pipeline.core.statistics``), the planner's pool (``InFlight``), progress lines and the printed
summary of thousands of tenants: pure logic, no Datastore."""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time

import pytest

from pipeline.core.keyorder import StringOrder, sort_key
from pipeline.core.keyrange import KeyRange
from pipeline.core.planning import (
    STATS_MARGIN,
    after_first_read,
    check_increasing,
    first_read_done,
    known_big,
)
from pipeline.core.splitting import key_ranges
from pipeline.core.statistics import counts_at, newest, newest_counts
from pipeline.core.summary import build_summary, format_summary
from pipeline.core.totals import Totals
from pipeline.graph.inflight import InFlight
from pipeline.graph.progress import WorkerLog

ORDER = StringOrder.UTF8
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def key(i) -> tuple:
    return (("Item", i),)


def keys(ids) -> list:
    return sorted((key(i) for i in ids), key=lambda p: sort_key(p, ORDER))


# --- read first -----------------------------------------------------------------------------

def test_a_first_read_that_returns_fewer_than_asked_is_the_whole_unit():
    assert first_read_done(0, 1000)  # an empty unit: one query
    assert first_read_done(999, 1000)
    assert not first_read_done(1000, 1000)  # exactly full: there may be more


def _check_cover(ranges, paths, after):
    """Every key of the first read in exactly one first slice, in the range holding it; the
    reading step's restrictions start after the last key read, and with the first slices
    cover the whole key space once."""
    last = paths[-1]
    handed = []
    for s in after.slices:
        rng = ranges[s.index]
        chunk = paths[s.start:s.stop]
        assert all(rng.contains(p) for p in chunk)
        handed += chunk
        if s.rest is not None:
            assert rng.contains(last) and not s.rest.contains(last)
            assert s.rest.end == rng.end and not s.rest.start_inclusive
            assert all(sort_key(x, ORDER) > sort_key(last, ORDER) for x in s.rest.samples)
        else:
            assert rng.after_start(last) and not rng.before_end(last)  # wholly read first
    assert handed == list(paths), "each key read first is handed over once, in order"
    held = [s.index for s in after.slices if s.rest is not None]
    assert len(held) == 1, "exactly one range goes on after the last key read"
    assert [i for i, _ in after.unread] == list(range(held[0] + 1, len(ranges)))
    for _, rng in after.unread:
        assert sort_key(rng.start, ORDER) > sort_key(last, ORDER)
    assert [s.index for s in after.slices] == list(range(held[0] + 1))


@pytest.mark.parametrize("seed", range(30))
def test_a_full_first_read_is_shared_out_over_the_ranges_and_never_read_again(seed):
    r = random.Random(seed)
    universe = r.sample(range(1, 10 ** 6), 400)
    present = sorted(universe)
    bound = r.choice([1, 5, 50, 200, 399])
    first = keys(present)[:bound]
    # The sample: keys of the unit (some written after the first read, below its last key).
    samples = r.sample(keys(universe), r.randint(0, 120))
    ranges = key_ranges(samples, r.choice([1, 2, 8, 32]), r.choice([1, 4, 32]), ORDER)
    after = after_first_read(ranges, first)
    _check_cover(ranges, first, after)
    # What the reading step reads, and the first slices, are disjoint and cover every key.
    everything = keys(range(1, 10 ** 6, 997)) + keys(present)
    for p in everything:
        in_first = sort_key(p, ORDER) <= sort_key(first[-1], ORDER)
        later = [rng for _, rng in after.unread] + [s.rest for s in after.slices if s.rest]
        assert sum(rng.contains(p) for rng in later) == (0 if in_first else 1), p


def test_the_last_key_read_at_a_split_point_goes_on_in_the_range_above():
    ranges = key_ranges(keys([10, 20, 30, 40]), 4, 1, ORDER)  # cut at 20, 30, 40
    after = after_first_read(ranges, keys([1, 5, 10, 15, 20]))
    assert [(s.index, s.start, s.stop, s.rest is not None) for s in after.slices] == [
        (0, 0, 4, False), (1, 4, 5, True)]
    assert after.slices[1].rest.describe() == KeyRange(
        start=key(20), end=key(30), start_inclusive=False, order=ORDER).describe()
    assert [i for i, _ in after.unread] == [2, 3]


def test_one_range_holding_everything_goes_on_after_the_last_key():
    ranges = key_ranges([], 8, 32, ORDER)
    after = after_first_read(ranges, keys([3, 4, 9]))
    assert len(after.slices) == 1 and after.unread == ()
    rest = after.slices[0].rest
    assert rest.start == key(9) and not rest.start_inclusive and rest.end is None


def test_keys_out_of_the_mappers_order_are_refused():
    check_increasing(keys([1, 2, 3]), ORDER)
    with pytest.raises(ValueError, match="--key_order"):
        check_increasing([key(2), key(1)], ORDER)
    with pytest.raises(ValueError):
        after_first_read(key_ranges([], 1, 1, ORDER), [])


def test_statistics_say_big_only_well_past_the_bound():
    assert not known_big(None, 1000)
    assert not known_big(STATS_MARGIN * 1000 - 1, 1000)
    assert known_big(STATS_MARGIN * 1000, 1000)


# --- statistics -------------------------------------------------------------------------------

def test_namespace_statistics_keep_the_newest_generation_and_only_the_big():
    old, new = NOW - dt.timedelta(days=2), NOW
    rows = [("acme", old, 5), ("acme", new, 50_000), ("tiny", new, 3), ("", new, 4_000),
            ("gone", old, 90_000), (None, new, 10**6), ("odd", new, "many"), ("flag", new, True)]
    assert newest(ts for _, ts, _ in rows) == new
    assert counts_at(rows, new, at_least=2_000) == {"acme": 50_000, "": 4_000}
    assert counts_at(rows, new) == {"acme": 50_000, "tiny": 3, "": 4_000}
    assert counts_at([], None) == {} and newest([]) is None


def test_kind_statistics_of_a_namespace():
    old, new = NOW - dt.timedelta(days=1), NOW
    rows = [("Order", old, 10), ("Order", new, 12_000), ("Line", new, 400), ("Gone", old, 7)]
    assert newest_counts(rows) == {"Order": 12_000, "Line": 400}
    assert newest_counts([]) == {}


# --- several reads in flight ------------------------------------------------------------------

def test_in_flight_runs_calls_at_once_and_hands_every_result_back():
    pool = InFlight(4)
    running, peak, lock = [0], [0], threading.Lock()

    def call(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i

    got = []
    for i in range(20):
        got += list(pool.submit(call, i))
        assert len(pool._running) < 4
    got += list(pool.drain())
    pool.close()
    assert sorted(got) == list(range(20)) and peak[0] == 4


def test_in_flight_of_one_calls_in_place_and_errors_reach_the_caller():
    pool = InFlight(1)
    assert list(pool.submit(lambda: threading.current_thread().name)) == [
        threading.current_thread().name]
    pool = InFlight(3)

    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        list(pool.submit(boom))
        list(pool.drain())
    pool.reset()
    assert list(pool.drain()) == []
    pool.close()


# --- output that scales with tenants ----------------------------------------------------------

def test_progress_lines_summarise_and_name_only_the_biggest_in_flight(caplog):
    p = WorkerLog()
    for i in range(5000):
        p.add(f"t{i:05d}", f"t{i:05d}#0", 5, every=1e-9, done=True, one_query=True) \
            if i % 1000 else None
    with caplog.at_level(logging.INFO, logger="pipeline.progress"):
        p.add("big", "big#0", 900, every=1e-9)
        p.add("big", "big#1", 900, every=1e-9)
        p.add("mid", "mid#2", 300, every=1e-9)
        p.add("small", "small#1", 3, every=1e-9)
        p.add("tiny", "tiny#1", 1, every=1e-9)
        p.add("big", "big#0", 0, every=1e-9, done=True)
    line = caplog.records[-1].getMessage()
    assert "4995 units done here (4995 read in one query)" in line
    assert "4 in flight: big 1800, mid 300, small 3 and 1 more" in line
    assert "t00001" not in line and len(line) < 300
    p.add("big", "big#1", 10, every=1e-9, done=True)
    assert "big" not in p._in_flight and p._done == 4996


def _summary(n: int):
    per_ns = {f"t{i:05d}": Totals(entities=i % 7, ranges=1) for i in range(n)}
    per_ns["big"] = Totals(entities=20_000, ranges=8)
    return build_summary("count_keys", "kind Item", {}, NOW, NOW + dt.timedelta(seconds=10),
                         per_ns, cap=10)


def test_the_printed_summary_shows_the_largest_namespaces_and_counts_the_rest():
    s = _summary(20_000)
    text = format_summary(s)
    lines = text.splitlines()
    assert len(lines) < 30
    assert any(line.split()[:3] == ["big", "20000", "8"] for line in lines)
    assert "... and 19981 more namespaces:" in text and "summary.json" in text
    shown = [line.split()[0] for line in lines[3:-1] if not line.lstrip().startswith("...")]
    assert len(shown) == 20 and shown == sorted(shown)
    assert len(s["namespaces"]) == 20_001  # summary.json keeps them all
    few = format_summary(_summary(3))
    assert "more namespaces" not in few and "t00002" in few
