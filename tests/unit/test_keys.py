"""Unit tests (no emulator): key order, key splitting and the key range tracker."""
from __future__ import annotations

import random
from collections import deque

import pytest

from pipeline.core.keyorder import (
    StringOrder,
    compare,
    default_string_order,
    flat_from_path,
    format_path,
    path_from_flat,
    sort_key,
    sorted_paths,
)
from pipeline.core.keyrange import KeyRange, choose_sample
from pipeline.core.splitting import key_ranges, quantile_cuts, range_count
from pipeline.graph.trackers import END, KeyRangeTracker

ORDERS = [StringOrder.UTF8, StringOrder.UTF16]

#: The order the Cloud Datastore emulator was measured to apply to these key names.
EMULATOR_NAME_ORDER = ["A", "a", "aa", "b", "z", "é", "\ud7ff", "\U00010000", "\U0001F600",
                       "\ue000", "\uffff"]

# Characters whose relative order differs between UTF-8 and UTF-16 (BMP private use /
# specials vs. supplementary planes), plus ordinary ones.
_CHARS = ["a", "b", "z", "A", "0", "é", "中", "\ud7ff", "\ue000", "\uf8ff", "\uffff",
          "\U00010000", "\U0001F600", "\U0010FFFF"]
_KINDS = ["Item", "Parent", "Zeta", "\U0001F600Kind", "\ue000Kind"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 3)))


def _element(rng: random.Random, kind: str | None = None) -> tuple:
    kind = kind or rng.choice(_KINDS)
    ident = rng.choice([rng.randint(1, 50), rng.randint(1, 2**63 - 1), _name(rng)])
    return (kind, ident)


def random_keys(rng: random.Random, n: int) -> list:
    """Distinct key paths: ids and names, several kinds, some with one or two ancestors."""
    keys: set = set()
    while len(keys) < n:
        depth = rng.choice([1, 1, 1, 2, 3])
        path = tuple(_element(rng) for _ in range(depth - 1)) + (_element(rng, "Item"),)
        keys.add(path)
        if rng.random() < 0.2 and depth < 3:  # a descendant of an existing key
            keys.add(path + (_element(rng, "Item"),))
    return sorted(keys, key=repr)  # deterministic, not sorted by key order


def K(*flat):
    return path_from_flat(flat)


# --------------------------------------------------------------------------- keyorder


@pytest.mark.parametrize("order", ORDERS)
def test_sort_key_ids_before_names_and_ids_numeric(order):
    keys = [K("K", "1"), K("K", 10), K("K", 2), K("K", "a"), K("K", 2**63 - 1), K("K", "10")]
    got = sorted(keys, key=lambda k: sort_key(k, order))
    assert got == [K("K", 2), K("K", 10), K("K", 2**63 - 1), K("K", "1"), K("K", "10"),
                   K("K", "a")]


@pytest.mark.parametrize("order", ORDERS)
def test_sort_key_ancestors_before_descendants(order):
    a, child, b = K("K", 5), K("K", 5, "K", 1), K("K", 6)
    assert sort_key(a, order) < sort_key(child, order) < sort_key(b, order)
    # A descendant sorts before the next sibling of its parent, even a named one.
    assert sort_key(K("K", 5, "Z", "zzz"), order) < sort_key(K("K", 6), order)
    assert sort_key(K("K", "n", "A", 1), order) < sort_key(K("K", "o"), order)
    assert compare(a, child, order) == -1 and compare(child, a, order) == 1
    assert compare(child, K("K", 5, "K", 1), order) == 0


@pytest.mark.parametrize("order", ORDERS)
def test_sort_key_compares_kind_first(order):
    # Kind decides before id/name: a kind "A" name sorts before kind "B" id.
    assert sort_key(K("A", "zzz"), order) < sort_key(K("B", 1), order)
    assert sort_key(K("A", 999), order) < sort_key(K("B", 1), order)
    # ... also inside a path: same parent, child kinds differ.
    assert sort_key(K("P", 1, "A", "z"), order) < sort_key(K("P", 1, "B", 1), order)
    # ... and kinds are compared before the ancestor's id of a longer path.
    assert sort_key(K("B", 1, "C", 1), order) > sort_key(K("A", 2), order)


