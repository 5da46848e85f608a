"""Entities the job cannot handle become dead letters, one line each of
``OUTPUT/JOB/dead_letter.jsonl``: with ``--max_errors`` large enough the run exports everything
else exactly once; past it (by default, 0) the run fails, after writing them down."""
from __future__ import annotations

import collections
import json

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.jobs_faults import fails
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

DATASET = [NamespaceSpec("", 300), NamespaceSpec("acme", 200), NamespaceSpec("tiny", 20)]
JOBS = ["--job_module", "tests.support.jobs_faults"]
SMALL = ["--shards", "4", "--slice_entities", "30"]
EVERY = 9


@pytest.fixture(scope="module")
def seeded(datastore_emulator):
    datastore_emulator.reset()
    written = seed_dataset(TEST_PROJECT, DATASET)
    yield {(ns, tuple(p)) for ns, paths in written.items() for p in paths}
    datastore_emulator.reset()


def letters(out, job: str) -> list:
    path = out / job / "dead_letter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def failing(seeded) -> set:
    return {k for k in seeded if fails(k[1], EVERY)}


@pytest.mark.parametrize("runner", [IN_PROCESS], ids=["one-worker"])
def test_within_max_errors_everything_else_is_exported_once(seeded, tmp_path, runner):
    bad = failing(seeded)
    assert 20 < len(bad) < len(seeded) // 3
    out = tmp_path / "out"
    r = run_mapper("fail_some", [*JOBS, *SMALL, "--params", f"every={EVERY}",
                                 "--max_errors", str(len(bad))], output=str(out), runner=runner)
    assert r.code == 0, r.stderr[-3000:]
    got = collections.Counter(key_tuple(rec) for rec in r.records)
    assert all(n == 1 for n in got.values()), "a record written twice"
    assert set(got) == seeded - bad
    dead = letters(out, "fail_some")
    keys = collections.Counter((d["namespace"], tuple(d["key"])) for d in dead)
    assert all(n == 1 for n in keys.values()), "a dead letter written twice"
    assert set(keys) == bad
    for d in dead:
        assert (d["source"], d["job"], d["kind"], d["error"]) == ("job", "fail_some", "Item",
                                                                  "ValueError")
        assert d["message"].startswith("cannot handle") and d["time"]
        assert d["traceback"] and "jobs_faults.py" in d["traceback"][-1]
    totals = r.summary["totals"]
    assert totals["errors"] == len(bad) and totals["entities"] == len(seeded)
    assert sum(n["errors"] for n in r.summary["namespaces"].values()) == len(bad)
    assert r.summary["dead_letters"] == {"count": len(bad),
                                         "file": str(out / "fail_some" / "dead_letter.jsonl")}
    assert r.summary["status"] == "succeeded"
    assert f"{len(bad)} dead letter(s) in" in r.stdout
    # No part files are left behind.
    assert not list((out / "fail_some").glob(".dead_letters-*"))


@pytest.mark.parametrize("runner", [IN_PROCESS], ids=["one-worker"])
def test_by_default_the_first_failure_fails_the_run_once_written_down(seeded, tmp_path, runner):
    out = tmp_path / "out"
    r = run_mapper("fail_some", [*JOBS, *SMALL, "--params", f"every={EVERY}"], output=str(out),
                   runner=runner)
    assert r.code == 1, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "job fail_some failed on entity" in errors[0]
    assert "more than --max_errors=0" in errors[0] and "dead_letter.jsonl" in errors[0]
    dead = letters(out, "fail_some")
    assert dead, "the failure was not written down"
    assert {(d["namespace"], tuple(d["key"])) for d in dead} <= failing(seeded)
    assert not (out / "fail_some" / "summary.json").exists()


def test_past_max_errors_the_run_fails_with_every_letter_written(seeded, tmp_path):
    out = tmp_path / "out"
    r = run_mapper("fail_some", [*JOBS, *SMALL, "--params", f"every={EVERY}", "--max_errors", "3"],
                   output=str(out), runner=IN_PROCESS)
    assert r.code == 1
    assert "4 entities failed, more than --max_errors=3" in r.stderr, r.stderr[-2000:]
    dead = letters(out, "fail_some")
    assert len(dead) >= 4 and {(d["namespace"], tuple(d["key"])) for d in dead} <= failing(seeded)


@pytest.mark.parametrize("bad", ["object", "complex", "nan", "circular", "mixed_set"])
def test_a_record_that_cannot_be_written_is_its_entitys_dead_letter(seeded, tmp_path, bad):
    """Records are checked, never guessed: no repr() text in the output, no worker crash."""
    out = tmp_path / "out"
    r = run_mapper("bad_records", [*JOBS, *SMALL, "--params", f"every=5,bad={bad}",
                                   "--max_errors", "1000"], output=str(out), runner=IN_PROCESS)
    assert r.code == 0, r.stderr[-3000:]
    broken = {k for k in seeded if fails(k[1], 5)}
    # A broken entity's records are dropped as a whole (its first, good record too).
    got = collections.Counter(key_tuple(rec) for rec in r.records)
    assert set(got) == seeded - broken and all(n == 1 for n in got.values())
    assert not any("object at 0x" in json.dumps(rec) for rec in r.records)
    dead = letters(out, "bad_records")
    assert {(d["namespace"], tuple(d["key"])) for d in dead} == broken
    for d in dead:
        assert d["source"] == "record" and d["index"] == 1 and d["error"] == "RecordError"
        assert d["record"] and len(d["record"]) <= 1100
    assert r.summary["totals"]["errors"] == len(broken)
