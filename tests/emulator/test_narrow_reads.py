"""Narrow queries on the emulator: ``read_slice`` driven directly over key ranges, slice after slice, while
a simulated runner checkpoints and splits the ranges at random. Every query ends at a sample
a few gaps ahead (``pipeline.narrowing``); every entity must be handed over exactly once,
also when the samples that end queries were deleted after planning."""
from __future__ import annotations

import collections
import random

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.narrowing import SampleDensity
from pipeline.datastore.sampling import split_unit
from pipeline.graph.slices import SliceState, read_slice
from pipeline.graph.trackers import KeyRangeTracker
from tests.support import TEST_PROJECT
from tests.support.configs import run_config

DATASET = [NamespaceSpec("", 700), NamespaceSpec("acme", 250)]


def _read_config(host, slice_entities, query_entities):
    return run_config("count_keys", "--shards", "3", "--oversampling", "16",
                      "--slice_entities", str(slice_entities),
                      "--query_entities", str(query_entities), host=host).read


def _read_all(c, read, namespace, ranges, r: random.Random, split_odds: float):
    """Like the runner: each restriction read one slice at a time (a checkpoint after every
    slice that is not done), random checkpoints and splits while a slice is read."""
    queue = collections.deque(ranges)
    seen, slices, queries = [], 0, 0
    density = SampleDensity()
    while queue:
        tracker = KeyRangeTracker(queue.popleft())
        state = SliceState()
        slices += 1
        assert slices < 5000
        for entity in read_slice(c, read, namespace, "Item", tracker, state, density):
            seen.append(entity.key.flat_path)
            x = r.random()
            split = (tracker.try_split(0) if x < split_odds / 3 else
                     tracker.try_split(r.random()) if x < split_odds else None)
            if split is not None:
                queue.append(split[1])
        if not state.done:
            split = tracker.try_split(0)  # defer_remainder
            assert split is not None, "a slice that is not done must leave a residual"
            queue.append(split[1])
        tracker.check_done()
        queries += state.queries
    return seen, slices, queries, density


@pytest.mark.parametrize("slice_entities,query_entities,split_odds,delete_samples", [
    (2000, 1000, 0.0, False),   # the defaults: several narrow queries per slice
    (2000, 30, 0.0, False),     # a query per sample gap or so
    (37, 50, 0.05, False),      # small slices, random checkpoints and splits
    (500, 20, 0.05, True),      # query ends at keys that no longer exist
])
def test_narrow_queries_read_every_entity_once(emulator, slice_entities, query_entities,
                                               split_odds, delete_samples):
    seeded = seed_dataset(TEST_PROJECT, DATASET)
    read = _read_config(emulator.host, slice_entities, query_entities)
    c = datastore.Client(project=TEST_PROJECT)
    r = random.Random(slice_entities * 7 + query_entities)
    for ns in ("", "acme"):
        expected = set(seeded[ns])
        ranges, n_samples = split_unit(c, read, ns, "Item")
        assert n_samples > 16 and len(ranges) > 1
        if delete_samples:
            gone = [s for rng in ranges for s in rng.samples][::3]
            c.delete_multi([c.key(*[x for el in s for x in el], namespace=ns or None)
                            for s in gone])
            expected -= {tuple(x for el in s for x in el) for s in gone}
        seen, slices, queries, density = _read_all(c, read, ns, ranges, r, split_odds)
        counts = collections.Counter(seen)
        assert [p for p, n in counts.items() if n > 1] == [], "read twice"
        assert set(seen) == expected, f"missing {len(expected - set(seen))}"
        # The queries were narrow: many more of them than slices, and the density was learnt.
        assert queries > slices and density.gaps > 0


def test_a_slice_out_of_time_takes_the_page_read_ahead_and_wastes_no_read(emulator,
                                                                         monkeypatch):
    """A time budget so short that every slice ends at its first page end: the page already
    read ahead is handed over too (the next slice resumes after it), so every result Datastore
    returned was handed over exactly once and no page was thrown away."""
    seeded = seed_dataset(TEST_PROJECT, [NamespaceSpec("", 1500)])
    read = run_config("count_keys", "--shards", "2", "--oversampling", "4",
                      "--query_entities", "100000", "--slice_seconds", "0.001",
                      host=emulator.host).read
    c = datastore.Client(project=TEST_PROJECT)
    ranges, _ = split_unit(c, read, "", "Item")
    api = c._datastore_api
    real, returned = api.run_query, []

    def run_query(*a, **kw):
        response = real(*a, **kw)
        returned.append(len(response._pb.batch.entity_results))
        return response

    monkeypatch.setattr(api, "run_query", run_query)
    queue, seen, slices = collections.deque(ranges), [], 0
    while queue:
        tracker = KeyRangeTracker(queue.popleft())
        state = SliceState()
        slices += 1
        assert slices < 1000
        seen.extend(e.key.flat_path for e in read_slice(c, read, "", "Item", tracker, state))
        if not state.done:
            queue.append(tracker.try_split(0)[1])
        tracker.check_done()
    assert set(seen) == set(seeded[""]) and len(seen) == len(set(seen)) == 1500
    assert sum(returned) == len(seen), "a page read ahead was thrown away"
    # Each slice out of time read its page and the one ahead: two pages a slice, mostly.
    assert slices < len(returned)