def test_utf16_order_reproduces_the_emulators_measured_name_order():
    shuffled = list(EMULATOR_NAME_ORDER)
    random.Random(7).shuffle(shuffled)
    by16 = sorted(shuffled, key=lambda n: sort_key((("K", n),), StringOrder.UTF16))
    assert by16 == EMULATOR_NAME_ORDER
    by8 = sorted(shuffled, key=lambda n: sort_key((("K", n),), StringOrder.UTF8))
    assert by8 == sorted(EMULATOR_NAME_ORDER)  # Python's order: code points == UTF-8 bytes
    assert by8 != by16


def test_utf8_and_utf16_differ_exactly_for_non_bmp_against_e000_ffff():
    bmp_high = ["\ue000", "\uf8ff", "\ufffd", "\uffff"]
    non_bmp = ["\U00010000", "\U0001F600", "\U0010FFFF"]
    low = ["a", "é", "中", "\ud7ff"]
    for x in low + bmp_high + non_bmp:
        for y in low + bmp_high + non_bmp:
            k8 = (sort_key(K("K", x), StringOrder.UTF8), sort_key(K("K", y), StringOrder.UTF8))
            k16 = (sort_key(K("K", x), StringOrder.UTF16), sort_key(K("K", y), StringOrder.UTF16))
            differs = (k8[0] < k8[1]) != (k16[0] < k16[1])
            expected = (x in bmp_high and y in non_bmp) or (x in non_bmp and y in bmp_high)
            assert differs == expected, (ascii(x), ascii(y))
    # Same for kinds.
    emoji, private = K("\U0001F600", 1), K("\ue000", 1)
    assert sort_key(emoji, StringOrder.UTF16) < sort_key(private, StringOrder.UTF16)
    assert sort_key(emoji, StringOrder.UTF8) > sort_key(private, StringOrder.UTF8)


def test_keyorder_helpers():
    assert default_string_order("localhost:8081") is StringOrder.UTF16
    assert default_string_order(None) is StringOrder.UTF8
    assert default_string_order("") is StringOrder.UTF8
    path = K("P", "p1", "Item", 42)
    assert path == (("P", "p1"), ("Item", 42))
    assert flat_from_path(path) == ("P", "p1", "Item", 42)
    assert format_path(path) == "P('p1')/Item(42)"
    assert format_path(None) == "-"
    with pytest.raises(ValueError):
        path_from_flat(("P", "p1", "Item"))
    assert sorted_paths([K("K", 2), K("K", 1), K("K", 2)]) == [K("K", 1), K("K", 2)]


# --------------------------------------------------------------------------- splitting


