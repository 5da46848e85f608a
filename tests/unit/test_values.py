"""Unit tests (no emulator): property values, value ranges and the value range tracker."""
from __future__ import annotations

import datetime as dt
import random
from collections import deque

import pytest

from pipeline.core.keyorder import StringOrder, path_from_flat, sort_key
from pipeline.core.splitting import owner_value, value_ranges
from pipeline.core.valuerange import Claim, ValueRange
from pipeline.core.values import (
    UnsupportedValue,
    as_utc,
    interpolate,
    parse_bound,
    split_points,
    strictly_between,
    to_json_value,
    value_sort_key,
    value_type,
)
from pipeline.graph.trackers import END, ValueRangeTracker

ORDERS = [StringOrder.UTF8, StringOrder.UTF16]
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
_CHARS = ["a", "b", "m", "z", "A", "0", " ", "é", "ß", "中", "\ud7ff", "\ue000", "\uf8ff",
          "\uffff", "\U00010000", "\U0001F600", "\U0010FFFF"]


def K(*flat):
    return path_from_flat(flat)


def vk(v, order=StringOrder.UTF8):
    return value_sort_key(v, order)


def random_string(rng: random.Random, max_len: int = 6) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, max_len)))


def random_value(rng: random.Random, kind: str):
    if kind == "int":
        return rng.randint(-10**6, 10**6)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "datetime":
        return T0 + dt.timedelta(microseconds=rng.randint(-10**14, 10**14))
    return random_string(rng)


def random_bounds(rng, kind, order):
    while True:
        a, b = random_value(rng, kind), random_value(rng, kind)
        if vk(a, order) < vk(b, order):
            return a, b
        if vk(b, order) < vk(a, order):
            return b, a


# --------------------------------------------------------------------------- values


def test_value_type_and_sort_key():
    assert value_type(3) == "integer" and value_type(2.5) == "float"
    # Datastore orders types apart (integers before strings before floats): so do we.
    assert value_sort_key(10**9) < value_sort_key("a") < value_sort_key(-1.5)
    assert value_type(T0) == "timestamp" and value_type("x") == "string"
    with pytest.raises(UnsupportedValue):
        value_type(True)
    with pytest.raises(UnsupportedValue):
        value_type(b"bytes")
    with pytest.raises(UnsupportedValue):
        value_type(None)
    # Integers, then timestamps, then strings, then floats (Datastore's type order).
    assert vk(10**9) < vk(T0) < vk("") < vk(-1e300)
    assert vk(1) < vk(2) and vk(1.5) < vk(2.5)
    # Naive datetimes are UTC; aware ones compare by instant.
    assert vk(dt.datetime(2026, 1, 1)) == vk(T0)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert vk(dt.datetime(2026, 1, 1, 2, tzinfo=plus2)) == vk(T0)
    # String order differs between UTF-8 and UTF-16 exactly as for key names.
    assert vk("\ue000", StringOrder.UTF8) < vk("\U0001F600", StringOrder.UTF8)
    assert vk("\ue000", StringOrder.UTF16) > vk("\U0001F600", StringOrder.UTF16)


def test_interpolate_numbers():
    assert interpolate(0, 100, 0.5) == 50 and isinstance(interpolate(0, 100, 0.5), int)
    assert interpolate(0, 100, 0.25) == 25
    assert interpolate(-10, 10, 0.5) == 0
    assert interpolate(0, 3, 0.5) == 1
    assert interpolate(2**62, 2**63 - 1, 0.5) > 2**62  # big ints keep precision
    assert interpolate(0.0, 1.0, 0.25) == pytest.approx(0.25)
    with pytest.raises(UnsupportedValue):
        interpolate(0, "a", 0.5)
    with pytest.raises(UnsupportedValue):
        interpolate(T0, 5, 0.5)


def test_interpolate_datetimes_utc():
    mid = interpolate(T0, T0 + dt.timedelta(days=1), 0.5)
    assert mid == T0 + dt.timedelta(hours=12)
    assert mid.utcoffset() == dt.timedelta(0)
    # Naive bounds are UTC; the result is aware UTC.
    mid = interpolate(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), 0.25)
    assert mid == T0 + dt.timedelta(hours=6) and mid.tzinfo is not None
    # Other zones are converted, not misread.
    plus5 = dt.timezone(dt.timedelta(hours=5))
    lo = dt.datetime(2026, 1, 1, 5, tzinfo=plus5)  # == T0
    assert interpolate(lo, T0 + dt.timedelta(hours=10), 0.5) == T0 + dt.timedelta(hours=5)
    # Microsecond precision, before the epoch too.
    a = dt.datetime(1960, 1, 1, tzinfo=UTC)
    us = dt.timedelta(microseconds=1)
    assert interpolate(a, a + 10 * us, 0.5) == a + 5 * us


