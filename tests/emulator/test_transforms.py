"""The mapper's public transforms (``pipeline.transforms``) in pipelines of a user's own, on the
FnApiRunner against the real emulator: the example pipeline of docs/transforms.md (``examples.own_pipeline``)
run as its command there says, and ``ReadEveryNamespace`` with keys only and a ``read_time``."""
from __future__ import annotations

import datetime as dt
import glob
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline import Query
from pipeline.core.clients import ClientCache
from pipeline.datastore import client as client_mod
from pipeline.transforms import NamespacedEntity, ReadEveryNamespace, RunJob
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS

ROOT = Path(__file__).resolve().parents[2]
SPEC = [NamespaceSpec("", 300), NamespaceSpec("acme", 180), NamespaceSpec("tiny", 4)]


@pytest.fixture
def seeded(emulator):
    return seed_dataset(TEST_PROJECT, SPEC)


def _categories() -> Counter:
    out = Counter()
    for ns in ("", "acme", "tiny"):
        for e in datastore.Client(project=TEST_PROJECT, namespace=ns or None).query(
                kind="Item").fetch():
            out[(ns or "(default)", e["category"])] += 1
    return out


def _lines(pattern: str) -> list:
    out = []
    for name in sorted(glob.glob(pattern)):
        with open(name, encoding="utf-8") as f:
            out += [line.rstrip("\n") for line in f if line.strip()]
    return out


def test_the_readme_s_own_pipeline_reads_every_namespace_and_runs_a_job(emulator, seeded,
                                                                          tmp_path):
    out = tmp_path / "own"
    proc = subprocess.run(
        [sys.executable, "-m", "examples.own_pipeline", "--project", TEST_PROJECT, "--output",
         str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **emulator.env()})
    assert proc.returncode == 0, proc.stderr[-4000:]
    counted = Counter()
    for line in _lines(str(out / "categories*.tsv")):
        ns, category, n = line.split("\t")
        counted[(ns, category)] += int(n)
    assert counted == _categories()
    keys = [json.loads(line) for line in _lines(str(out / "keys*.jsonl"))]
    got = Counter((k["namespace"], tuple(k["key"])) for k in keys)
    want = Counter((ns, tuple(p)) for ns, paths in seeded.items() for p in paths)
    assert got == want  # every entity once, from every namespace
    assert all(k["range"] for k in keys)


def test_keys_only_at_a_read_time_of_a_database_in_small_slices_and_a_job_over_them(
        emulator, seeded, monkeypatch):
    """Keys only, two of the namespaces, slices of 25 (checkpoints), ``read_time`` and
    ``database`` on every query and client. The emulator accepts both and ignores them
    (see test_read_time_and_database.py), so what is checked is that they reach every query
    and every client the read makes (the in-process runner: the DoFns run here)."""
    calls, made = [], []
    real_fetch, real_client = datastore.Query.fetch, client_mod.datastore.Client

    def fetch(q, **kw):
        calls.append((q.kind, kw.get("read_time")))
        return real_fetch(q, **kw)

    def client(*args, **kw):
        made.append(kw.get("database"))
        return real_client(*args, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", fetch)
    monkeypatch.setattr(client_mod.datastore, "Client", client)
    monkeypatch.setattr(client_mod, "_CLIENTS", ClientCache())
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    want = [(ns, tuple(p)) for ns, paths in seeded.items() if ns in ("", "acme") for p in paths]
    p = beam.Pipeline(options=PipelineOptions(IN_PROCESS))
    read = p | ReadEveryNamespace(Query(kind="Item", namespaces=["", "acme"]),
                                  project=TEST_PROJECT, read_time=at, database="tenant-db",
                                  shards=3, slice_entities=25)
    assert_that(read | "Where" >> beam.Map(
        lambda e: (e.namespace, tuple(e.key.flat_path), e.kind, e.entity is None,
                   isinstance(e, NamespacedEntity), e.range_id.startswith(e.namespace
                                                                          or "__default__"))),
        equal_to([(ns, path, "Item", True, True, True) for ns, path in want]),
        label="Elements")
    counted = read | RunJob("count_keys")
    assert_that(counted, equal_to([]), label="NoRecords")  # count_keys only counts
    exported = read | "Export" >> RunJob("export_keys")
    assert_that(exported | beam.Map(lambda r: (r["namespace"], tuple(r["key"]))),
                equal_to(want), label="Exported")
    result = p.run()
    result.wait_until_finish()
    item_queries = [t for kind, t in calls if kind == "Item"]
    assert len(item_queries) >= 480 // 25, calls  # sampling, bounds, and many slices
    assert {t for _, t in calls} == {at}
    assert made and set(made) == {"tenant-db"}
    keys = result.metrics().query(MetricsFilter().with_namespace("datastore_mapper.count_keys"))
    assert {c.key.metric.name: c.committed for c in keys["counters"]}["keys"] == len(want)


def test_a_job_that_reads_entities_refuses_a_keys_only_read(emulator, seeded):
    with pytest.raises(Exception, match="reads whole entities"):
        with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as p:
            (p | ReadEveryNamespace(Query(kind="Item", namespaces=["tiny"]),
                                    project=TEST_PROJECT)
             | RunJob("count_by_property"))
