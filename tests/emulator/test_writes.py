"""Writing back to Datastore (issue 13), against the real emulator: migrations exactly once,
transactional vs blind under a concurrent writer, dry runs that write nothing, re-runs that are
no-ops, undo logs that restore the database exactly, deletes, free mutations, bad mutations."""
from __future__ import annotations

import glob
import json
import logging
import os
from collections import Counter

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.namespaces import is_reserved
from pipeline.datastore.entity_json import fingerprint
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

SPEC = [NamespaceSpec("", 240), NamespaceSpec("acme", 130), NamespaceSpec("tiny", 6)]
JOBS = ["--job_module", "tests.support.jobs_writes"]
RENAME = ["--params", "kind=Item,from=category,to=genre"]


def dump() -> dict:
    """The whole database: (namespace, flat key) -> the entity's exact content."""
    c = datastore.Client(project=TEST_PROJECT)
    q = c.query(kind="__namespace__")
    q.keys_only()
    out = {}
    for ns_key in q.fetch():
        ns = "" if ns_key.key.id_or_name in (1, "") else ns_key.key.id_or_name
        cn = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
        kq = cn.query(kind="__kind__")
        kq.keys_only()
        for kind in [k.key.name for k in kq.fetch() if not is_reserved(k.key.name)]:
            for e in cn.query(kind=kind).fetch():
                out[(ns, tuple(e.key.flat_path))] = fingerprint(e)
    return out


def items(ns: str = "") -> dict:
    c = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
    return {tuple(e.key.flat_path): e for e in c.query(kind="Item").fetch()}


def ok(r) -> None:
    assert r.code == 0, f"exit {r.code}\n{r.stderr[-4000:]}\n{r.stdout[-2000:]}"


