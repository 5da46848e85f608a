"""Jobs over several kinds, or all of them (issue 14): each (namespace, kind) is a unit, split
and read on its own, with its own file (``namespaces/NAMESPACE/KIND.jsonl``), schema and totals.

The dataset: 4 namespaces x 4 kinds of skewed sizes. ``Order`` is in every namespace (most in
``acme``); ``Customer`` is not in ``tiny``; ``Rare`` is only in ``acme`` and has 5 entities (no
scatter sample); ``Log`` is in every namespace, one entity in ``tiny``. ``Order`` has children
of ``Parent`` (only some of those parents exist as entities: a few ``Parent`` entities).
"""
from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from google.api_core import exceptions as gexc
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.namespaces import is_reserved
from pipeline.sinks.bigquery.tables import kind_table_part, table_part
from tests.emulator.test_file_output import check_against_schema, check_schema_valid
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

SIZES = {
    "Order": {"": 300, "acme": 600, "globex": 150, "tiny": 3},
    "Customer": {"": 80, "acme": 40, "globex": 200},
    "Rare": {"acme": 5},
    "Log": {"": 20, "acme": 400, "globex": 10, "tiny": 1},
}
NAMESPACES = ["", "acme", "globex", "tiny"]
HOOKS = ["--job_module", "tests.support.jobs_hooks"]


def label(ns: str) -> str:
    return ns or "__default__"


def ok(result) -> None:
    assert result.code == 0, (f"exited {result.code}\nstderr:\n{result.stderr[-6000:]}\n"
                              f"stdout:\n{result.stdout[-2000:]}")


