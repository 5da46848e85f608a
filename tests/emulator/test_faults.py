"""A run survives Datastore faults shorter than its deadline, and a longer outage ends it with
one line: our own fault-injecting proxy (``tests/support/faultproxy.py``) between the pipeline and
the real emulator (connections reset or cut mid-stream, chunks delayed, connections refused or
stalled), and the emulator itself frozen (SIGSTOP) for longer than the client's own 60 s retry.

Every run's output must equal a clean run's: every key once, none lost, none twice. The faults
start once the run is reading (a job hook, in-process runner), so sampling and the launch checks
run clean and the faults land in the slice loop's queries.
"""
from __future__ import annotations

import collections
import os
import signal
import threading
import time

import pytest

import tests.support.jobs_failing as probe_jobs
from tests.support.faultproxy import Fault, FaultProxy
from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

DATASET = [NamespaceSpec("", 500), NamespaceSpec("acme", 300)]
SMALL = ["--shards", "4", "--slice_entities", "60", "--query_entities", "40"]


@pytest.fixture(scope="module")
def seeded(datastore_emulator):
    datastore_emulator.reset()
    written = seed_dataset(TEST_PROJECT, DATASET)
    yield {(ns, tuple(p)) for ns, paths in written.items() for p in paths}
    datastore_emulator.reset()


@pytest.fixture
def proxy(datastore_emulator, monkeypatch):
    """The proxy in front of the session emulator; the run (and its workers) talk to it."""
    host, port = datastore_emulator.host.rsplit(":", 1)
    with FaultProxy(host, int(port), seed=7) as p:
        monkeypatch.setenv("DATASTORE_EMULATOR_HOST", p.host)
        yield p


def start_faults_when_reading(monkeypatch, action, after: int = 40) -> list:
    """Call ``action`` once, in the worker, when the job has seen ``after`` keys."""
    seen = []

    def hook(ctx, item):
        seen.append(1)
        if len(seen) == after:
            action()

    monkeypatch.setattr(probe_jobs, "PROBE_HOOK", hook)
    return seen


def check_exactly_once(result, expected: set) -> None:
    assert result.code == 0, result.stderr[-3000:]
    seen = collections.Counter(key_tuple(r) for r in result.records)
    twice = [k for k, n in seen.items() if n > 1]
    assert not twice, f"{len(twice)} keys read twice, e.g. {twice[:3]}"
    assert set(seen) == expected, f"{len(expected - set(seen))} keys lost"
    assert result.summary["totals"]["entities"] == len(expected)


FAULTS = {
    # A connection reset mid-stream, on 5 % of the chunks, at most 6 times.
    "reset": Fault("reset", rate=0.05, limit=6, duration=60),
    # Connections closed cleanly after 20 kB, on 30 % of the chunks past that, at most 6 times.
    "cut": Fault("cut", rate=0.3, after_bytes=20_000, limit=6, duration=60),
    # Every other chunk delayed by 50-100 ms for 20 s.
    "delay": Fault("delay", rate=0.5, delay=0.05, jitter=0.05, duration=20),
    # Nothing forwarded for 4 s (a stall shorter than the per-call timeout).
    "stall": Fault("stall", rate=1.0, duration=4, limit=50),
    # New connections refused for 3 s, after the running one is reset.
    "refuse": Fault("refuse", rate=1.0, duration=3, limit=10_000),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_fault_shorter_than_the_deadline_costs_time_never_data(seeded, proxy, monkeypatch,
                                                                  tmp_path, kind):
    fault = FAULTS[kind]

    def inject():
        if kind == "refuse":  # the open connection goes first, then new ones are refused
            proxy.set_fault(Fault("reset", rate=1.0, limit=1, duration=2))
            proxy.wait_for_faults(1, timeout=5)
        proxy.set_fault(fault)

    start_faults_when_reading(monkeypatch, inject)
    result = run_mapper("probe_export_keys", [
        "--job_module", "tests.support.jobs_failing", *SMALL, "--emulator_host", proxy.host,
        "--datastore_deadline", "90"], output=str(tmp_path / "out"), runner=IN_PROCESS)
    check_exactly_once(result, seeded)
    stats = proxy.stats
    assert stats.faults.get(kind, 0) >= 1, stats
    if kind in ("reset", "cut", "refuse"):  # a dropped call is retried, and counted
        assert result.summary["totals"]["retries"] >= 1, result.summary["totals"]


def test_resets_with_two_worker_processes(seeded, proxy, tmp_path):
    """Workers are separate processes here (no hook): the faults run from the start, at a low
    rate, past the launch checks' short deadline."""
    proxy.set_fault(Fault("reset", rate=0.02, limit=8, duration=120))
    result = run_mapper("export_keys", [*SMALL, "--emulator_host", proxy.host],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    check_exactly_once(result, seeded)
    assert proxy.stats.faults.get("reset", 0) >= 1


def test_an_outage_longer_than_the_deadline_ends_the_run_with_one_line(seeded, proxy,
                                                                       monkeypatch, tmp_path):
    """Datastore gone (every connection reset) for longer than --datastore_deadline: the run
    ends, naming the call, the host and how long it was tried; no traceback."""
    # After 100 keys: past the 2 x 40 that planning reads first (--query_entities 40) and hands
    # to the job, so the outage starts while ranges are read.
    start_faults_when_reading(
        monkeypatch, lambda: proxy.set_fault(Fault("reset", rate=1.0, limit=100_000,
                                                   duration=120)), after=100)
    started = time.monotonic()
    result = run_mapper("probe_export_keys", [
        "--job_module", "tests.support.jobs_failing", *SMALL, "--emulator_host", proxy.host,
        "--datastore_deadline", "6"], output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert result.code == 1, result.stderr[-3000:]
    assert time.monotonic() - started < 60
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"the Datastore emulator at {proxy.host} kept failing for" in errors[0]
    assert "reading Item in namespace" in errors[0] and "--datastore_deadline" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(300)
def test_a_frozen_emulator_longer_than_a_call_s_timeout_costs_time_never_data(
        seeded, datastore_emulator, monkeypatch, tmp_path):
    """The emulator stopped (SIGSTOP) for 15 s mid-run, longer than a call's timeout
    (--datastore_call_timeout 6; 60 s by default, the same mechanism): a call that hears nothing
    is abandoned after 6 s and retried until the emulator is back."""
    pgid = datastore_emulator.pgid
    thawed = threading.Event()

    def freeze():
        os.killpg(pgid, signal.SIGSTOP)

        def thaw():
            time.sleep(15)
            os.killpg(pgid, signal.SIGCONT)
            thawed.set()

        threading.Thread(target=thaw, daemon=True).start()

    start_faults_when_reading(monkeypatch, freeze)
    try:
        result = run_mapper("probe_export_keys", [
            "--job_module", "tests.support.jobs_failing", *SMALL, "--datastore_deadline", "240",
            "--datastore_call_timeout", "6"],
            output=str(tmp_path / "out"), runner=IN_PROCESS)
    finally:
        if not thawed.wait(40):
            os.killpg(pgid, signal.SIGCONT)
    check_exactly_once(result, seeded)
    assert thawed.is_set()
    # 15 s frozen, 6 s per call: at least two calls abandoned before the one that is answered
    assert result.summary["totals"]["retries"] >= 2, result.summary["totals"]
