"""Lifecycle hooks, end to end against the emulator (docs/hooks.md).

The test job (``tests/support/jobs_hooks.py``) appends one JSON line per hook to a file: the file's
order is the order in which the hooks ran. On the FnApiRunner,
which retries nothing, each hook fires exactly as often as docs/hooks.md says, in its order, with
counters equal to counts made here from the seeded data.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.api.hooks import HOOKS
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

SPEC = [NamespaceSpec("", 400), NamespaceSpec("acme", 150), NamespaceSpec("small", 20)]
SENTINEL = ("HooksSentinel", "here")
JOB = "record_hooks"
# Small slices: the ranges of the bigger namespaces are read in several slices (checkpoints).
SMALL = ["--job_module", "tests.support.jobs_hooks", "--shards", "4", "--slice_entities", "50"]


def label(ns: str) -> str:
    return ns or "__default__"


def _seed() -> dict:
    items = seed_dataset(TEST_PROJECT, SPEC)
    c = datastore.Client(project=TEST_PROJECT)
    c.put(datastore.Entity(c.key(*SENTINEL)))
    return items


def _intact() -> bool:
    c = datastore.Client(project=TEST_PROJECT)
    return c.get(c.key(*SENTINEL)) is not None


@pytest.fixture(scope="module")
def dataset(datastore_emulator) -> dict:
    """namespace -> flat paths of its Items; seeded once for the module."""
    datastore_emulator.reset()
    return _seed()


@pytest.fixture
def seeded(dataset, datastore_emulator) -> dict:
    """The dataset, seeded again (deterministically) if another test reset the emulator."""
    if not _intact():
        datastore_emulator.reset()
        _seed()
    return dataset


def run_hooks(tmp_path, args=(), runner=IN_PROCESS, params=""):
    events = tmp_path / "events.jsonl"
    extra = f",{params}" if params else ""
    result = run_mapper(JOB, [*SMALL, "--params", f"events={events}{extra}", *args],
                        output=str(tmp_path / "out"), runner=runner)
    lines = events.read_text(encoding="utf-8").splitlines() if events.exists() else []
    return result, [json.loads(line) for line in lines]


def assert_ok(result) -> None:
    assert result.code == 0, (f"exited {result.code}\nstderr:\n{result.stderr[-6000:]}\n"
                              f"stdout:\n{result.stdout[-2000:]}")
    assert result.summary is not None


def of(events, event: str) -> list:
    return [e for e in events if e["event"] == event]


def expected_ranges(summary) -> set:
    return {(ns if ns != "__default__" else "", f"{ns}#{i}")
            for ns, n in summary["namespaces"].items() for i in range(n["ranges"])}


def assert_counts(events, summary, namespaces: set) -> None:
    """Each hook fired exactly as often as docs/hooks.md says."""
    counts = Counter(e["event"] for e in events)
    assert counts["job_started"] == 1 and counts["job_completed"] == 1, counts
    for ev in ("namespace_started", "namespace_completed"):
        got = Counter(e["namespace"] for e in of(events, ev))
        assert got == Counter(namespaces), (ev, got)
    ranges = expected_ranges(summary)
    for ev in ("range_started", "range_completed"):
        got = Counter((e["namespace"], e["range_id"]) for e in of(events, ev))
        assert got == Counter(ranges), (ev, got, ranges)
    assert counts["slice_started"] == counts["slice_completed"] == summary["totals"]["slices"], (
        counts, summary["totals"]["slices"])
    assert set(counts) <= set(HOOKS)


def independent_counts(dataset) -> dict:
    """namespace -> (entities, integer ids, names), from the seeded keys."""
    return {ns: (len(paths), sum(isinstance(p[-1], int) for p in paths),
                 sum(isinstance(p[-1], str) for p in paths))
            for ns, paths in dataset.items()}


def test_hooks_fire_once_each_in_order_with_rolled_up_counters(seeded, tmp_path):
    result, events = run_hooks(tmp_path)
    assert_ok(result)
    summary = result.summary
    want = independent_counts(seeded)
    assert_counts(events, summary, set(want))
    pos = {id(e): i for i, e in enumerate(events)}

    # Every event knows the job and the run's parameters.
    assert {e["job"] for e in events} == {JOB}
    assert all(e["params"]["events"] == str(tmp_path / "events.jsonl") for e in events)

    # job_started first, job_completed last.
    assert events[0]["event"] == "job_started" and events[-1]["event"] == "job_completed"

    slices_by_range = defaultdict(list)
    for e in events:
        if e["event"].startswith("slice_"):
            slices_by_range[(e["namespace"], e["range_id"])].append(e)
    ranges_by_ns = defaultdict(list)
    for e in of(events, "range_completed"):
        ranges_by_ns[e["namespace"]].append(e)

    # Ranges: started before their first slice, completed after their last one, with the
    # sum of their slices, which equals the summary's entities of that range and its records.
    records_per_range = Counter(r["range"] for r in result.records)
    for started in of(events, "range_started"):
        key = (started["namespace"], started["range_id"])
        slices = slices_by_range[key]
        assert slices and slices[0]["event"] == "slice_started", key
        assert pos[id(started)] < pos[id(slices[0])], key
        assert started["range"], key
        done = [e for e in of(events, "range_completed")
                if (e["namespace"], e["range_id"]) == key][0]
        assert pos[id(done)] > pos[id(slices[-1])], key
        completed = [s for s in slices if s["event"] == "slice_completed"]
        assert done["slices"] == len(completed) == len(slices) // 2, key
        assert done["entities"] == sum(s["entities"] for s in completed), key
        assert done["counters"].get("keys", 0) == done["entities"], key
        assert done["records"] == records_per_range[key[1]] == done["entities"], key
        ns_label = label(key[0])
        assert done["entities"] == summary["namespaces"][ns_label]["range_entities"][key[1]], key
        # Slices alternate started/completed within a range (one worker, one slice at a time).
        assert [s["event"] for s in slices] == ["slice_started", "slice_completed"] * len(completed)
        assert all(s["entities"] <= 50 for s in completed), key
    # Real timing: a namespace's ranges all "start" when it is planned, before any is read;
    # the groupings wait for all reading, so every namespace_completed fires after the last
    # slice of the whole job. A range read whole while planned completes where it was read,
    # right after its slice; one ReadRanges read, after all reading.
    for ns in want:
        first_slice = min(pos[id(e)] for e in of(events, "slice_started") if e["namespace"] == ns)
        assert all(pos[id(e)] < first_slice for e in of(events, "range_started")
                   if e["namespace"] == ns), ns
    last_slice = max(pos[id(e)] for e in of(events, "slice_completed"))
    assert all(pos[id(e)] > last_slice for e in of(events, "namespace_completed"))
    whole = 0
    for done in of(events, "range_completed"):
        key = (done["namespace"], done["range_id"])
        if summary["namespaces"][label(key[0])]["samples"]:  # split, read on by ReadRanges
            assert pos[id(done)] > last_slice, key
        else:  # read whole while planned: completed right after its one slice
            assert pos[id(done)] == pos[id(slices_by_range[key][-1])] + 1, key
            whole += 1
    assert 0 < whole < len(of(events, "range_completed"))  # both kinds of range were seen
    # Small slices really cut ranges into several pieces.
    assert max(len(v) // 2 for v in slices_by_range.values()) >= 3

    # Namespaces: started before their ranges, completed after all of them, with totals
    # equal to the seeded counts.
    for ns, (n, ids, names) in want.items():
        started = [e for e in of(events, "namespace_started") if e["namespace"] == ns][0]
        done = [e for e in of(events, "namespace_completed") if e["namespace"] == ns][0]
        its_ranges = [e for e in events if e["event"].startswith("range_") and e["namespace"] == ns]
        assert all(pos[id(started)] < pos[id(r)] for r in its_ranges), ns
        assert all(pos[id(done)] > pos[id(r)] for r in its_ranges), ns
        assert started["ranges"] == done["ranges"] == summary["namespaces"][label(ns)]["ranges"]
        assert started["entities"] == 0 and started["counters"] == {}
        assert done["entities"] == n, (ns, done)
        assert done["counters"] == {"keys": n, "ids": ids, "names": names}, (ns, done)
        assert done["entities"] == sum(r["entities"] for r in ranges_by_ns[ns])
        # The namespace's file, complete when the hook runs (NamespaceCompleted consumes it).
        assert done["output"] == os.path.join(str(tmp_path / "out"), JOB, "namespaces", f"{label(ns)}.jsonl")
        assert done["entities"] == done["records"] == len(result.files[label(ns)]), ns

    # The job: after every namespace completed, with the job's and each namespace's totals.
    done = events[-1]
    assert all(pos[id(e)] < pos[id(done)] for e in of(events, "namespace_completed"))
    total = sum(n for n, _, _ in want.values())
    assert done["entities"] == total == summary["totals"]["entities"]
    assert done["counters"] == {"keys": total, "ids": sum(w[1] for w in want.values()),
                                "names": sum(w[2] for w in want.values())}
    assert done["namespaces"] == {
        ns: {"entities": n, "counters": {"keys": n, "ids": ids, "names": names}}
        for ns, (n, ids, names) in want.items()}
    assert done["ranges"] == summary["totals"]["ranges"]
    assert done["slices"] == summary["totals"]["slices"]




def test_empty_kind_still_starts_and_completes_the_job(seeded, tmp_path):
    result, events = run_hooks(tmp_path, ["--allow_empty_kind=true"], params="kind=Nope")
    assert_ok(result)
    assert_counts(events, result.summary, set(seeded))
    # Each namespace: one empty range, read in one slice.
    assert all(n["ranges"] == 1 for n in result.summary["namespaces"].values())
    assert len(of(events, "slice_completed")) == len(seeded)
    assert events[0]["event"] == "job_started" and events[-1]["event"] == "job_completed"
    assert all(e["entities"] == 0 and e["counters"] == {} for e in events)


def test_no_namespace_at_all_still_starts_and_completes_the_job(emulator, tmp_path):
    # The emulator is empty (the `emulator` fixture reset it): nothing to list, nothing to read.
    result, events = run_hooks(tmp_path, ["--allow_empty_kind=true"])
    assert_ok(result)
    assert [e["event"] for e in events] == ["job_started", "job_completed"]
    assert events[-1]["namespaces"] == {} and events[-1]["entities"] == 0


@pytest.mark.parametrize("hook", ["job_started", "namespace_started", "slice_completed",
                                  "range_completed", "namespace_completed", "job_completed"])
def test_a_hook_that_raises_fails_the_run_naming_hook_and_job(seeded, tmp_path, hook):
    result, events = run_hooks(tmp_path, ["--namespaces", "small"], params=f"fail_in={hook}")
    assert result.code != 0, result.stdout[-2000:]
    assert f"job {JOB}: hook {hook} failed" in result.stderr, result.stderr[-3000:]
    assert f"hook {hook} was told to fail" in result.stderr, result.stderr[-3000:]
    assert [e["event"] for e in events].count(hook) == 1  # FnApiRunner: no retry
    assert "Traceback" not in result.stderr.split("error: ")[-1]


def test_log_lifecycle_logs_every_event_with_its_counters(seeded, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    result = run_mapper("log_lifecycle", ["--shards", "2", "--slice_entities", "100"],
                        output=str(tmp_path / "out"))
    assert_ok(result)
    lines = [r.getMessage() for r in caplog.records if r.name == "jobs.lifecycle"]
    summary = result.summary
    by_event = Counter(line.split()[3].rstrip(":") for line in lines)
    assert by_event["job_started"] == by_event["job_completed"] == 1, by_event
    assert by_event["namespace_started"] == by_event["namespace_completed"] == len(SPEC)
    assert by_event["range_started"] == by_event["range_completed"] == summary["totals"]["ranges"]
    assert by_event["slice_started"] == by_event["slice_completed"] == summary["totals"]["slices"]
    for spec in SPEC:
        assert any(f"namespace_completed [namespace {label(spec.name)}]: {spec.count} entities"
                   in line and f"keys={spec.count}" in line for line in lines), (spec, lines)
    total = sum(s.count for s in SPEC)
    assert f"keys={total}" in [line for line in lines if " job_completed" in line][0]