def all_files(root) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def read_lines(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def kinds(emulator) -> dict:
    """(namespace, kind) -> the flat paths of its entities (every kind, Parent included)."""
    written: dict = {}
    for seed, (kind, sizes) in enumerate(SIZES.items()):
        got = seed_dataset(TEST_PROJECT, [NamespaceSpec(ns, n) for ns, n in sizes.items()],
                           kind=kind, seed=seed, with_children=(kind == "Order"))
        for ns, paths in got.items():
            written[(ns, kind)] = [tuple(p) for p in paths]
    for ns in NAMESPACES:  # the Parent entities seed_dataset wrote beside the Orders
        c = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
        q = c.query(kind="Parent")
        q.keys_only()
        parents = [tuple(e.key.flat_path) for e in q.fetch()]
        if parents:
            written[(ns, "Parent")] = parents
    return written


def unit_files(job_dir) -> dict:
    """(namespace label, kind) -> records, from namespaces/NAMESPACE/KIND.jsonl."""
    out = {}
    base = os.path.join(job_dir, "namespaces")
    for ns in sorted(os.listdir(base)):
        for name in sorted(os.listdir(os.path.join(base, ns))):
            assert name.endswith(".jsonl"), name
            out[(ns, name[:-len(".jsonl")])] = read_lines(os.path.join(base, ns, name))
    return out


@pytest.mark.parametrize("shards, runner", [
    pytest.param("1", IN_PROCESS, id="1-shard-in-process"),
    pytest.param("8", IN_PROCESS, id="8-shards"),
])
def test_every_kind_every_entity_once_in_its_unit_file(kinds, tmp_path, shards, runner):
    out = tmp_path / "out"
    result = run_mapper("export_keys", ["--params", "kind=*", "--shards", shards,
                                        "--slice_entities", "50"], output=str(out), runner=runner)
    ok(result)
    job = out / "export_keys"
    files = unit_files(job)
    want = {(label(ns), kind): paths for (ns, kind), paths in kinds.items()}
    assert set(files) == set(want)  # one file per (namespace, kind) that has entities
    for (ns_label, kind), paths in want.items():
        got = Counter(tuple(r["key"]) for r in files[(ns_label, kind)])
        assert got == Counter(paths), (ns_label, kind)  # every entity once, in its own file
        assert all(r["key"][-2] == kind for r in files[(ns_label, kind)])
    manifests = sorted(f for f in all_files(job) if f.startswith("manifests/"))
    assert manifests == sorted(f"manifests/{ns}/{kind}.json" for ns, kind in want)
    # The summary: entities per namespace and per kind within it, adding up.
    s = result.summary
    assert s["totals"]["entities"] == sum(len(p) for p in kinds.values())
    for ns in NAMESPACES:
        n = s["namespaces"][label(ns)]
        per_kind = {k: v["entities"] for k, v in n["kinds"].items()}
        assert per_kind == {kind: len(p) for (ns2, kind), p in kinds.items() if ns2 == ns}
        assert n["entities"] == sum(per_kind.values())
        assert n["ranges"] == sum(v["ranges"] for v in n["kinds"].values())
    assert {k: v["entities"] for k, v in s["totals"]["kinds"].items()} == {
        kind: sum(len(p) for (_, k2), p in kinds.items() if k2 == kind)
        for kind in {k for _, k in kinds}}
    # Small units are one range (the handful of Rare entities: no scatter sample at all); big
    # ones are split when shards allow.
    acme, tiny = s["namespaces"]["acme"]["kinds"], s["namespaces"]["tiny"]["kinds"]
    assert acme["Rare"]["ranges"] == 1 and acme["Rare"]["queries"] == 1
    assert tiny["Order"]["samples"] == 0 and tiny["Order"]["queries"] == 1
    if shards != "1":
        assert acme["Order"]["ranges"] > 1
    # The printed summary has a row per (namespace, kind).
    assert any(line.split()[:3] == ["acme", "Rare", "5"] for line in result.stdout.splitlines())


@pytest.mark.parametrize("runner", [pytest.param(IN_PROCESS, id="in-process")])
def test_listed_kinds_only_and_only_where_they_are(kinds, tmp_path, runner):
    out = tmp_path / "out"
    result = run_mapper("export_keys", ["--params", "kind=Rare|Customer", "--shards", "4"],
                        output=str(out), runner=runner)
    ok(result)
    files = unit_files(out / "export_keys")
    want = {(label(ns), kind): paths for (ns, kind), paths in kinds.items()
            if kind in ("Rare", "Customer")}
    assert set(files) == set(want)  # no empty file for tiny/Customer or for Rare elsewhere
    for key, paths in want.items():
        assert Counter(tuple(r["key"]) for r in files[key]) == Counter(paths), key
    assert set(result.summary["totals"]["kinds"]) == {"Rare", "Customer"}


def test_export_entities_of_every_kind_round_trips_with_a_schema_per_kind(kinds, tmp_path):
    out = tmp_path / "out"
    result = run_mapper("export_entities", ["--params", "kind=*", "--shards", "4"],
                        output=str(out), runner=IN_PROCESS)
    ok(result)
    job = out / "export_entities"
    files = unit_files(job)
    all_kinds = {k for _, k in kinds}
    assert sorted(f for f in all_files(job) if f.startswith("schemas/")) == sorted(
        f"schemas/{k}.json" for k in all_kinds)
    assert not (job / "schema.json").exists()
    schemas = {k: json.loads((job / "schemas" / f"{k}.json").read_text(encoding="utf-8"))
               for k in all_kinds}
    for fields in schemas.values():
        check_schema_valid(fields)
    for (ns, kind), paths in kinds.items():
        rows = files[(label(ns), kind)]
        got = Counter(tuple(x for p in r["__key__"]["path"]
                            for x in (p["kind"], p["id"] if p["id"] is not None else p["name"]))
                      for r in rows)
        assert got == Counter(paths), (ns, kind)
        for r in rows:
            assert r["__key__"]["namespace"] == ns
            check_against_schema(r, schemas[kind])
    # each kind's schema holds its own properties: Parent's label is not an Order column
    assert "label" in {f["name"] for f in schemas["Parent"]}
    assert "label" not in {f["name"] for f in schemas["Order"]}


def test_hooks_and_counters_roll_up_per_kind_and_namespace(kinds, tmp_path):
    events = tmp_path / "events.jsonl"
    out = tmp_path / "out"
    result = run_mapper("record_hooks", [*HOOKS, "--params", f"events={events},kind=Order|Log",
                                         "--shards", "4"], output=str(out), runner=IN_PROCESS)
    ok(result)
    lines = read_lines(events)
    want = {(ns, kind): len(p) for (ns, kind), p in kinds.items() if kind in ("Order", "Log")}
    # range_completed: each range is of one kind; its range id names the unit
    ranges = [e for e in lines if e["event"] == "range_completed"]
    per_unit = Counter()
    for e in ranges:
        assert e["kind"] in ("Order", "Log")
        assert e["range_id"].startswith(f"{label(e['namespace'])}/{e['kind']}#"), e["range_id"]
        per_unit[(e["namespace"], e["kind"])] += e["entities"]
    assert dict(per_unit) == want
    done = {e["namespace"]: e for e in lines if e["event"] == "namespace_completed"}
    assert set(done) == set(NAMESPACES)
    for ns, e in done.items():
        assert e["kinds"] == {k: n for (ns2, k), n in want.items() if ns2 == ns}
        assert e["entities"] == sum(e["kinds"].values())
        assert e["counters"]["keys"] == e["entities"]
        assert set(e["outputs"]) == set(e["kinds"])
        for kind, path in e["outputs"].items():
            assert path.endswith(f"namespaces/{label(ns)}/{kind}.jsonl"), path
    (job_done,) = [e for e in lines if e["event"] == "job_completed"]
    assert job_done["entities"] == sum(want.values())
    assert job_done["kinds"] == {k: sum(n for (_, k2), n in want.items() if k2 == k)
                                 for k in ("Order", "Log")}
    counters = result.summary["namespaces"]["acme"]["kinds"]["Order"]["counters"]
    assert counters["keys"] == want[("acme", "Order")]


def test_filters_apply_to_every_kind_and_value_ranges_split_per_kind(emulator, tmp_path):
    """A property only some kinds have: the others match nothing (no error); each kind's
    values are split on their own."""
    import datetime as dt
    utc = dt.timezone.utc
    day = dt.datetime(2026, 11, 20, tzinfo=utc)
    want = set()
    for ns in ("", "acme"):
        c = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
        batch = []
        for kind, n, hours in (("Event", 300, 1), ("Visit", 40, 7)):
            for i in range(n):
                e = datastore.Entity(c.key(kind, i + 1))
                e["created"] = day + dt.timedelta(minutes=i * hours * 3)
                batch.append(e)
                if e["created"] < day + dt.timedelta(hours=12):
                    want.add((ns, kind, i + 1))
        for i in range(30):  # a kind without the property
            batch.append(datastore.Entity(c.key("Note", i + 1)))
        for i in range(0, len(batch), 400):
            c.put_multi(batch[i:i + 400])
    result = run_mapper("test_range_probe", [
        "--job_module", "tests.support.jobs_for_tests", "--params",
        f"kind=Event|Visit|Note,ge={day.isoformat()},lt={(day + dt.timedelta(hours=12)).isoformat()}",
        "--shards", "4", "--oversampling", "8"], output=str(tmp_path / "out"), runner=IN_PROCESS)
    ok(result)
    got = [(r["namespace"], r["key"][0], r["key"][1]) for r in result.records]
    assert Counter(got) == Counter(want)
    per_kind = result.summary["namespaces"]["__default__"]["kinds"]
    assert per_kind["Event"]["ranges"] > 1  # Event's own value range, split
    assert per_kind["Note"]["entities"] == 0


@pytest.mark.parametrize("params, fragments", [
    pytest.param("kind=Order|Nope", ["kind 'Nope' has no entities in any namespace",
                                     "kinds found:", "Order"], id="unknown-kind-in-a-list"),
    pytest.param("kind=Nope|Gone", ["kinds 'Nope', 'Gone' have no entities"], id="two-unknown"),
    pytest.param("kind=*|Order", ["* (every kind) cannot be combined with kind names"],
                 id="star-combined"),
    pytest.param("kind=Order|__kind__", ["'__kind__' is a Datastore metadata kind"],
                 id="reserved-kind"),
    pytest.param("kind=Order||Log", ["an empty kind name"], id="empty-name"),
])
def test_bad_kinds_are_one_clear_line(kinds, tmp_path, params, fragments):
    out = tmp_path / "out"
    result = run_mapper("export_keys", ["--params", params], output=str(out))
    assert result.code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_missing_indexes_of_several_kinds_are_named_at_once(kinds, tmp_path, monkeypatch):
    """Production needs a composite index per kind for an equality filter plus a range; the
    emulator never asks, so the probe of two of the kinds gets the client's error injected."""
    real_fetch = datastore.Query.fetch

    def fetch(q, **kw):
        if q.filters and q.kind in ("Order", "Customer"):
            raise gexc.FailedPrecondition("no matching index found.")
        return real_fetch(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", fetch)
    result = run_mapper("category_created_between", [
        "--job_module", "tests.support.jobs_failing", "--params", "kind=Order|Customer|Log"],
        output=str(tmp_path / "out"))
    assert result.code == 2, result.stderr
    msg = result.stderr
    assert "lacks one for the kinds Customer, Order" in msg, msg
    assert "- kind: Customer\n" in msg and "- kind: Order\n" in msg and "- kind: Log" not in msg
    assert "Traceback" not in msg


def test_streaming_every_kind_needs_a_table_per_kind(kinds, bigquery_emulator, tmp_path):
    bq = bigquery_emulator
    ds = bq.new_dataset()
    base = ["--params", "kind=*", "--bigquery_emulator_host", bq.host,
            "--dead_letter", str(tmp_path / "dead.jsonl")]
    refused = run_mapper("stream_entities", [*base, "--bigquery_table", f"{ds}.rows"])
    assert refused.code == 2, refused.stderr
    assert "put {kind} in the table name" in refused.stderr, refused.stderr
    result = run_mapper("stream_entities", [*base, "--bigquery_table",
                                            f"{ds}.rows_{{namespace}}_{{kind}}", "--shards", "2"],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    ok(result)
    tables = sorted(t.table_id for t in bq.client.list_tables(f"{bq.project}.{ds}",
                                                              retry=bq.retry, timeout=bq.timeout))
    assert tables == sorted(f"rows_{table_part(ns)}_{kind_table_part(kind)}" for ns, kind in kinds)
    for (ns, kind), paths in kinds.items():
        rows = bq.rows(f"{ds}.rows_{table_part(ns)}_{kind_table_part(kind)}")
        assert Counter(key_of(r) for r in rows) == Counter((ns, p) for p in paths), (ns, kind)
    names = {f.name for f in bq.client.get_table(
        f"{bq.project}.{ds}.rows_acme_Parent", retry=bq.retry, timeout=bq.timeout).schema}
    assert "label" in names and "category" not in names  # each kind's table has its own columns
    assert result.summary["namespaces"]["acme"]["kinds"]["Order"]["counters"][
        "bigquery_rows"] == len(kinds[("acme", "Order")])


def key_of(row: dict) -> tuple:
    k = row["__key__"]
    return k["namespace"], tuple(x for p in k["path"] for x in (p["kind"], p["id"] or p["name"]))


# --- issue 22: kinds starting with __ are kinds; two kinds never share a file ----------------

#: Legal kinds the old rule ("starts with __": reserved) skipped; only __*__ (both ends) is
#: Datastore's. The emulator stores each of them (it refuses "____" and "__x__").
ODD_KINDS = ["__private", "_x", "__", "___", "__Stat_x"]
#: A namespace may start with __ too (only __*__ is reserved, like __default__, our label).
ODD_NAMESPACES = ["", "t1", "__foo"]


@pytest.fixture
def odd_kinds(emulator) -> dict:
    """(namespace, kind) -> the flat paths of its entities: Order and every ODD_KINDS kind in
    every ODD_NAMESPACES namespace, 3 entities each."""
    written = {}
    for ns in ODD_NAMESPACES:
        c = datastore.Client(project=TEST_PROJECT, namespace=ns or None)
        for kind in ["Order", *ODD_KINDS]:
            entities = []
            for i in range(1, 4):
                e = datastore.Entity(c.key(kind, i))
                e.update(n=i, kind_name=kind)
                entities.append(e)
            c.put_multi(entities)
            written[(ns, kind)] = [(kind, i) for i in range(1, 4)]
    return written


def test_kinds_starting_with_underscores_are_exported_backed_up_erased_and_restored(
        odd_kinds, tmp_path):
    from tests.emulator.test_writes import dump, summary_of

    snapshot = dump()
    assert {(ns, p[0]) for ns, p in snapshot} == set(odd_kinds)  # dump() sees them all
    out = tmp_path / "out"
    # The export of every kind reads every legal kind, each into its own file.
    ok(run_mapper("export_keys", ["--params", "kind=*"], output=str(out)))
    files = unit_files(out / "export_keys")
    assert set(files) == {(label(ns), kind) for ns, kind in odd_kinds}
    for (ns, kind), paths in odd_kinds.items():
        assert sorted(tuple(r["key"]) for r in files[(label(ns), kind)]) == paths, (ns, kind)
    # The lossless backup holds them all.
    ok(run_mapper("backup_entities", [], output=str(out)))
    backup = out / "backup_entities" / "namespaces"
    backed = unit_files(out / "backup_entities")
    assert {k: len(v) for k, v in backed.items()} == {(label(ns), kind): 3
                                                      for ns, kind in odd_kinds}
    # Erasing a tenant deletes every legal kind, and says the namespace is empty.
    r = run_mapper("delete_entities", ["--params", "kind=*", "--namespaces", "t1",
                                       "--writes=transactional", "--undo_log=false"],
                   output=str(out))
    ok(r)
    c = datastore.Client(project=TEST_PROJECT, namespace="t1")
    q = c.query()  # kindless: every entity of any kind
    q.keys_only()
    assert [e.key.flat_path for e in q.fetch() if not is_reserved(e.key.kind)] == []
    s = summary_of(out, "delete_entities")
    assert s["writes"]["counts"]["deleted"] == 3 * (1 + len(ODD_KINDS))
    assert s["erase"] == {"checked": 1, "left": {}}
    assert "erase checked: the 1 namespace read hold no entity of any kind" in r.stdout
    assert dump() == {k: v for k, v in snapshot.items() if k[0] != "t1"}
    # The restore from the backup puts every one of them back.
    ok(run_mapper("restore_entities", ["--params", f"from={backup}", "--writes=transactional"],
                  output=str(out)))
    assert dump() == snapshot


#: Two kinds the old naming (150 escaped characters, ``~``, 8 hex digits of SHA-1) gave one file
#: and one schema: found by a birthday search over "A" * 200 + str(i) (issue 22).
COLLIDING = ("A" * 200 + "65912", "A" * 200 + "76405")


def test_two_kinds_the_old_naming_merged_each_have_their_own_file_and_schema(emulator,
                                                                               tmp_path):
    import hashlib

    from pipeline.core.units import path_part

    a, b = COLLIDING
    assert hashlib.sha1(a.encode()).hexdigest()[:8] == hashlib.sha1(b.encode()).hexdigest()[:8]
    c = datastore.Client(project=TEST_PROJECT, namespace="t1")
    rows_a = [datastore.Entity(c.key(a, i)) for i in range(1, 4)]
    for e in rows_a:
        e.update(amount=e.key.id * 10)  # an INTEGER column only kind a has
    rows_b = [datastore.Entity(c.key(b, f"b{i}")) for i in range(1, 3)]
    for e in rows_b:
        e.update(label=f"l{e.key.name}")  # a STRING column only kind b has
    c.put_multi(rows_a + rows_b)
    out = tmp_path / "out"
    ok(run_mapper("export_entities", ["--params", "kind=*"], output=str(out)))
    job = out / "export_entities"
    files = unit_files(job)
    # A file per kind, each with its own rows (the old naming: one file of 5 mixed rows).
    assert sorted(len(rows) for rows in files.values()) == [2, 3]
    assert set(files) == {("t1", path_part(a)), ("t1", path_part(b))}
    for kind, want in ((a, [[a, 1], [a, 2], [a, 3]]), (b, [[b, "b1"], [b, "b2"]])):
        rows = files[("t1", path_part(kind))]
        got = sorted([p["kind"], p["id"] if p["id"] is not None else p["name"]]
                     for r in rows for p in r["__key__"]["path"])
        assert got == sorted(want), kind  # its own rows, and only them
    schemas = {f for f in all_files(job) if f.startswith("schemas/")}
    assert schemas == {f"schemas/{path_part(a)}.json", f"schemas/{path_part(b)}.json"}
    cols = {k: {f["name"] for f in json.loads(
        (job / "schemas" / f"{path_part(k)}.json").read_text(encoding="utf-8"))} for k in (a, b)}
    assert "amount" in cols[a] and "label" not in cols[a]
    assert "label" in cols[b] and "amount" not in cols[b]
    for kind in (a, b):
        fields = json.loads((job / "schemas" / f"{path_part(kind)}.json").read_text("utf-8"))
        check_schema_valid(fields)
        for r in files[("t1", path_part(kind))]:
            check_against_schema(r, fields)
