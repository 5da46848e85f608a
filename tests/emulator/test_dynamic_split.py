"""Dynamic splits on the FnApiRunner: forced, observed, and exactly-once.

The FnApiRunner asks a running bundle to split only when a test registers a
split manager for the stage (``fn_runner.split_manager``). The manager here
pauses the read of the first range inside the job's ``next()`` (a hook in
``tests.support.jobs_failing``; workers are threads of this process), then asks for
splits while that range is being read:

1. ``0.25 / num_elements``: the bundle holds several ranges, and the SDK
   measures the current element's progress as *output bytes since the element
   started* against the tracker's remaining work (``SdfProcessSizedElements.
   current_element_progress``), so after a few records the element looks ~98 %
   done and a fraction of the whole bundle lands on an element boundary: this
   request only hands the bundle's other ranges back to the runner (a channel
   split), leaving the range being read alone in the bundle.
2. ``0.5`` then ``0.3``: now the SDK passes the fraction unchanged to the
   tracker's ``try_split``, which cuts the unread part of the range.

The test proves that the splits happened (the tracker returned a non-empty
residual, the runner got a residual root), that each residual was read as a
restriction of its own (the first record read in it carries its description),
and that every entity was read exactly once.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import threading

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.transforms import environments
from google.cloud import datastore

import pipeline.graph.read as read_module
import tests.support.jobs_failing as probe_jobs
from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.keyorder import path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.valuerange import ValueRange
from pipeline.graph.build import build
from pipeline.graph.trackers import KeyRangeTracker, ValueRangeTracker
from tests.support import TEST_PROJECT
from tests.support.configs import run_config
from tests.support.runs import RunResult, key_tuple

#: The reading SDF's stage: the split manager matches "<name>/Process".
READ_STAGE = "Mapper/ReadRanges/ParDo(ReadRangeFn)"
DATASET = [NamespaceSpec("", 1500), NamespaceSpec("globex", 600)]
PAUSE_AT = 10  # the read of the first range pauses at its 10th entity
FRACTIONS = (0.5, 0.3)
WAIT = 60.0


@pytest.fixture(scope="module")
def seeded(datastore_emulator):
    """Seeded once for the module (both tests only read): {namespace: [flat paths]}."""
    datastore_emulator.reset()
    yield seed_dataset(TEST_PROJECT, DATASET)
    datastore_emulator.reset()


@dataclasses.dataclass
class SplitProbe:
    bundle_sizes: list = dataclasses.field(default_factory=list)
    engaged: bool = False
    paused: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)
    items: int = 0
    #: Set once ReadRanges reads (planning, a stage before it, is over by then).
    reading: bool = False
    #: (requested fraction, the runner's ProcessBundleSplitResponse or None)
    responses: list = dataclasses.field(default_factory=list)
    #: (fraction, restriction before, (primary, residual) or None): every tracker try_split
    tracker_splits: list = dataclasses.field(default_factory=list)

    def hook(self, ctx, item) -> None:
        """In the worker, for every item the job sees in the reading step (not those planning
        read first and handed over): pause once, mid-range."""
        if not self.reading:
            return
        self.items += 1
        if self.items == PAUSE_AT:
            self.paused.set()
            self.release.wait(WAIT)

    def manager(self, num_elements: int):
        """The split manager: called by the runner for every bundle of the stage."""
        self.bundle_sizes.append(num_elements)
        if self.engaged or num_elements == 0:
            return
        self.engaged = True
        yield  # let the runner send the bundle's elements
        try:
            if not self.paused.wait(WAIT):
                return
            self.responses.append(("isolate", (yield 0.25 / num_elements)))
            for f in FRACTIONS:
                self.responses.append((f, (yield f)))
        finally:
            self.release.set()

    def dynamic_splits(self) -> list:
        """Successful tracker splits at a fraction > 0 (not checkpoints)."""
        return [(f, before, result) for f, before, result in self.tracker_splits
                if f > 0 and result is not None]


def run_with_splits(monkeypatch, tmp_path, host: str, job: str, params: list) -> tuple:
    probe = SplitProbe()
    lock = threading.Lock()

    def recording(cls):
        original = cls.try_split

        def try_split(self, fraction):
            before = self.current_restriction()
            result = original(self, fraction)
            with lock:
                probe.tracker_splits.append((fraction, before, result))
            return result
        monkeypatch.setattr(cls, "try_split", try_split)

    recording(KeyRangeTracker)
    recording(ValueRangeTracker)
    read_slice = read_module.read_slice

    def reading_slice(*args, **kwargs):
        probe.reading = True
        yield from read_slice(*args, **kwargs)
    monkeypatch.setattr(read_module, "read_slice", reading_slice)
    monkeypatch.setattr(probe_jobs, "PROBE_HOOK", probe.hook)
    output = str(tmp_path)
    run = run_config(job, "--job_module", "tests.support.jobs_failing", "--shards", "2",
                     "--slice_entities", "50", "--output", output, *params, host=host)
    with fn_runner.split_manager(READ_STAGE, probe.manager):
        # gRPC, not in_memory: split requests must reach the worker while it processes a bundle.
        p = beam.Pipeline(runner=fn_runner.FnApiRunner(
            default_environment=environments.EmbeddedPythonGrpcEnvironment.default()))
        build(p, run)
        p.run().wait_until_finish()
    return probe, RunResult(0, "", "", output, job)


def check_splits_happened(probe: SplitProbe, restriction_type: type) -> list:
    assert probe.engaged and probe.paused.is_set(), (
        f"the split manager never ran for {READ_STAGE!r}, or the read never paused; "
        f"bundle sizes seen: {probe.bundle_sizes}")
    requested = dict((f, r) for f, r in probe.responses if f != "isolate")
    assert set(requested) == set(FRACTIONS), probe.responses
    for f in FRACTIONS:
        response = requested[f]
        assert response is not None, f"the split at {f} got no response (bundle already done?)"
        assert len(response.primary_roots) == 1 and len(response.residual_roots) == 1, (
            f"split at {f} was not a split of the range being read: {response}")
    splits = probe.dynamic_splits()
    for f in FRACTIONS:
        tried = [(sf, r is not None) for sf, _, r in probe.tracker_splits if sf > 0]
        assert any(abs(sf - f) < 1e-6 for sf, _, _ in splits), (
            f"the tracker never split at {f}; its splits at fractions > 0: {tried}")
    for _, before, (primary, residual) in splits:
        assert isinstance(residual, restriction_type)
        assert not residual.is_empty() and not primary.is_empty(), (before, primary, residual)
    return splits


def check_exactly_once(result: RunResult, expected: set) -> collections.Counter:
    seen = collections.Counter(key_tuple(r) for r in result.records)
    duplicates = {k: n for k, n in seen.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} keys read more than once, e.g. {list(duplicates)[:3]}"
    missing = expected - set(seen)
    assert not missing, f"{len(missing)} keys never read, e.g. {sorted(missing, key=repr)[:3]}"
    assert set(seen) == expected
    assert result.summary is not None and result.summary["totals"]["entities"] == len(expected)
    return seen


def test_key_range_dynamic_split_is_exactly_once(seeded, datastore_emulator, monkeypatch, tmp_path):
    probe, result = run_with_splits(monkeypatch, tmp_path, datastore_emulator.host,
                                    "probe_export_keys", [])
    splits = check_splits_happened(probe, KeyRange)
    expected = {(ns, tuple(flat)) for ns, paths in seeded.items() for flat in paths}
    check_exactly_once(result, expected)
    # Each residual was read on its own: its first key (a scatter sample, so an existing
    # key) was read in a slice that started with the residual as its whole restriction.
    by_path = collections.defaultdict(list)
    for r in result.records:
        by_path[path_from_flat(r["key"])].append(r)
    for f, _, (_, residual) in splits:
        assert residual.start is not None
        records = by_path[residual.start]
        assert len(records) == 1, (f, residual.describe(), records)
        assert records[0]["range"] == residual.describe(), (f, records[0], residual.describe())


def _created_in(lo: dt.datetime, hi: dt.datetime) -> dict:
    """{(namespace, flat path): created} for the Items with lo <= created < hi."""
    found = {}
    for spec in DATASET:
        c = datastore.Client(project=TEST_PROJECT, namespace=spec.name or None)
        for e in c.query(kind="Item").fetch():
            created = e["created"]
            if lo <= created < hi:
                found[(spec.name, tuple(e.key.flat_path))] = created
    return found


def test_value_range_dynamic_split_is_exactly_once(seeded, datastore_emulator, monkeypatch,
                                                   tmp_path):
    utc = dt.timezone.utc
    lo, hi = dt.datetime(2026, 11, 25, tzinfo=utc), dt.datetime(2026, 11, 27, tzinfo=utc)
    expected = _created_in(lo, hi)
    assert 1000 < len(expected) < 2100  # the filter selects a real subset
    probe, result = run_with_splits(monkeypatch, tmp_path, datastore_emulator.host,
                                    "probe_created_between",
                                    ["--params", "from=2026-11-25,to=2026-11-27"])
    splits = check_splits_happened(probe, ValueRange)
    check_exactly_once(result, set(expected))
    # Each residual was read on its own, and held only its own values.
    by_range = collections.defaultdict(list)
    for r in result.records:
        by_range[r["range"]].append(r)
    for f, _, (_, residual) in splits:
        records = by_range.get(residual.describe())
        assert records, f"no slice read the residual {residual.describe()} of the split at {f}"
        upper = residual.upper_value()
        for r in records:
            created = expected[key_tuple(r)]
            assert residual.query_lo <= created < upper, (residual.describe(), r, created)
