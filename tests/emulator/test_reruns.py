"""A failed, killed or interrupted run never blocks its re-run, a live run is never taken for
leftovers, and ``--output_mode=resume`` reads only what the failed run did not complete."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.jobs_faults import FAIL_JOB_COMPLETED_ENV, FAIL_NAMESPACE_ENV
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

ROOT = Path(__file__).resolve().parents[2]
DATASET = [NamespaceSpec("", 200), NamespaceSpec("acme", 150), NamespaceSpec("globex", 80),
           NamespaceSpec("zz", 40)]
JOBS = ["--job_module", "tests.support.jobs_faults"]
SMALL = ["--shards", "3", "--slice_entities", "25"]


@pytest.fixture(scope="module")
def seeded(datastore_emulator):
    datastore_emulator.reset()
    written = seed_dataset(TEST_PROJECT, DATASET)
    yield {(ns, tuple(p)) for ns, paths in written.items() for p in paths}
    datastore_emulator.reset()


def start_cli(args, env_extra=None) -> subprocess.Popen:
    """The CLI in a session of its own (so the test can kill its whole process group)."""
    env = {**os.environ, **(env_extra or {}), "PYTHONIOENCODING": "utf-8"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--project", TEST_PROJECT, *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def exactly_once(result, expected: set) -> None:
    assert result.code == 0, result.stderr[-3000:]
    got = collections.Counter(key_tuple(r) for r in result.records)
    assert all(n == 1 for n in got.values()), "a record written twice"
    assert set(got) == expected


def leftovers(job_dir: Path) -> list:
    return sorted(p.name for p in job_dir.iterdir()
                  if p.name.startswith((".shards-", ".dead_letters-", ".lease")))


def test_a_killed_run_does_not_block_its_re_run(seeded, tmp_path):
    out = tmp_path / "out"
    job_dir = out / "fail_some"
    # 100 ms per key: 47 s of reading at least, killed as soon as the live run was refused. (At
    # 20 ms, 9.4 s, it finished first under load: the in-process launch below is this pytest
    # process's first, and importing Beam took 8-10 s beside a CPU hog.)
    slow = start_cli(["--job", "fail_some", *JOBS, *SMALL, "--params", "sleep_ms=100",
                      "--output", str(out)])
    try:
        wait_for(lambda: (job_dir / ".lease.json").exists(), 60, "the run's lease")
        time.sleep(3)  # well into reading
        # Another run into the same output, while the first is alive: refused, naming it.
        live = run_mapper("fail_some", [*JOBS, *SMALL], output=str(out), runner=IN_PROCESS)
        assert live.code == 2 and "is being written by another run" in live.stderr, live.stderr
        assert f"pid {slow.pid}" in live.stderr and "still running on this host" in live.stderr
    finally:
        os.killpg(slow.pid, signal.SIGKILL)
        slow.wait(30)
    assert (job_dir / ".lease.json").exists()  # what kill -9 leaves behind
    again = run_mapper("fail_some", [*JOBS, *SMALL], output=str(out), runner=IN_PROCESS)
    exactly_once(again, seeded)
    assert leftovers(job_dir) == [] and again.summary["status"] == "succeeded"


def test_resume_reads_only_the_namespaces_the_failed_run_did_not_complete(seeded, tmp_path,
                                                                          monkeypatch):
    """The failed run (its namespace_completed hook fails for zz) completed some namespaces;
    the resumed run reads no entity of those, and its records and counters equal a clean run's."""
    clean = run_mapper("fail_late", [*JOBS, *SMALL, "--params", "tag=x"],
                       output=str(tmp_path / "clean"), runner=IN_PROCESS)
    exactly_once(clean, seeded)

    out = tmp_path / "out"
    monkeypatch.setenv(FAIL_NAMESPACE_ENV, "zz")
    failed = run_mapper("fail_late", [*JOBS, *SMALL, "--params", "tag=x"], output=str(out),
                        runner=IN_PROCESS)
    assert failed.code == 1 and "namespace 'zz' failed on purpose" in failed.stderr
    done = {p.stem for p in (out / "fail_late" / "manifests").glob("*.json")}
    # zz's failure waits for the other namespaces (one bundle in-process): all are complete.
    assert done == set(clean.summary["namespaces"]) - {"zz"}, done
    monkeypatch.delenv(FAIL_NAMESPACE_ENV)

    # The resumed run must repeat the failed run's parameters.
    other = run_mapper("fail_late", [*JOBS, *SMALL, "--params", "tag=y", "--output_mode=resume"],
                       output=str(out), runner=IN_PROCESS)
    assert other.code == 2 and "another params" in other.stderr, other.stderr

    queried = []
    real = datastore.Query.fetch

    def spy(q, **kw):
        if q.kind == "Item":
            queried.append(q.namespace or "__default__")
        return real(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", spy)
    resumed = run_mapper("fail_late", [*JOBS, *SMALL, "--params", "tag=x",
                                       "--output_mode=resume"], output=str(out),
                         runner=IN_PROCESS)
    exactly_once(resumed, seeded)
    assert queried and not (set(queried) & done), (set(queried), done)
    for field in ("entities", "records", "counters", "ranges", "errors"):
        assert resumed.summary["totals"][field] == clean.summary["totals"][field], field
    assert resumed.summary["namespaces"].keys() == clean.summary["namespaces"].keys()
    for ns, n in clean.summary["namespaces"].items():
        assert resumed.summary["namespaces"][ns]["entities"] == n["entities"], ns
        assert resumed.summary["namespaces"][ns]["counters"] == n["counters"], ns


def test_resume_after_a_failure_past_reading_reads_nothing_again(seeded, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv(FAIL_JOB_COMPLETED_ENV, "1")
    failed = run_mapper("fail_late", [*JOBS, *SMALL, "--job_file=true"], output=str(out),
                        runner=IN_PROCESS)
    assert failed.code == 1 and "job_completed failed on purpose" in failed.stderr
    monkeypatch.delenv(FAIL_JOB_COMPLETED_ENV)
    queried = []
    real = datastore.Query.fetch

    def spy(q, **kw):
        if q.kind == "Item":
            queried.append(q)
        return real(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", spy)
    resumed = run_mapper("fail_late", [*JOBS, *SMALL, "--job_file=true", "--output_mode=resume"],
                         output=str(out), runner=IN_PROCESS)
    exactly_once(resumed, seeded)
    assert queried == []  # every namespace was complete: nothing is read again
    with open(out / "fail_late" / "all.jsonl", encoding="utf-8") as f:
        union = [json.loads(line) for line in f]
    assert collections.Counter(key_tuple(r) for r in union) == collections.Counter(seeded)
    assert resumed.summary["totals"]["entities"] == len(seeded)
    # Resuming a complete output has nothing to do.
    again = run_mapper("fail_late", [*JOBS, *SMALL, "--output_mode=resume"], output=str(out),
                       runner=IN_PROCESS)
    assert again.code == 2 and "nothing to resume" in again.stderr




def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""