@pytest.mark.parametrize("order", ORDERS)
def test_interpolate_strings_strictly_between(order):
    for lo, hi in [("a", "b"), ("apple", "banana"), ("user-0001", "user-9999"), ("", "z"),
                   ("A", "z"), ("é", "中"), ("a", "\U0001F600"), ("abc", "abd"), ("x", "xyz")]:
        p = interpolate(lo, hi, 0.5)
        assert isinstance(p, str)
        if order is StringOrder.UTF8 or not any(ord(c) > 0xFFFF for c in lo + hi + p):
            assert strictly_between(lo, p, hi, order), (lo, hi, p)
    assert interpolate("user-0001", "user-9999", 0.5).startswith("user-")
    assert "a" < interpolate("a", "b", 0.5) < "b"


def test_split_points_numbers_datetimes():
    for order in ORDERS:
        assert split_points(0, 100, 4, order) == [25, 50, 75]
        assert split_points(0.0, 1.0, 4, order) == pytest.approx([0.25, 0.5, 0.75])
        assert split_points(T0, T0 + dt.timedelta(days=1), 4, order) == [
            T0 + dt.timedelta(hours=h) for h in (6, 12, 18)]
        assert split_points(0, 100, 1, order) == []
        assert split_points(0, 2, 4, order) == [1]  # 0..2 cannot be cut in 4
        assert split_points(0, 1, 4, order) == []  # nothing strictly inside
        assert split_points(5, 5, 4, order) == []
        assert split_points(T0, T0 + dt.timedelta(microseconds=1), 8, order) == []


def test_split_points_strings():
    pts = split_points("a", "z", 4, StringOrder.UTF8)
    assert len(pts) == 3 and "a" < pts[0] < pts[1] < pts[2] < "z"
    assert split_points("a", "a\x00", 4, StringOrder.UTF8) == []


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", ["int", "float", "datetime", "str"])
def test_split_points_strictly_increasing_inside_bounds(kind, order):
    rng = random.Random(f"split_points {kind} {order.value}")
    produced = 0
    for _ in range(150):
        lo, hi = random_bounds(rng, kind, order)
        n = rng.randint(1, 12)
        pts = split_points(lo, hi, n, order)
        assert len(pts) <= n - 1 if n > 1 else pts == []
        chain = [lo, *pts, hi]
        for a, b in zip(chain, chain[1:]):
            assert vk(a, order) < vk(b, order), (lo, hi, n, pts)
        for p in pts:
            assert value_type(p) == value_type(lo)
        produced += len(pts)
    assert produced > 150  # not vacuous: random ranges do get split