def test_range_count_formula():
    for samples in range(0, 300, 7):
        for shards in (1, 3, 8, 64):
            for over in (1, 4, 32):
                assert range_count(samples, shards, over) == min(shards, max(1, samples // over))
    assert range_count(0, 8, 32) == 1
    assert range_count(31, 8, 32) == 1
    assert range_count(64, 8, 32) == 2
    assert range_count(10_000, 8, 32) == 8


def test_quantile_cuts_picks_floor_quantiles():
    keys = [K("K", i) for i in range(1, 11)]  # 10 sorted keys
    assert quantile_cuts(keys, 1) == []
    assert quantile_cuts(keys, 2) == [keys[5]]
    assert quantile_cuts(keys, 3) == [keys[3], keys[6]]
    assert quantile_cuts(keys, 4) == [keys[2], keys[5], keys[7]]
    assert quantile_cuts(keys, 10) == keys[1:]
    for n in range(1, 11):
        assert quantile_cuts(keys, n) == [keys[(i * 10) // n] for i in range(1, n)]


def test_quantile_cuts_never_repeats_a_point():
    keys = [K("K", 1), K("K", 2)]
    assert quantile_cuts(keys, 4) == [K("K", 1), K("K", 2)]  # indices 0, 1, 1
    assert quantile_cuts(keys, 7) == [K("K", 1), K("K", 2)]


def _check_ranges(ranges, samples, order, start=None, end=None):
    assert ranges, "at least one range"
    assert ranges[0].start == start and ranges[-1].end == end
    for r in ranges:
        assert r.order is order
        assert r.start_inclusive and not r.end_inclusive
    for a, b in zip(ranges, ranges[1:]):
        assert a.end == b.start  # contiguous: no gap, no overlap
        assert a.end is not None
    bounds = [r.start for r in ranges[1:]]
    for a, b in zip(bounds, bounds[1:]):
        assert sort_key(a, order) < sort_key(b, order)  # strictly increasing
    in_samples = [s for r in ranges for s in r.samples]
    assert len(in_samples) == len(set(in_samples))
    for r in ranges:
        keys = [sort_key(s, order) for s in r.samples]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        for s in r.samples:
            assert r.contains(s) and s != r.start  # strictly inside
    for s in set(samples):
        if start is not None and sort_key(s, order) < sort_key(start, order):
            continue
        if end is not None and sort_key(s, order) >= sort_key(end, order):
            continue
        placed = in_samples.count(s) + [r.start for r in ranges].count(s)
        assert placed == 1, f"sample {format_path(s)} placed {placed} times"


@pytest.mark.parametrize("order", ORDERS)
def test_key_ranges_zero_samples_is_one_range_over_everything(order):
    (r,) = key_ranges([], 8, 32, order)
    assert r.start is None and r.end is None and r.samples == ()
    assert r.contains(K("A", 1)) and r.contains(K("\U0010FFFF", "\U0010FFFF"))


@pytest.mark.parametrize("order", ORDERS)
def test_key_ranges_few_samples_is_one_range_keeping_samples(order):
    samples = [K("K", i) for i in range(1, 20)]
    (r,) = key_ranges(samples, shards=8, oversampling=32, order=order)
    assert r.start is None and r.end is None
    assert r.samples == tuple(samples)


@pytest.mark.parametrize("order", ORDERS)
def test_key_ranges_even_split(order):
    samples = [K("K", i) for i in range(1, 129)]  # 128 samples
    ranges = key_ranges(list(reversed(samples)), shards=4, oversampling=32, order=order)
    assert [r.start for r in ranges] == [None, K("K", 33), K("K", 65), K("K", 97)]
    assert [len(r.samples) for r in ranges] == [32, 31, 31, 31]
    _check_ranges(ranges, samples, order)


@pytest.mark.parametrize("order", ORDERS)
def test_key_ranges_random_keys_partition_the_key_space(order):
    rng = random.Random(20261127 + (order is StringOrder.UTF16))
    for trial in range(25):
        universe = random_keys(rng, rng.randint(30, 160))
        samples = rng.sample(universe, rng.randint(0, len(universe)))
        shards, over = rng.randint(1, 12), rng.randint(1, 6)
        ranges = key_ranges(samples, shards, over, order)
        assert len(ranges) == (len(quantile_cuts(sorted_paths(samples, order),
                                                 range_count(len(samples), shards, over)))
                               + 1 if samples else 1)
        assert len(ranges) <= range_count(len(samples), shards, over)
        _check_ranges(ranges, samples, order)
        for key in universe:
            holders = [i for i, r in enumerate(ranges) if r.contains(key)]
            assert len(holders) == 1, (trial, format_path(key), holders)
        # Containment agrees with the sort order: range i holds exactly the keys between
        # its bounds.
        ordered = sorted_paths(universe, order)
        owners = [next(i for i, r in enumerate(ranges) if r.contains(k)) for k in ordered]
        assert owners == sorted(owners)


@pytest.mark.parametrize("order", ORDERS)
def test_key_ranges_with_bounds(order):
    rng = random.Random(99)
    universe = random_keys(rng, 120)
    ordered = sorted_paths(universe, order)
    start, end = ordered[10], ordered[100]
    samples = ordered[10:100]
    ranges = key_ranges(samples, 3, 10, order, start=start, end=end)
    assert len(ranges) == 3
    _check_ranges(ranges, samples, order, start=start, end=end)
    for k in ordered:
        inside = sort_key(start, order) <= sort_key(k, order) < sort_key(end, order)
        assert sum(r.contains(k) for r in ranges) == (1 if inside else 0)


def test_key_ranges_respect_the_string_order():
    """The cut between a non-BMP name and a U+E000 name is placed differently per order."""
    samples = [K("K", "\U0001F600"), K("K", "\ue000"), K("K", "a"), K("K", "b")]
    r8 = key_ranges(samples, 2, 2, StringOrder.UTF8)
    r16 = key_ranges(samples, 2, 2, StringOrder.UTF16)
    assert r8[1].start == K("K", "\ue000")  # UTF-8: a, b, \ue000, 😀
    assert r16[1].start == K("K", "\U0001F600")  # UTF-16: a, b, 😀, \ue000
    assert r8[1].contains(K("K", "\U0001F600")) and not r16[0].contains(K("K", "\ue000"))


# --------------------------------------------------------------------------- KeyRange


def test_key_range_bounds_and_emptiness():
    r = KeyRange(K("K", 5), K("K", 10))
    assert r.contains(K("K", 5)) and not r.contains(K("K", 10)) and r.contains(K("K", 9, "C", 1))
    assert not r.contains(K("K", 4)) and not r.contains(K("K", 4, "C", 1))
    assert not r.is_empty()
    assert KeyRange(K("K", 5), K("K", 5)).is_empty()
    assert not KeyRange(K("K", 5), K("K", 5), end_inclusive=True).is_empty()
    assert KeyRange(K("K", 5), K("K", 5), start_inclusive=False, end_inclusive=True).is_empty()
    assert KeyRange(K("K", 6), K("K", 5)).is_empty()
    assert not KeyRange(None, K("K", 1)).is_empty() and not KeyRange(K("K", 1), None).is_empty()
    assert r.describe() == "[K(5), K(10))"
    assert KeyRange(K("K", 5), None, start_inclusive=False).describe() == "(K(5), -)"


def test_choose_sample():
    c = tuple(K("K", i) for i in range(1, 8))  # 7 candidates, 8 gaps
    assert choose_sample((), 0.5) is None
    assert choose_sample(c, 0.5) == K("K", 4)
    assert choose_sample(c, 0.01) == K("K", 1)
    assert choose_sample(c, 1.0) == K("K", 7)
    assert choose_sample(c, 0.25) == K("K", 2)


# --------------------------------------------------------------------------- KeyRangeTracker


def _range(n_samples=9, order=StringOrder.UTF8, start=None, end=None):
    samples = tuple(K("K", 10 * i) for i in range(1, n_samples + 1))
    return KeyRange(start=start, end=end, samples=samples, order=order)


def test_tracker_claims_must_increase():
    t = KeyRangeTracker(_range())
    assert t.try_claim(K("K", 5))
    with pytest.raises(ValueError, match="increasing"):
        t.try_claim(K("K", 5))
    with pytest.raises(ValueError, match="increasing"):
        t.try_claim(K("K", 4))
    with pytest.raises(ValueError):
        t.try_claim(K("A", 99))  # kind A sorts before kind K
    assert t.try_claim(K("K", 5, "Child", 1))  # a descendant comes after its ancestor
    assert t.last_claimed == K("K", 5, "Child", 1)


def test_tracker_rejects_a_claim_before_the_start():
    t = KeyRangeTracker(KeyRange(start=K("K", 10), end=K("K", 20)))
    with pytest.raises(ValueError, match="before"):
        t.try_claim(K("K", 9))
    t2 = KeyRangeTracker(KeyRange(start=K("K", 10), start_inclusive=False))
    with pytest.raises(ValueError):
        t2.try_claim(K("K", 10))
    assert t2.try_claim(K("K", 10, "C", 1))


@pytest.mark.parametrize("position", [K("K", 20), K("K", 21), K("L", 1)])
def test_tracker_claim_at_or_past_end_is_refused_and_finishes(position):
    t = KeyRangeTracker(KeyRange(start=K("K", 10), end=K("K", 20)))
    assert t.try_claim(K("K", 19))
    assert not t.try_claim(position)
    assert t.last_claimed == K("K", 19)
    t.check_done()
    assert t.try_split(0) is None and t.try_split(0.5) is None
    assert t.current_progress().remaining_work == 0


def test_tracker_claim_at_inclusive_end_is_accepted():
    t = KeyRangeTracker(KeyRange(start=K("K", 10), end=K("K", 20), end_inclusive=True))
    assert t.try_claim(K("K", 20))
    t.check_done()  # nothing can follow the inclusive end
    assert not t.try_claim(K("K", 20, "C", 1))


def test_tracker_check_done_raises_when_work_is_left():
    t = KeyRangeTracker(_range())
    with pytest.raises(ValueError, match="not fully read"):
        t.check_done()
    t.try_claim(K("K", 15))
    with pytest.raises(ValueError, match="not fully read"):
        t.check_done()
    assert t.try_claim(END) is False
    t.check_done()
    assert t.try_split(0) is None and t.try_split(0.5) is None
    p = t.current_progress()
    assert p.remaining_work == 0 and p.completed_work > 0


def test_tracker_empty_range_is_done():
    t = KeyRangeTracker(KeyRange(K("K", 5), K("K", 5)))
    t.check_done()
    assert t.try_split(0.5) is None


def test_tracker_checkpoint_after_claims():
    original = _range(end=K("K", 1000))
    t = KeyRangeTracker(original)
    for i in (3, 10, 17, 25):
        assert t.try_claim(K("K", i))
    primary, residual = t.try_split(0)
    assert primary.start is None and primary.end == K("K", 25) and primary.end_inclusive
    assert residual.start == K("K", 25) and not residual.start_inclusive
    assert residual.end == K("K", 1000) and not residual.end_inclusive
    assert primary.samples == (K("K", 10), K("K", 20))
    assert residual.samples == tuple(K("K", 10 * i) for i in range(3, 10))
    assert t.current_restriction() == primary
    t.check_done()  # the primary is complete after the checkpoint
    assert not t.try_claim(K("K", 26))
    assert residual.contains(K("K", 25, "Child", 1)) and not residual.contains(K("K", 25))
    # The residual is read by a fresh tracker from just after the checkpoint.
    t2 = KeyRangeTracker(residual)
    with pytest.raises(ValueError):
        t2.try_claim(K("K", 25))
    assert t2.try_claim(K("K", 26))


def test_tracker_checkpoint_before_any_claim():
    t = KeyRangeTracker(_range())  # open start: cannot be made empty
    assert t.try_split(0) is None
    rng = _range(start=K("K", 1), end=K("K", 500))
    t = KeyRangeTracker(rng)
    primary, residual = t.try_split(0)
    assert residual == rng
    assert primary.is_empty()
    t.check_done()


def test_tracker_fraction_split_at_a_sample_after_the_last_claim():
    original = _range(end=K("K", 1000))  # samples K(10) .. K(90)
    t = KeyRangeTracker(original)
    assert t.try_claim(K("K", 5)) and t.try_claim(K("K", 31))
    primary, residual = t.try_split(0.5)
    # Candidates are K(40)..K(90): 7 gaps, the cut leaves about half of them below it.
    point = primary.end
    assert point == K("K", 70)
    assert sort_key(point) > sort_key(K("K", 31))
    assert point in original.samples
    assert not primary.end_inclusive and primary.start == original.start
    assert residual.start == point and residual.start_inclusive
    assert residual.end == original.end and residual.end_inclusive == original.end_inclusive
    assert primary.samples == tuple(K("K", 10 * i) for i in range(1, 7))
    assert residual.samples == tuple(K("K", 10 * i) for i in range(8, 10))
    assert t.current_restriction() == primary
    with pytest.raises(ValueError):
        t.check_done()  # the primary still has keys between K(31) and K(70)
    assert t.try_claim(K("K", 69))
    assert not t.try_claim(K("K", 70))
    t.check_done()


@pytest.mark.parametrize("order", ORDERS)
def test_tracker_fraction_split_partitions_random_keys(order):
    rng = random.Random(4242 + (order is StringOrder.UTF16))
    for trial in range(40):
        universe = sorted_paths(random_keys(rng, rng.randint(20, 80)), order)
        samples = tuple(s for s in universe if rng.random() < 0.4)
        original = KeyRange(samples=samples, order=order)
        t = KeyRangeTracker(original)
        claimed = []
        for k in universe[:rng.randint(0, len(universe) // 2)]:
            assert t.try_claim(k)
            claimed.append(k)
        fraction = rng.choice([0.01, 0.25, 0.5, 0.75, 0.99, 1.0])
        result = t.try_split(fraction)
        last = claimed[-1] if claimed else None
        after_last = [s for s in samples
                      if last is None or sort_key(s, order) > sort_key(last, order)]
        if not after_last:
            assert result is None, trial
            continue
        assert result is not None, trial
        primary, residual = result
        assert primary.end == residual.start and primary.end in after_last
        for k in universe:
            assert primary.contains(k) + residual.contains(k) == 1, (trial, format_path(k))
        for k in claimed:
            assert primary.contains(k)
        assert set(primary.samples) | set(residual.samples) | {primary.end} == set(samples)


def test_tracker_fraction_split_returns_none_without_samples_left():
    t = KeyRangeTracker(KeyRange())
    assert t.try_split(0.5) is None
    t = KeyRangeTracker(_range(n_samples=3))  # K(10), K(20), K(30)
    assert t.try_claim(K("K", 30))
    assert t.try_split(0.5) is None
    assert t.try_split(0) is not None  # a checkpoint is still possible


def test_tracker_progress():
    t = KeyRangeTracker(_range(n_samples=9))
    p = t.current_progress()
    assert p.completed_work == 0 and p.remaining_work == 10
    t.try_claim(K("K", 45))
    p = t.current_progress()
    assert p.completed_work == 4 and p.remaining_work == 6
    assert p.completed_work + p.remaining_work > 0
    t.try_claim(K("K", 95))
    p = t.current_progress()
    assert p.remaining_work > 0 and p.completed_work + p.remaining_work > 0
    t.try_claim(END)
    p = t.current_progress()
    assert p.remaining_work == 0 and p.completed_work >= 1
    t = KeyRangeTracker(KeyRange())
    t.try_claim(END)
    assert t.current_progress().remaining_work == 0 and t.current_progress().completed_work > 0


@pytest.mark.parametrize("order", ORDERS)
def test_simulated_reads_with_random_splits_read_every_key_once(order):
    """Readers claim keys in order while the 'runner' checkpoints and splits them at random:
    every key is claimed exactly once across all the restrictions produced."""
    rng = random.Random(777 + (order is StringOrder.UTF16))
    for trial in range(12):
        universe = sorted_paths(random_keys(rng, rng.randint(40, 200)), order)
        samples = [k for k in universe if rng.random() < 0.3]
        queue = deque(key_ranges(samples, rng.randint(1, 6), rng.randint(1, 5), order))
        claimed = []
        guard = 0
        while queue:
            guard += 1
            assert guard < 10_000
            r = queue.popleft()
            t = KeyRangeTracker(r)
            for k in [k for k in universe if r.contains(k)]:
                x = rng.random()
                if x < 0.1:
                    split = t.try_split(0)
                elif x < 0.25:
                    split = t.try_split(rng.random())
                else:
                    split = None
                if split is not None:
                    primary, residual = split
                    assert t.current_restriction() == primary
                    queue.append(residual)
                if not t.try_claim(k):
                    break
                claimed.append(k)
            else:
                t.try_claim(END)
            t.check_done()
        assert sorted(claimed, key=lambda k: sort_key(k, order)) == universe, trial
        assert len(claimed) == len(set(claimed))


def test_end_marker_survives_pickling():
    import pickle

    assert pickle.loads(pickle.dumps(END)) is END