def summary_of(out, job: str) -> dict:
    """The newest summary of a writing run: OUTPUT/JOB/runs/RUN/summary.json."""
    paths = sorted(glob.glob(os.path.join(str(out), job, "runs", "*", "summary.json")),
                   key=os.path.getmtime)
    assert paths, f"no runs/*/summary.json under {out}/{job}"
    with open(paths[-1], encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def seeded(emulator) -> dict:
    return seed_dataset(TEST_PROJECT, SPEC)


@pytest.mark.parametrize("args, runner", [
    pytest.param(["--shards", "1"], IN_PROCESS, id="1-shard-in-process"),
    pytest.param(["--shards", "8", "--slice_entities", "20"], IN_PROCESS,
                 id="8-shards-small-slices"),
])
def test_a_migration_changes_every_entity_exactly_once_and_a_rerun_is_a_no_op(
        seeded, tmp_path, args, runner):
    before_items = {ns: items(ns) for ns in seeded}
    out = tmp_path / "out"
    r = run_mapper("rename_property", [*RENAME, *args, "--writes=transactional"],
                   output=str(out), runner=runner)
    ok(r)
    s = summary_of(out, "rename_property")
    total = sum(len(v) for v in seeded.values())
    assert s["writes"]["counts"]["changed"] == total
    assert s["writes"]["counts"]["unchanged"] == 0 and s["writes"]["counts"]["failed"] == 0
    for ns, paths in seeded.items():
        now = items(ns)
        assert set(now) == {tuple(p) for p in paths}
        for key, e in now.items():
            old = before_items[ns][key]
            assert "category" not in e and e["genre"] == old["category"], key
            assert {k: v for k, v in e.items() if k != "genre"} == \
                {k: v for k, v in old.items() if k != "category"}
        assert s["namespaces"][ns or "__default__"]["counters"]["writes.changed"] == len(paths)
    # the undo log holds every entity, as it was
    undo = [json.loads(line) for p in glob.glob(f"{s['undo_log']}/**/*.jsonl", recursive=True)
            for line in open(p, encoding="utf-8")]
    assert len(undo) == total
    assert Counter(r["namespace"] for r in undo) == {ns: len(p) for ns, p in seeded.items()}
    # again: nothing changes, nothing is written
    snapshot = dump()
    r2 = run_mapper("rename_property", [*RENAME, *args, "--writes=transactional"],
                    output=str(out), runner=runner)
    ok(r2)
    s2 = summary_of(out, "rename_property")
    assert s2["run_id"] != s["run_id"]
    assert s2["writes"]["counts"]["changed"] == 0 and s2["writes"]["counts"]["unchanged"] == total
    assert dump() == snapshot
    assert not glob.glob(f"{s2['undo_log']}/**/*.jsonl", recursive=True)
    assert "nothing was written, so nothing needs undoing" in r2.stdout


def test_a_dry_run_writes_nothing_and_says_how_to_apply_it(seeded, tmp_path, caplog):
    snapshot = dump()
    out = tmp_path / "out"
    r = run_mapper("rename_property", [*RENAME, "--changes_sample", "3"], output=str(out),
                   runner=IN_PROCESS)
    ok(r)
    assert dump() == snapshot  # the whole database, byte for byte
    s = summary_of(out, "rename_property")
    assert s["writes"]["mode"] == "dry_run" and s["undo_log"] is None
    assert s["writes"]["counts"]["changed"] == sum(len(v) for v in seeded.values())
    assert "dry run: nothing was written" in r.stdout
    assert "--writes=transactional" in s["writes"]["apply"] and "--job rename_property" in \
        s["writes"]["apply"]
    with open(s["writes"]["changes"], encoding="utf-8") as f:
        samples = [json.loads(line) for line in f]
    assert Counter(x["namespace"] for x in samples) == {"": 3, "acme": 3, "tiny": 3}
    for x in samples:
        assert x["change"] == "changed" and set(x["diff"]) == {"category", "genre"}
        assert x["diff"]["category"][1] is None and x["diff"]["genre"][0] is None
        assert x["diff"]["category"][0] == x["diff"]["genre"][1]
    # A dry run's output does not make the real run refuse (its files live in runs/RUN/),
    # and the files beside them are named as that complete run's, not a dead run's.
    with caplog.at_level(logging.INFO, logger="pipeline"):
        ok(run_mapper("rename_property", [*RENAME, "--writes=transactional"], output=str(out),
                      runner=IN_PROCESS))
    assert dump() != snapshot
    assert f"of the previous run {s['run_id']}" in caplog.text
    assert "dead run" not in caplog.text


def test_the_undo_log_restores_the_database_exactly_and_reports_later_changes(seeded, tmp_path):
    snapshot = dump()
    out = tmp_path / "out"
    ok(run_mapper("rename_property", [*RENAME, "--writes=transactional"], output=str(out),
                  runner=IN_PROCESS))
    undo_log = summary_of(out, "rename_property")["undo_log"]
    migrated = dump()
    assert migrated != snapshot
    # Someone changes one migrated entity afterwards: the restore must not overwrite it.
    c = datastore.Client(project=TEST_PROJECT, namespace="acme")
    key, later = next(iter(items("acme").items()))
    later["genre"] = "changed later"
    c.put(later)
    # the dry run of the restore says what it would do, and writes nothing
    r = run_mapper("restore_entities", ["--params", f"from={undo_log}"], output=str(out))
    ok(r)
    s = summary_of(out, "restore_entities")
    total = sum(len(v) for v in seeded.values())
    assert s["writes"]["counts"]["changed"] == total - 1
    assert s["writes"]["counts"]["changed_since"] == 1
    r = run_mapper("restore_entities", ["--params", f"from={undo_log}",
                                        "--writes=transactional", "--max_errors", "5"],
                   output=str(out), runner=IN_PROCESS)
    ok(r)
    s = summary_of(out, "restore_entities")
    assert s["writes"]["counts"]["changed"] == total - 1
    assert s["writes"]["counts"]["changed_since"] == 1
    restored = dump()
    changed_later = ("acme", key)
    assert {k: v for k, v in restored.items() if k != changed_later} == \
        {k: v for k, v in snapshot.items() if k != changed_later}
    assert items("acme")[key]["genre"] == "changed later"  # not overwritten: reported
    with open(s["dead_letters"]["file"], encoding="utf-8") as f:
        (letter,) = [json.loads(line) for line in f]
    assert letter["error"] == "ChangedSince" and tuple(letter["key"]) == key
    # and the restore has its own undo log: undoing it gives the migrated database back
    ok(run_mapper("restore_entities", ["--params", f"from={s['undo_log']}",
                                       "--writes=transactional"], output=str(out)))
    assert dump() == {**migrated, changed_later: restored[changed_later]}


@pytest.mark.parametrize("runner", [pytest.param(IN_PROCESS, id="in-process")])
def test_transactional_keeps_a_concurrent_update_blind_loses_it(seeded, tmp_path, runner,
                                                                monkeypatch):
    monkeypatch.setenv("TEST_WRITES_PROJECT", TEST_PROJECT)
    out = tmp_path / "out"
    r = run_mapper("tag_concurrently", [*JOBS, "--params", "every=5", "--writes=transactional",
                                        "--shards", "4"], output=str(out), runner=runner)
    ok(r)
    s = summary_of(out, "tag_concurrently")
    assert s["writes"]["counts"]["conflicts"] > 0  # the concurrent writes did collide
    assert s["writes"]["counts"]["failed"] == 0
    interfered = 0
    for ns in seeded:
        for key, e in items(ns).items():
            log = e["log"]
            assert log.count("m") == 1, (key, log)
            if e["n"] % 5 == 0:
                assert sorted(log) == ["c", "m"], (key, log)  # both changes kept
                interfered += 1
            else:
                assert log == ["m"]
    assert interfered > 10


def test_blind_writes_lose_a_concurrent_update_as_documented(seeded, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_WRITES_PROJECT", TEST_PROJECT)
    out = tmp_path / "out"
    ok(run_mapper("tag_concurrently", [*JOBS, "--params", "every=5,when=read", "--writes=blind"],
                  output=str(out), runner=IN_PROCESS))
    lost = [key for ns in seeded for key, e in items(ns).items()
            if e["n"] % 5 == 0 and "c" not in e["log"]]
    assert lost, "blind writes were expected to overwrite the concurrent update"
    assert all(e["log"] == ["m"] for ns in seeded for e in items(ns).values())


def test_delete_entities_removes_only_what_matches_and_erases_a_tenant(emulator, tmp_path):
    seeded = seed_dataset(TEST_PROJECT, SPEC)
    c = datastore.Client(project=TEST_PROJECT, namespace="acme")
    c.put_multi([datastore.Entity(c.key("Other", i + 1)) for i in range(7)])
    books = {(ns, k) for ns in seeded for k, e in items(ns).items() if e["category"] == "books"}
    assert books
    snapshot = dump()
    out = tmp_path / "out"
    ok(run_mapper("delete_entities", ["--params", "kind=Item,property=category,value=books",
                                      "--writes=transactional"], output=str(out),
                  runner=IN_PROCESS))
    after = dump()
    assert set(snapshot) - set(after) == books
    assert all(after[k] == v for k, v in snapshot.items() if k not in books)
    # a tenant, every kind of it, in one run
    ok(run_mapper("delete_entities", ["--params", "kind=*", "--namespaces", "acme",
                                      "--writes=transactional"], output=str(out),
                  runner=IN_PROCESS))
    erased = dump()
    assert not [k for k in erased if k[0] == "acme"]
    assert {k: v for k, v in erased.items() if k[0] != "acme"} == \
        {k: v for k, v in after.items() if k[0] != "acme"}
    s = summary_of(out, "delete_entities")
    assert set(s["namespaces"]["acme"]["kinds"]) == {"Item", "Parent", "Other"}
    # and back
    ok(run_mapper("restore_entities", ["--params", f"from={s['undo_log']}",
                                       "--writes=transactional"], output=str(out)))
    assert dump() == after


def test_free_mutations_are_written_counted_and_deleted(seeded, tmp_path):
    out = tmp_path / "out"
    ok(run_mapper("index_items", [*JOBS, "--params", "into=index", "--namespaces",
                                  "__default__,acme", "--writes=blind"], output=str(out)))
    s = summary_of(out, "index_items")
    n = len(seeded[""]) + len(seeded["acme"])
    assert s["writes"]["counts"]["put"] == n
    assert s["writes"]["counts"]["outside_namespaces"] == n  # "index" is not read: named
    c = datastore.Client(project=TEST_PROJECT, namespace="index")
    assert len(list(c.query(kind="ItemIndex").fetch())) == n
    ok(run_mapper("index_items", [*JOBS, "--params", "into=index", "--namespaces",
                                  "__default__,acme", "--writes=blind"], output=str(out)))
    assert summary_of(out, "index_items")["writes"]["counts"]["unchanged"] == n
    ok(run_mapper("index_items", [*JOBS, "--params", "into=index,drop=true", "--namespaces",
                                  "__default__,acme", "--writes=blind"], output=str(out)))
    assert summary_of(out, "index_items")["writes"]["counts"]["deleted"] == n
    assert not list(c.query(kind="ItemIndex").fetch())


def test_puts_of_one_key_land_in_the_order_they_were_made(seeded, tmp_path):
    """Every Item puts the same entity, one commit each (``--write_batch 1``), while commits
    are in flight: the put that stays is the last one made, and each was counted."""
    from tests.support import jobs_writes
    out = tmp_path / "out"
    ok(run_mapper("put_last", [*JOBS, "--namespaces", "__default__", "--writes=blind",
                               "--write_batch", "1", "--slice_entities", "60"],
                  output=str(out), runner=IN_PROCESS))
    made = next(jobs_writes._SEQ) - 1
    last = datastore.Client(project=TEST_PROJECT).get(
        datastore.Client(project=TEST_PROJECT).key("Last", "last"))
    assert last["seen"] == made
    counts = summary_of(out, "put_last")["writes"]["counts"]
    assert counts["put"] + counts["changed"] == len(seeded[""])


def test_a_writing_jobs_records_are_not_replaced_unless_asked(seeded, tmp_path):
    out = tmp_path / "out"
    args = [*JOBS, "--params", "report=true", "--namespaces", "acme"]
    ok(run_mapper("index_items", args, output=str(out)))  # a dry run, with records
    records = out / "index_items" / "namespaces" / "acme.jsonl"
    first = records.read_bytes()
    assert first.count(b"\n") == len(seeded["acme"])
    r = run_mapper("index_items", [*args, "--writes=blind"], output=str(out))
    assert r.code == 2 and "holds the records of the previous run" in r.stderr, r.stderr
    assert "--output_mode=replace" in r.stderr and records.read_bytes() == first
    c = datastore.Client(project=TEST_PROJECT, namespace="acme")
    assert not list(c.query(kind="ItemIndex").fetch())  # refused: nothing written
    ok(run_mapper("index_items", [*args, "--writes=blind", "--output_mode=replace"],
                  output=str(out)))
    assert len(list(c.query(kind="ItemIndex").fetch())) == len(seeded["acme"])


def test_mutations_that_cannot_be_written_are_dead_letters_with_their_key(seeded, tmp_path):
    out = tmp_path / "out"
    n = sum(len(v) for v in seeded.values())
    r = run_mapper("bad_mutations", [*JOBS, "--writes=blind", "--max_errors", str(n)],
                   output=str(out))
    ok(r)
    s = summary_of(out, "bad_mutations")
    with open(s["dead_letters"]["file"], encoding="utf-8") as f:
        letters = [json.loads(line) for line in f]
    messages = Counter(letter["message"].split(":")[0].split(" (")[0][:40] for letter in letters)
    assert any("Put() holds a dict" in m for m in messages), messages
    assert any("is incomplete" in letter["message"] for letter in letters)
    assert any("Delete() holds a str" in letter["message"] for letter in letters)
    assert any("bytes; Datastore takes at most" in letter["message"] for letter in letters)
    assert all(letter["key"] for letter in letters)  # each names the entity
    good = [e for ns in seeded for e in
            datastore.Client(project=TEST_PROJECT, namespace=ns or None)
            .query(kind="Derived").fetch()]
    assert len(good) == s["writes"]["counts"]["put"] > 0
    assert all(e.key.name.startswith("good-") for e in good)
    assert len(letters) + len(good) == n


def test_a_migration_too_large_for_an_entity_is_a_dead_letter(seeded, tmp_path):
    out = tmp_path / "out"
    n = sum(len(v) for v in seeded.values())
    big = sum(1 for ns in seeded for e in items(ns).values() if e["n"] % 10 == 0)
    for mode in ("blind", "transactional"):
        r = run_mapper("inflate", [*JOBS, f"--writes={mode}", "--max_errors", str(n)],
                       output=str(out))
        ok(r)
        s = summary_of(out, "inflate")
        assert s["dead_letters"]["count"] == big, mode
    assert all("blob" not in e for ns in seeded for e in items(ns).values())


def test_batches_never_exceed_their_bounds(seeded, tmp_path, monkeypatch):
    """The emulator does not enforce Datastore's 500 mutations per commit: watch the calls
    (at the client's API object, where every commit goes)."""
    from google.cloud.datastore_v1.services.datastore.client import DatastoreClient
    from google.cloud.datastore_v1.types import datastore as ds
    commits = []
    real_commit = DatastoreClient.commit

    def root(m):
        key = m.upsert.key if m.HasField("upsert") else m.delete
        first = key.path[0]
        return (first.kind, first.id, first.name)

    def commit(self, request=None, **kw):
        pb = ds.CommitRequest.pb(request)
        roots = {root(m) for m in pb.mutations}
        commits.append((pb.mode == ds.CommitRequest.Mode.TRANSACTIONAL, len(pb.mutations),
                        len(roots)))
        return real_commit(self, request=request, **kw)

    monkeypatch.setattr(DatastoreClient, "commit", commit)
    out = tmp_path / "out"
    ok(run_mapper("rename_property", [*RENAME, "--writes=blind", "--write_batch", "7"],
                  output=str(out)))
    blind = [c for c in commits if not c[0]]
    assert blind and max(n for _, n, _ in blind) <= 7
    assert sum(n for _, n, _ in blind) == sum(len(v) for v in seeded.values())
    commits.clear()
    ok(run_mapper("rename_property", ["--params", "kind=Item,from=genre,to=category",
                                      "--writes=transactional", "--transaction_groups", "3"],
                  output=str(out)))
    txns = [c for c in commits if c[0]]
    assert txns and max(g for _, _, g in txns) <= 3


@pytest.mark.parametrize("args, fragment", [
    pytest.param(["--job", "export_keys", "--writes=transactional"],
                 "does not write to Datastore", id="writes-on-a-job-that-does-not-write"),
    pytest.param(["--job", "rename_property", *RENAME, "--dry_run=false"],
                 "--dry_run is Beam's", id="beams-dry-run"),
    pytest.param(["--job", "rename_property", *RENAME, "--writes=transactional"],
                 "its undo log (the way back) needs --output", id="real-writes-without-output"),
    pytest.param(["--job", "rename_property", *RENAME, "--writes=blind", "--read_time=start",
                  "--output", "{out}"], "--writes=blind with --read_time", id="blind-snapshot"),
    pytest.param(["--job", "migrate_keys_only", *JOBS, "--writes=transactional", "--output",
                  "{out}"], "its query must read them", id="migrate-keys-only"),
    pytest.param(["--job", "rename_property", "--params", "kind=Item,from=a,to=a"],
                 "nothing to rename", id="rename-to-itself"),
    pytest.param(["--job", "rename_property", *RENAME, "--writes=maybe"],
                 "argument --writes: invalid choice", id="bad-mode"),
    pytest.param(["--job", "rename_property", *RENAME, "--output_mode=resume", "--output",
                  "{out}"], "run it again instead", id="resume-a-migration"),
    pytest.param(["--job", "restore_entities", "--params", "from={out}/nothing",
                  "--output", "{out}"], "no undo log at", id="restore-from-nowhere"),
])
def test_bad_write_options_are_one_clear_line(seeded, tmp_path, args, fragment):
    snapshot = dump()
    argv = [a.replace("{out}", str(tmp_path / "o")) for a in args]
    r = run_mapper(argv[1], argv[2:])
    assert r.code == 2, (r.code, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert dump() == snapshot


def test_a_writing_job_without_writes_is_a_dry_run_and_says_so(seeded, tmp_path, caplog):
    snapshot = dump()
    r = run_mapper("remove_property", ["--params", "property=payload"])
    ok(r)
    assert dump() == snapshot
    assert "this is a dry run, nothing will be written" in caplog.text
    assert "dry run: nothing was written; it would have put 0, changed" in r.stdout


def test_undo_log_false_writes_without_one(seeded, tmp_path):
    ok(run_mapper("remove_property", ["--params", "property=payload", "--writes=blind",
                                      "--undo_log=false"]))
    assert all("payload" not in e for ns in seeded for e in items(ns).values())


def test_writes_use_the_database_and_lookups_ignore_the_read_time(seeded, tmp_path,
                                                                   monkeypatch):
    """The emulator ignores both: watch the calls. Queries read the snapshot; the writer's
    lookups in the transaction read the current data; commits go to the run's database. Each
    transaction is begun by its first lookup (no BeginTransaction call) and committed as the
    transaction that lookup began; the commit is sent from its pool's threads while the worker
    reads on."""
    import threading

    from google.cloud.datastore_v1.services.datastore.client import DatastoreClient
    from google.cloud.datastore_v1.types import datastore as ds
    lookups, commits, begun, begin_calls = [], [], set(), []
    real_lookup, real_commit = DatastoreClient.lookup, DatastoreClient.commit
    real_begin = DatastoreClient.begin_transaction

    def lookup(self, request=None, **kw):
        pb = ds.LookupRequest.pb(request)
        options = pb.read_options
        new = options.HasField("new_transaction")
        lookups.append((bool(options.transaction) or new, options.HasField("read_time"),
                        pb.database_id, threading.current_thread().name))
        answer = real_lookup(self, request=request, **kw)
        if new:
            begun.add(ds.LookupResponse.pb(answer).transaction)
        elif options.transaction:
            assert options.transaction in begun  # a later round of a transaction begun here
        return answer

    def commit(self, request=None, **kw):
        pb = ds.CommitRequest.pb(request)
        commits.append((pb.database_id, pb.transaction, threading.current_thread().name))
        return real_commit(self, request=request, **kw)

    def begin_transaction(self, *a, **kw):
        begin_calls.append(1)
        return real_begin(self, *a, **kw)

    monkeypatch.setattr(DatastoreClient, "lookup", lookup)
    monkeypatch.setattr(DatastoreClient, "commit", commit)
    monkeypatch.setattr(DatastoreClient, "begin_transaction", begin_transaction)
    out = tmp_path / "out"
    ok(run_mapper("rename_property", [*RENAME, "--writes=transactional", "--read_time=start",
                                      "--database", "tenant-db"], output=str(out)))
    assert lookups and all(in_txn and not rt and db == "tenant-db"
                           for in_txn, rt, db, _ in lookups)
    assert commits and {db for db, _, _ in commits} == {"tenant-db"}
    assert not begin_calls and all(txn and txn in begun for _, txn, _ in commits)
    assert len({txn for _, txn, _ in commits}) == len(commits)  # one commit per transaction
    assert all(thread.startswith("commit") for *_, thread in commits)


def test_a_migration_split_while_it_runs_changes_every_entity_once(emulator, monkeypatch,
                                                                    tmp_path):
    from pipeline.core.keyrange import KeyRange
    from tests.emulator.test_dynamic_split import check_splits_happened, run_with_splits
    seeded = seed_dataset(TEST_PROJECT, [NamespaceSpec("", 1500), NamespaceSpec("globex", 600)])
    probe, _ = run_with_splits(monkeypatch, tmp_path, emulator.host, "probe_rename",
                               ["--writes=transactional"])
    check_splits_happened(probe, KeyRange)
    s = summary_of(tmp_path, "probe_rename")
    total = sum(len(v) for v in seeded.values())
    # every entity handed to migrate once: a second application would count as unchanged
    assert s["writes"]["counts"]["changed"] == total
    assert s["writes"]["counts"]["unchanged"] == 0
    assert all("genre" in e and "category" not in e for ns in seeded for e in items(ns).values())


@pytest.fixture
def proxy(emulator, monkeypatch):
    from tests.support.faultproxy import FaultProxy
    host, port = emulator.host.rsplit(":", 1)
    with FaultProxy(host, int(port), seed=11) as p:
        monkeypatch.setenv("DATASTORE_EMULATOR_HOST", p.host)
        yield p


@pytest.mark.parametrize("mode", ["transactional", "blind"])
def test_faults_during_writes_lose_and_duplicate_nothing(seeded, proxy, tmp_path, mode):
    """Connections reset at a low rate from the start (commits included): every entity
    migrated exactly once, the deletes exactly the matching ones."""
    from tests.support.faultproxy import Fault
    before = {ns: items(ns) for ns in seeded}
    proxy.set_fault(Fault("reset", rate=0.03, limit=10, duration=240))
    out = tmp_path / "out"
    r = run_mapper("rename_property", [*RENAME, f"--writes={mode}", "--shards", "4",
                                       "--slice_entities", "40", "--emulator_host", proxy.host,
                                       "--datastore_deadline", "90"],
                   output=str(out), runner=IN_PROCESS)
    ok(r)
    assert proxy.stats.faults.get("reset", 0) >= 1
    total = sum(len(v) for v in seeded.values())
    s = summary_of(out, "rename_property")
    assert s["writes"]["counts"]["changed"] + s["writes"]["counts"]["unchanged"] >= total
    for ns in seeded:
        for key, e in items(ns).items():
            assert e["genre"] == before[ns][key]["category"] and "category" not in e
    books = {(ns, k) for ns in seeded for k, e in items(ns).items() if e["genre"] == "books"}
    snapshot = dump()
    ok(run_mapper("delete_entities", ["--params", "kind=Item,property=genre,value=books",
                                      f"--writes={mode}", "--emulator_host", proxy.host,
                                      "--datastore_deadline", "90", "--slice_entities", "40"],
                  output=str(out), runner=IN_PROCESS))
    after = dump()
    assert set(snapshot) - set(after) == books
    assert all(after[k] == v for k, v in snapshot.items() if k not in books)


def test_a_backup_of_every_kind_restores_the_database_exactly(emulator, tmp_path):
    import datetime as dt

    c = datastore.Client(project=TEST_PROJECT, namespace="t1")
    parent = datastore.Entity(c.key("Customer", "c1"))
    parent.update(name="Ada", tags=["a", "b"], score=1.5, joined=dt.datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc), raw=b"\x00\xff", gone=None)
    order = datastore.Entity(c.key("Customer", "c1", "Order", 7),
                             exclude_from_indexes=("note",))
    inner = datastore.Entity(c.key("Line", 1))
    inner.update(sku="x", n=2)
    order.update(note="long " * 50, total=12, line=inner, lines=[inner, inner])
    other = datastore.Entity(datastore.Client(project=TEST_PROJECT).key("Item", 5))
    other.update(category="books")
    c.put_multi([parent, order])
    datastore.Client(project=TEST_PROJECT).put(other)
    snapshot = dump()
    out = tmp_path / "out"
    ok(run_mapper("backup_entities", [], output=str(out)))
    backup = out / "backup_entities" / "namespaces"
    # Erase the tenant (its undo log would do too: the backup is the point here), change one
    # entity of the other namespace: restoring puts back what is missing and overwrites
    # nothing.
    ok(run_mapper("delete_entities", ["--params", "kind=*", "--namespaces", "t1",
                                      "--writes=transactional", "--undo_log=false"],
                  output=str(out)))
    assert not list(c.query(kind="Customer").fetch()) and not list(c.query(kind="Order").fetch())
    other["category"] = "music"
    datastore.Client(project=TEST_PROJECT).put(other)
    r = run_mapper("restore_entities", ["--params", f"from={backup}",
                                        "--writes=transactional", "--max_errors", "5"],
                   output=str(out))
    ok(r)
    s = summary_of(out, "restore_entities")
    assert s["writes"]["counts"]["put"] == 2 and s["writes"]["counts"]["changed_since"] == 1
    now = dump()
    changed = ("", ("Item", 5))
    assert now[changed] != snapshot[changed]  # not overwritten: reported
    assert {k: v for k, v in now.items() if k != changed} == \
        {k: v for k, v in snapshot.items() if k != changed}
    with open(s["dead_letters"] if isinstance(s["dead_letters"], str) else
              s["dead_letters"]["file"], encoding="utf-8") as f:
        letters = [json.loads(line) for line in f]
    assert [x["key"] for x in letters] == [["Item", 5]]
    assert letters[0]["error"] == "DiffersFromBackup"
    assert "differs from the backup" in letters[0]["message"]
    # Into another project: the keys are the copy's own.
    ok(run_mapper("restore_entities", ["--params", f"from={backup}", "--writes=transactional"],
                  output=str(tmp_path / "copy"), project="copy-project"))
    copy = datastore.Client(project="copy-project", namespace="t1")
    got = {tuple(e.key.flat_path): e for kind in ("Customer", "Order")
           for e in copy.query(kind=kind).fetch()}
    assert set(got) == {("Customer", "c1"), ("Customer", "c1", "Order", 7)}
    assert got[("Customer", "c1", "Order", 7)]["line"]["sku"] == "x"
    assert got[("Customer", "c1", "Order", 7)].exclude_from_indexes == {"note"}


# --- issue 22: a tenant erase ends by checking the tenant is empty; a restore keeps every
# dead letter -----------------------------------------------------------------------------------

def kindless(ns: str) -> list:
    """Every entity key of namespace ``ns``, any kind (Datastore's own __*__ left out)."""
    q = datastore.Client(project=TEST_PROJECT, namespace=ns or None).query()
    q.keys_only()
    return [tuple(e.key.flat_path) for e in q.fetch() if not is_reserved(e.key.kind)]


def test_a_tenant_erase_ends_saying_the_tenant_holds_nothing(seeded, tmp_path):
    c = datastore.Client(project=TEST_PROJECT, namespace="acme")
    hidden = datastore.Entity(c.key("__private", "p1"))  # a legal kind (not __*__)
    hidden["n"] = 1
    c.put(hidden)
    held = kindless("acme")
    assert ("__private", "p1") in held and len(held) > len(seeded["acme"])  # Items, Parents
    out = tmp_path / "out"
    dry = run_mapper("delete_entities", ["--params", "kind=*", "--namespaces", "acme"],
                     output=str(out))
    ok(dry)
    assert "erase" not in summary_of(out, "delete_entities")  # a dry run erases nothing
    r = run_mapper("delete_entities", ["--params", "kind=*", "--namespaces", "acme",
                                       "--writes=transactional"], output=str(out))
    ok(r)
    assert kindless("acme") == []
    s = summary_of(out, "delete_entities")
    assert s["status"] == "succeeded" and s["erase"] == {"checked": 1, "left": {}}
    assert s["writes"]["counts"]["deleted"] == len(held)
    assert "erase checked: the 1 namespace read hold no entity of any kind" in r.stdout
    assert kindless("tiny") and kindless("")  # the other tenants are untouched


def test_a_tenant_erase_that_leaves_entities_behind_names_them_and_fails(
        seeded, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_WRITES_PROJECT", TEST_PROJECT)
    out = tmp_path / "out"
    r = run_mapper("erase_while_written", [*JOBS, "--params", "kind=*,late=tiny",
                                           "--namespaces", "tiny", "--writes=transactional"],
                   output=str(out))
    assert r.code != 0, r.stdout + r.stderr
    assert kindless("tiny") == [("Late", "written-during-the-erase")]
    s = summary_of(out, "erase_while_written")
    assert s["status"] == "failed"
    left = s["erase"]["left"]["tiny"]
    assert left["entities"] == 1 and left["kinds"] == {"Late": 1}
    assert left["sample"] == ["Late('written-during-the-erase')"]
    assert "namespace tiny still holds 1 entity (Late 1" in s["failure"]
    assert "namespace tiny still holds 1 entity (Late 1" in r.stderr


def test_a_filtered_delete_is_not_an_erase_and_is_not_checked(seeded, tmp_path):
    out = tmp_path / "out"
    ok(run_mapper("delete_entities", ["--params", "kind=*,property=category,value=books",
                                      "--namespaces", "acme", "--writes=transactional"],
                  output=str(out)))
    s = summary_of(out, "delete_entities")
    assert "erase" not in s and kindless("acme")  # not emptied, and not meant to be


def test_a_restore_lists_every_dead_letter_of_a_kind_in_several_namespaces(seeded, tmp_path):
    out = tmp_path / "out"
    ok(run_mapper("backup_entities", [], output=str(out)))  # every kind: NAMESPACE/KIND.jsonl
    backup = out / "backup_entities" / "namespaces"
    assert sorted(p.name for p in backup.glob("*/Item.jsonl")) == ["Item.jsonl"] * 3
    # Two Items per namespace changed since the backup: each a dead letter of the restore, from
    # three files all named Item.jsonl (one per namespace).
    changed = []
    for ns in ("", "acme", "tiny"):
        c = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
        for e in list(c.query(kind="Item").fetch(limit=2)):
            e["category"] = "changed-since"
            c.put(e)
            changed.append((ns, list(e.key.flat_path)))
    r = run_mapper("restore_entities", ["--params", f"from={backup}", "--writes=transactional",
                                        "--max_errors", "100"], output=str(out))
    ok(r)
    s = summary_of(out, "restore_entities")
    assert s["writes"]["counts"]["changed_since"] == len(changed) == 6
    assert s["dead_letters"]["count"] == 6
    with open(s["dead_letters"]["file"], encoding="utf-8") as f:
        letters = [json.loads(line) for line in f]
    assert sorted((x["namespace"], x["key"]) for x in letters) == sorted(changed)
    assert {x["error"] for x in letters} == {"DiffersFromBackup"}


def test_a_transaction_begun_by_its_lookup_is_rolled_back_when_it_goes_no_further(
        datastore_client, monkeypatch):
    """The lookup begins the transaction; a failure after it (here the decision raising)
    rolls back that transaction, and its entity stays as it was; with more keys than one
    lookup takes, the later lookups read in the transaction the first began."""
    from google.cloud.datastore_v1.services.datastore.client import DatastoreClient
    from google.cloud.datastore_v1.types import datastore as ds

    from pipeline.core.retry import RetryPolicy
    from pipeline.datastore import writes

    c = datastore_client
    keys = [c.key("Item", i) for i in range(1, 8)]
    for k in keys:
        e = datastore.Entity(k)
        e["n"] = k.id
        c.put(e)
    begun, in_txn, rolled_back = [], [], []
    real_lookup, real_rollback = DatastoreClient.lookup, DatastoreClient.rollback

    def lookup(self, request=None, **kw):
        options = ds.LookupRequest.pb(request).read_options
        answer = real_lookup(self, request=request, **kw)
        if options.HasField("new_transaction"):
            begun.append(ds.LookupResponse.pb(answer).transaction)
        else:
            in_txn.append(options.transaction)
        return answer

    def rollback(self, request=None, **kw):
        rolled_back.append(request["transaction"])
        return real_rollback(self, request=request, **kw)

    monkeypatch.setattr(DatastoreClient, "lookup", lookup)
    monkeypatch.setattr(DatastoreClient, "rollback", rollback)
    monkeypatch.setattr(writes, "LOOKUP_KEYS", 3)  # three lookups: 3 + 3 + 1 keys
    seen = []

    def decide(current):
        seen.append(sorted(k.id for k in current))
        raise ValueError("the job refused")

    with pytest.raises(ValueError, match="the job refused"):
        writes.transact(c, keys, decide, RetryPolicy(deadline=10.0), "a test transaction")
    assert seen == [list(range(1, 8))]
    assert len(begun) == 1 and begun[0] and in_txn == [begun[0], begun[0]]
    assert rolled_back == [begun[0]]
    monkeypatch.undo()  # the client's own get_multi sends its requests as dicts
    assert sorted(e["n"] for e in c.get_multi(keys)) == list(range(1, 8))
