"""Unit tests (no emulator): where a slice's narrow queries end, and the sample density."""
from __future__ import annotations

import random

import pytest

from pipeline.core.keyorder import StringOrder, sorted_paths
from pipeline.core.keyrange import KeyRange
from pipeline.core.narrowing import DEFAULT_STEP, SampleDensity, query_end

ORDERS = [StringOrder.UTF8, StringOrder.UTF16]


def k(i):
    return (("Item", i),)


SAMPLES = tuple(k(i) for i in (10, 20, 30, 40, 50))


def test_query_end_counts_samples_from_an_open_start():
    rng = KeyRange(samples=SAMPLES)
    assert query_end(rng, 1) == k(10)
    assert query_end(rng, 3) == k(30)
    assert query_end(rng, 5) == k(50)


def test_query_end_is_none_when_fewer_samples_are_left_than_the_step():
    rng = KeyRange(start=k(5), end=k(60), samples=SAMPLES)
    assert query_end(rng, 6) is None
    assert query_end(KeyRange(), 1) is None  # no samples: the query runs to the range's end
    assert query_end(rng, 0) is None


@pytest.mark.parametrize("inclusive", [True, False])
def test_query_end_counts_only_samples_strictly_after_the_start(inclusive):
    """A sample at the start would make an empty query [s, s) that never moves on."""
    rng = KeyRange(start=k(20), start_inclusive=inclusive, end=k(60), samples=SAMPLES)
    assert query_end(rng, 1) == k(30)
    assert query_end(rng, 3) == k(50)
    assert query_end(rng, 4) is None
    # A start between samples (the last claimed key).
    rng = KeyRange(start=k(25), start_inclusive=False, end=k(60), samples=SAMPLES)
    assert query_end(rng, 1) == k(30)


def test_query_end_never_past_the_range_end():
    """Samples the range no longer holds (its end moved by a split) are not used."""
    rng = KeyRange(start=k(5), end=k(30), samples=SAMPLES)  # stale samples 30.. beyond the end
    assert query_end(rng, 2) == k(20)
    assert query_end(rng, 3) is None


@pytest.mark.parametrize("order", ORDERS)
def test_query_end_steps_partition_a_range_and_always_advance(order):
    """Following query_end from the start to None visits the samples in order, step by step,
    each query non-empty in key space: a reader never loops on one query."""
    r = random.Random(5 + (order is StringOrder.UTF16))
    for _ in range(50):
        keys = sorted_paths({(("Item", r.choice([r.randint(1, 500), f"n{r.randint(1, 500)}"])),)
                             for _ in range(r.randint(0, 40))}, order)
        rng = KeyRange(samples=tuple(keys), order=order)
        step = r.randint(1, 5)
        ends, cur = [], rng
        while (end := query_end(cur, step)) is not None:
            assert cur.start is None or cur.contains(end) and end != cur.start
            ends.append(end)
            cur = KeyRange(start=end, start_inclusive=True, samples=rng.samples, order=order)
        assert ends == keys[step - 1::step][:len(keys) // step]


def test_density_default_step_until_measured():
    d = SampleDensity()
    assert d.per_gap is None and d.step(1000) == DEFAULT_STEP
    d.observe(5, 0)  # no gaps: nothing learnt
    assert d.step(1000) == DEFAULT_STEP


def test_density_turns_a_target_into_samples():
    d = SampleDensity()
    d.observe(400, 4)  # 100 entities per gap
    assert d.per_gap == 100 and d.step(1000) == 10 and d.step(30) == 1
    d.observe(1200, 4)  # running mean: 1600 / 8 = 200 per gap
    assert d.step(1000) == 5


def test_density_of_empty_gaps_strides_faster():
    d = SampleDensity()
    d.observe(0, 4)
    assert d.step(1000) > DEFAULT_STEP


def test_a_new_unit_starts_from_what_the_worker_learnt_over_the_others():
    from pipeline.core.narrowing import DEFAULT_STEP, SampleDensity
    worker = SampleDensity()
    first = SampleDensity(prior=worker)
    assert first.step(1000) == DEFAULT_STEP  # nothing known yet
    first.observe(entities=40, gaps=20)  # 2 entities per gap
    second = SampleDensity(prior=worker)
    assert second.per_gap == 2 and second.step(1000) == 500  # one query for a small unit
    second.observe(entities=100, gaps=10)  # its own measure wins once it has one
    assert second.per_gap == 10 and worker.per_gap == 140 / 30
