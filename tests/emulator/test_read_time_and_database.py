"""--read_time and --database reach every query of the run.

The emulator accepts a read time but ignores it (measured: a query at a time
before a put still sees the put), so the snapshot itself cannot be observed
here. What is checked is the mapper's part: the time is resolved once, at
launch, and every query the run makes (sampling, bounds, every slice) carries
exactly that time; the summary reports it.
"""
from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.clients import ClientCache
from pipeline.datastore import client as client_mod
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper


@pytest.fixture
def fetch_calls(monkeypatch):
    """Every query's keyword arguments, whoever runs it (in-process runner: DoFns run here)."""
    calls = []
    real = datastore.Query.fetch

    def spy(q, **kw):
        calls.append((q.kind, kw))
        return real(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", spy)
    return calls


@pytest.mark.parametrize("job, args", [
    ("export_keys", ["--slice_entities", "40"]),
    ("created_between", ["--params", "from=2026-11-25,to=2026-11-27", "--slice_entities", "40"]),
])
def test_every_query_reads_at_the_launch_snapshot(emulator, fetch_calls, tmp_path, job, args):
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 300), NamespaceSpec("acme", 200)])
    before = dt.datetime.now(dt.timezone.utc)
    r = run_mapper(job, ["--read_time", "start", *args], output=str(tmp_path), runner=IN_PROCESS)
    assert r.code == 0, r.stderr
    item_calls = [kw for kind, kw in fetch_calls if kind == "Item"]
    # sampling per namespace, the launch checks, and several slices per namespace
    assert len(item_calls) > 10, fetch_calls
    assert any(kind == "__namespace__" for kind, _ in fetch_calls)
    times = {kw.get("read_time") for _, kw in fetch_calls}  # namespaces listed at it too
    assert len(times) == 1, times
    (t,) = times
    assert t is not None and before <= t <= dt.datetime.now(dt.timezone.utc)
    assert r.summary["read_time"] == t.isoformat()
    assert r.summary["totals"]["entities"] > 0


def test_without_read_time_queries_read_the_latest_data(emulator, fetch_calls, tmp_path):
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 50)])
    r = run_mapper("export_keys", output=str(tmp_path), runner=IN_PROCESS)
    assert r.code == 0, r.stderr
    assert all(kw.get("read_time") is None for _, kw in fetch_calls)
    assert r.summary["read_time"] is None and r.summary["totals"]["entities"] == 50


def test_database_reaches_every_client(emulator, monkeypatch, tmp_path):
    """--database: every Datastore client of the run (launcher, sampling, reading) is bound
    to the named database. The emulator ignores database ids, so only that is checked."""
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 60)])
    made = []
    real = client_mod.datastore.Client

    def client(*args, **kw):
        made.append(kw.get("database"))
        return real(*args, **kw)

    monkeypatch.setattr(client_mod.datastore, "Client", client)
    monkeypatch.setattr(client_mod, "_CLIENTS", ClientCache())
    r = run_mapper("export_keys", ["--database", "tenant-db"], output=str(tmp_path),
                   runner=IN_PROCESS)
    assert r.code == 0, r.stderr
    assert made and set(made) == {"tenant-db"}
    assert r.summary["totals"]["entities"] == 60