def test_value_helpers():
    assert to_json_value(T0) == "2026-01-01T00:00:00+00:00"
    assert to_json_value(3) == 3
    assert parse_bound(None) is None
    bound = parse_bound(dt.datetime(2026, 1, 1))
    assert bound == T0 and bound.tzinfo is not None
    assert as_utc(dt.datetime(2026, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == T0


# --------------------------------------------------------------------------- value_ranges


def _in_range(r: ValueRange, v, order) -> bool:
    k, lo, hi = vk(v, order), vk(r.query_lo, order), vk(r.query_hi, order)
    above = k >= lo if r.lo_inclusive else k > lo
    below = k <= hi if r.hi_inclusive else k < hi
    return above and below


@pytest.mark.parametrize("order", ORDERS)
def test_value_ranges_shape(order):
    rs = value_ranges("n", 0, 100, True, 4, order)
    assert [(r.query_lo, r.query_hi) for r in rs] == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert [r.hi_inclusive for r in rs] == [False, False, False, True]
    assert all(r.lo_inclusive for r in rs)
    assert all(r.prop == "n" and r.order is order and r.start is None and r.end is None for r in rs)
    rs = value_ranges("n", 0, 100, False, 4, order, lo_inclusive=False)
    assert [r.lo_inclusive for r in rs] == [False, True, True, True]
    assert [r.hi_inclusive for r in rs] == [False] * 4
    (only,) = value_ranges("n", 0, 100, True, 1, order, lo_inclusive=False)
    assert (only.query_lo, only.query_hi) == (0, 100)
    assert (only.lo_inclusive, only.hi_inclusive) == (False, True)
    assert len(value_ranges("n", 0, 2, True, 4, order)) == 2  # fewer where values run out
    (same,) = value_ranges("n", 7, 7, True, 4, order)
    assert _in_range(same, 7, order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kind", ["int", "float", "datetime", "str"])
def test_value_ranges_cover_without_gaps_or_overlaps(kind, order):
    rng = random.Random(f"value_ranges {kind} {order.value}")
    for _ in range(40):
        lo, hi = random_bounds(rng, kind, order)
        lo_incl, hi_incl = rng.random() < 0.5, rng.random() < 0.5
        rs = value_ranges("p", lo, hi, hi_incl, rng.randint(1, 10), order, lo_inclusive=lo_incl)
        assert rs[0].query_lo == lo and rs[-1].query_hi == hi
        for a, b in zip(rs, rs[1:]):
            assert a.query_hi == b.query_lo and not a.hi_inclusive and b.lo_inclusive
        values = [lo, hi] + [r.query_lo for r in rs] + [random_value(rng, kind) for _ in range(60)]
        for v in values:
            k = vk(v, order)
            inside = ((k >= vk(lo, order)) if lo_incl else (k > vk(lo, order))) and (
                (k <= vk(hi, order)) if hi_incl else (k < vk(hi, order)))
            holders = sum(_in_range(r, v, order) for r in rs)
            assert holders == (1 if inside else 0), (lo, hi, v, lo_incl, hi_incl)


# --------------------------------------------------------------------------- owner_value


def test_owner_value_smallest_and_largest_in_range():
    u8 = StringOrder.UTF8
    assert owner_value([7, 3, 12, 5], 4, 10, True, False, u8) == 5
    assert owner_value([7, 3, 12, 5], 4, 10, True, False, u8, largest=True) == 7
    assert owner_value(6, 4, 10, True, False, u8) == 6  # a single value
    assert owner_value([1, 2, 11], 4, 10, True, False, u8) is None
    assert owner_value([], 4, 10, True, False, u8) is None
    assert owner_value(None, 4, 10, True, False, u8) is None


def test_owner_value_respects_inclusive_flags():
    u8 = StringOrder.UTF8
    assert owner_value([4, 10], 4, 10, True, True, u8) == 4
    assert owner_value([4, 10], 4, 10, False, True, u8) == 10
    assert owner_value([4, 10], 4, 10, True, False, u8, largest=True) == 4
    assert owner_value([4, 10], 4, 10, False, False, u8) is None
    assert owner_value([4, 10], 4, 10, True, True, u8, largest=True) == 10


def test_owner_value_ignores_other_types_and_open_bounds():
    u8 = StringOrder.UTF8
    vals = ["a", 5, T0, True, None, b"x", 8]
    assert owner_value(vals, 0, 100, True, False, u8) == 5
    assert owner_value(vals, 0, 100, True, False, u8, largest=True) == 8
    assert owner_value(vals, "", "zz", True, False, u8) == "a"
    assert owner_value(vals, T0, T0, True, True, u8) == T0
    assert owner_value([3, "b"], None, 10, True, False, u8) == 3
    assert owner_value([3, 20], 5, None, True, False, u8) == 20
    assert owner_value(["x"], 0, None, True, False, u8) is None  # a string is not >= a number
    assert owner_value([1, 30], None, None, True, False, u8) == 1


def test_owner_value_uses_the_string_order():
    vals = ["\U0001F600", "\ue000"]
    assert owner_value(vals, "a", "\U0010FFFF", True, True, StringOrder.UTF8) == "\ue000"
    assert owner_value(vals, "a", "\uffff", True, True, StringOrder.UTF16) == "\U0001F600"
    assert owner_value(vals, "a", "\uffff", True, False, StringOrder.UTF8) == "\ue000"
    assert owner_value(vals, "a", "\ue001", True, False, StringOrder.UTF16) == "\U0001F600"


# --------------------------------------------------------------------------- ValueRangeTracker


def _vr(**kw):
    base = dict(prop="n", query_lo=0, query_hi=100)
    base.update(kw)
    return ValueRange(**base)


def test_value_tracker_claims_must_increase():
    t = ValueRangeTracker(_vr())
    assert t.try_claim(Claim(5, K("K", 2), b"c1"))
    assert t.try_claim(Claim(5, K("K", 3), b"c2"))  # same value, later key
    assert t.try_claim(Claim(6, K("K", 1), b"c3"))  # later value, earlier key
    with pytest.raises(ValueError, match="increase"):
        t.try_claim(Claim(6, K("K", 1), b"c4"))
    with pytest.raises(ValueError, match="increase"):
        t.try_claim(Claim(5, K("K", 9), b"c5"))
    # A residual refuses positions at or before its start.
    t2 = ValueRangeTracker(_vr(start=Claim(10, K("K", 5), b"cur")))
    with pytest.raises(ValueError):
        t2.try_claim(Claim(10, K("K", 5)))
    assert t2.try_claim(Claim(10, K("K", 6)))


def test_value_tracker_end_and_done():
    t = ValueRangeTracker(_vr(end=Claim(50, None)))
    assert t.try_claim(Claim(49, K("K", 1)))
    with pytest.raises(ValueError, match="not fully read"):
        t.check_done()
    assert not t.try_claim(Claim(50, K("K", 1)))  # (50, any key) is past (50, before-all-keys)
    t.check_done()
    assert t.try_split(0) is None and t.try_split(0.5) is None
    assert t.current_progress().remaining_work == 0
    t = ValueRangeTracker(_vr())
    assert t.try_claim(END) is False
    t.check_done()
    assert t.current_progress().remaining_work == 0 and t.current_progress().completed_work > 0
    t = ValueRangeTracker(_vr(end=Claim(50, K("K", 7)), end_inclusive=True))
    assert t.try_claim(Claim(50, K("K", 7)))
    t.check_done()


def test_value_tracker_checkpoint_keeps_the_cursor():
    original = _vr(hi_inclusive=True, lo_inclusive=False)
    # Nothing claimed yet: an empty primary (done at once), the whole range as the residual.
    t0 = ValueRangeTracker(original)
    empty, whole = t0.try_split(0)
    assert whole == original and empty.is_empty()
    t0.check_done()
    assert not ValueRangeTracker(empty).try_claim(Claim(1, K("K", 1)))
    t = ValueRangeTracker(original)
    t.try_claim(Claim(3, K("K", 1), b"cur-1"))
    last = Claim(7, K("K", 2), b"cur-2")
    t.try_claim(last)
    primary, residual = t.try_split(0)
    assert primary.end == last and primary.end_inclusive
    assert residual.start == last and residual.cursor == b"cur-2"
    # The residual keeps the query the cursor belongs to.
    for r in (primary, residual):
        assert (r.query_lo, r.query_hi, r.lo_inclusive, r.hi_inclusive) == (0, 100, False, True)
    assert residual.end is None
    assert t.current_restriction() == primary
    t.check_done()
    t2 = ValueRangeTracker(residual)
    with pytest.raises(ValueError):
        t2.try_claim(Claim(7, K("K", 2)))
    assert t2.try_claim(Claim(7, K("K", 3)))
    p = t2.current_progress()
    assert p.completed_work + p.remaining_work > 0 and p.remaining_work > 0


def test_value_tracker_fraction_split():
    t = ValueRangeTracker(_vr(hi_inclusive=True))
    t.try_claim(Claim(20, K("K", 1), b"c"))
    primary, residual = t.try_split(0.5)
    assert primary.end == Claim(60, None) and not primary.end_inclusive
    assert (primary.query_lo, primary.query_hi) == (0, 100)  # the primary's query is unchanged
    assert residual.query_lo == 60 and residual.lo_inclusive
    assert residual.query_hi == 100 and residual.hi_inclusive and residual.end is None
    assert residual.start is None and residual.cursor is None  # a new query: no cursor
    assert t.current_restriction() == primary
    # Every key with value 60 belongs to the residual, everything below to the primary.
    assert t.try_claim(Claim(59, K("K", 99)))
    assert not t.try_claim(Claim(60, K("A", 1)))
    t.check_done()


def test_value_tracker_fraction_split_of_a_bounded_primary():
    t = ValueRangeTracker(_vr(end=Claim(60, None)))
    t.try_claim(Claim(20, K("K", 1)))
    primary, residual = t.try_split(0.5)
    assert primary.end == Claim(40, None) and not primary.end_inclusive
    assert residual.query_lo == 40 and residual.query_hi == 60 and residual.end == Claim(60, None)
    assert not residual.end_inclusive
    t2 = ValueRangeTracker(residual)
    assert t2.try_claim(Claim(40, K("K", 1)))
    assert t2.try_claim(Claim(59, K("K", 1)))
    assert not t2.try_claim(Claim(60, K("K", 0)))


def test_value_tracker_fraction_split_refused_when_values_run_out():
    t = ValueRangeTracker(_vr(query_lo=0, query_hi=2))
    t.try_claim(Claim(1, K("K", 1)))
    assert t.try_split(0.5) is None  # nothing strictly between 1 and 2
    t = ValueRangeTracker(_vr(query_hi=1))
    assert t.try_split(0.5) is None


def test_value_range_emptiness_and_describe():
    assert not _vr().is_empty()
    assert _vr(end=Claim(0, None)).is_empty()
    assert not _vr(end=Claim(0, None), end_inclusive=True).is_empty()
    assert _vr(start=Claim(5, K("K", 1)), end=Claim(5, K("K", 1)), end_inclusive=True).is_empty()
    assert not _vr(start=Claim(5, K("K", 1)), end=Claim(5, K("K", 2))).is_empty()
    assert _vr(hi_inclusive=True).describe() == "n in [0, 100]"
    assert _vr(end=Claim(50, None), lo_inclusive=False).describe() == "n in (0, 50)"


def _simulated_entities(rng, n):
    ents = []
    for i in range(n):
        count = rng.choice([1, 1, 1, 2, 3])
        ents.append((K("E", i + 1), [rng.randint(0, 60) for _ in range(count)]))
    return ents


@pytest.mark.parametrize("seed", range(6))
def test_simulated_value_reads_with_random_splits_own_every_entity_once(seed):
    """Mirror reading.read_value_slice over in-memory entities (some with list values) while
    the 'runner' checkpoints and splits at random: each in-range entity is handed to the job
    exactly once, by the sub-range that holds its smallest in-range value."""
    rng = random.Random(seed)
    order = StringOrder.UTF8
    ents = _simulated_entities(rng, rng.randint(30, 120))
    lo, hi = rng.randint(0, 10), rng.randint(40, 60)
    lo_incl, hi_incl = rng.random() < 0.5, rng.random() < 0.5
    expected = sorted(k for k, vals in ents
                      if owner_value(vals, lo, hi, lo_incl, hi_incl, order) is not None)
    queue = deque(value_ranges("n", lo, hi, hi_incl, rng.randint(1, 6), order,
                               lo_inclusive=lo_incl))
    emitted = []
    guard = 0
    while queue:
        guard += 1
        assert guard < 5000
        r = queue.popleft()
        t = ValueRangeTracker(r)
        # The backend's answer to r's query: entities with a value inside, at their smallest.
        hits = []
        for key, vals in ents:
            here = owner_value(vals, r.query_lo, r.query_hi, r.lo_inclusive, r.hi_inclusive, order)
            if here is not None:
                hits.append(Claim(here, key, repr((here, key)).encode()))
        hits.sort(key=r.pos_key)
        if r.start is not None:  # resume from the cursor
            hits = [h for h in hits if r.pos_key(h) > r.pos_key(r.start)]
        for claim in hits:
            x = rng.random()
            split = t.try_split(0) if x < 0.08 else t.try_split(rng.random()) if x < 0.2 else None
            if split is not None:
                queue.append(split[1])
                assert t.current_restriction() == split[0]
            if not t.try_claim(claim):
                break
            vals = dict(ents)[claim.key]
            owner = owner_value(vals, lo, hi, lo_incl, hi_incl, order)
            if owner is not None and vk(owner) == vk(claim.value):
                emitted.append(claim.key)
        else:
            t.try_claim(END)
        t.check_done()
    assert sorted(emitted) == expected
    assert len(emitted) == len(set(emitted))


def test_claim_positions_sort_by_value_then_key():
    r = _vr()
    ordered = [Claim(1, None), Claim(1, K("A", 1)), Claim(1, K("B", 1)), Claim(2, None),
               Claim(2, K("A", 1))]
    assert sorted(reversed(ordered), key=r.pos_key) == ordered
    assert sort_key(K("A", 1)) < sort_key(K("B", 1))
