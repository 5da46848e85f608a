"""Many tenants (issue 17): small namespaces read first, in one query each, big ones split.

The dataset: sixty small namespaces (1 to 12 entities), three at the first read's bound (one
under, one at, one over: ``--query_entities 30``), one that holds no Item, and two big ones. What
is proved, with keys and full entities, 1 and 16 shards, one worker and two worker processes:

- exactly-once: every Item key read once, none twice, none invented;
- a small namespace costs one query (no scatter sample), an empty one too; one that fills the
  first read is sampled and split, and what the first read took is not read again;
- a namespace that grows while it is planned (between its first read and its sample, or after
  a first read that finished it) is still read exactly once;
- planning is spread over the workers; hooks and counters per namespace are as before.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from google.cloud import datastore

import pipeline.datastore.planning as planning
from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.planning import STATS_MARGIN
from tests.emulator.test_hooks import assert_counts, of, run_hooks
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

BOUND = 30
SMALL = [NamespaceSpec(f"t{i:03d}", random.Random(i).randint(1, 12)) for i in range(60)]
EDGES = [NamespaceSpec("edge-29", BOUND - 1), NamespaceSpec("edge-30", BOUND),
         NamespaceSpec("edge-31", BOUND + 1)]
BIG = [NamespaceSpec("big-a", 900), NamespaceSpec("big-b", 400)]
EMPTY = "zz-empty"  # it exists (an Other entity) but holds no Item
#: The entity that makes EMPTY exist, and tells whether the dataset is still seeded (kept out
#: of the default namespace, which would otherwise be one more namespace of the run).
SENTINEL = ("Other", 1)
READ_FIRST = ["--query_entities", str(BOUND)]


def _seed() -> dict:
    items = seed_dataset(TEST_PROJECT, SMALL + EDGES + BIG)
    c = datastore.Client(project=TEST_PROJECT, namespace=EMPTY)
    c.put(datastore.Entity(c.key(*SENTINEL)))
    return items


def _intact() -> bool:
    c = datastore.Client(project=TEST_PROJECT, namespace=EMPTY)
    return c.get(c.key(*SENTINEL)) is not None


@pytest.fixture(scope="module")
def dataset(datastore_emulator) -> dict:
    datastore_emulator.reset()
    return _seed()


@pytest.fixture
def tenants(dataset, datastore_emulator) -> dict:
    """namespace -> flat paths of its Items (seeded again if another test reset the emulator)."""
    if not _intact():
        datastore_emulator.reset()
        _seed()
    return dataset


def expected_keys(items: dict) -> Counter:
    return Counter((ns, tuple(p)) for ns, paths in items.items() for p in paths)


def assert_exactly_once(records, expected: Counter, what: str) -> None:
    got = Counter(key_tuple(r) for r in records)
    twice = {k: n for k, n in got.items() if n > 1}
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    assert not (twice or missing or extra), (
        f"{what}: {len(twice)} read more than once (e.g. {list(twice)[:3]}), {len(missing)} "
        f"missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})")


def run_ok(job, args, tmp_path, runner):
    result = run_mapper(job, args, output=str(tmp_path / "out"), runner=runner)
    assert result.code == 0, (f"exited {result.code}\nstderr:\n{result.stderr[-6000:]}\n"
                              f"stdout:\n{result.stdout[-1500:]}")
    assert result.summary is not None
    return result


class FetchSpy:
    """Counts the queries of each (namespace, kind) the run makes in this process."""

    def __init__(self, monkeypatch):
        self.queries: Counter = Counter()
        original = datastore.Query.fetch
        spy = self

        def fetch(q, *a, **kw):
            spy.queries[(q.namespace or "", q.kind)] += 1
            return original(q, *a, **kw)
        monkeypatch.setattr(datastore.Query, "fetch", fetch)


CASES = {
    "keys-one-shard": (["--shards", "1"], IN_PROCESS),
    "keys-16-shards": (["--shards", "16"], IN_PROCESS),
    "full-16-shards-small-slices": (["--params", "full=true", "--shards", "16",
                                     "--slice_entities", "37"], IN_PROCESS),
    "full": (["--params", "full=true"], IN_PROCESS),
    "keys-one-read-in-flight": (["--reads_in_flight", "1", "--slice_entities", "37"],
                                IN_PROCESS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_small_namespaces_are_one_query_big_ones_split_every_key_once(tenants, tmp_path,
                                                                    case):
    args, runner = CASES[case]
    result = run_ok("export_keys", READ_FIRST + args, tmp_path, runner)
    assert_exactly_once(result.records, expected_keys(tenants), case)
    namespaces = result.summary["namespaces"]
    assert set(namespaces) == {s.name for s in SMALL + EDGES + BIG} | {EMPTY}
    per_range = Counter(r["range"] for r in result.records)
    for ns, n in namespaces.items():
        want = len(tenants.get(ns, ()))
        assert n["entities"] == sum(n["range_entities"].values()) == want, (ns, n)
        assert n["range_entities"].keys() == {f"{ns}#{i}" for i in range(n["ranges"])}, (ns, n)
        assert all(per_range.get(r, 0) == c for r, c in n["range_entities"].items()), ns
        if want < BOUND:  # read first, in one query: one range, one slice, no sample
            assert (n["ranges"], n["slices"], n["queries"], n["samples"]) == (1, 1, 1, 0), (
                ns, n)
        else:  # filled the first read: sampled, split (with shards), read on
            assert n["samples"] > 0 and n["queries"] >= 2, (ns, n)
    shards = 1 if "--shards" in args and args[args.index("--shards") + 1] == "1" else None
    for spec in BIG:
        n = namespaces[spec.name]
        assert (n["ranges"] == 1) if shards == 1 else (n["ranges"] > 2), (spec.name, n)


def test_an_empty_namespace_and_a_small_one_cost_one_query_each(tenants, tmp_path,
                                                                 monkeypatch):
    spy = FetchSpy(monkeypatch)
    result = run_ok("export_keys", READ_FIRST + ["--namespaces", f"t001,edge-29,edge-30,{EMPTY}",
                                                  "--launch_checks=false"], tmp_path, IN_PROCESS)
    assert_exactly_once(result.records, expected_keys({ns: tenants[ns] for ns in
                                                       ("t001", "edge-29", "edge-30")}), "few")
    assert spy.queries[(EMPTY, "Item")] == 1, spy.queries
    assert spy.queries[("t001", "Item")] == 1 and spy.queries[("edge-29", "Item")] == 1
    # Exactly at the bound: there may be more, so it is sampled, and what is after the last
    # key read is read by one more query (nothing there).
    assert spy.queries[("edge-30", "Item")] == 3, spy.queries
    empty = result.summary["namespaces"][EMPTY]
    assert (empty["entities"], empty["ranges"], empty["slices"], empty["queries"],
            empty["samples"]) == (0, 1, 1, 1, 0)


def _put(ns: str, ids) -> list:
    c = datastore.Client(project=TEST_PROJECT, namespace=ns)
    entities = [datastore.Entity(c.key("Item", i)) for i in ids]
    c.put_multi(entities)
    return [(ns, ("Item", i)) for i in ids]


def test_a_namespace_that_grows_while_it_is_planned_is_read_exactly_once(emulator, tmp_path,
                                                                         monkeypatch):
    # "grows": 100 entities (ids 1000..1099): fills the first read (30), then, before it is
    # sampled, gains 10 keys below the last key read and 10 above. "settled": 20 entities,
    # read whole by its first read, then gains 11 more (past the bound) before its slice is
    # handed over.
    grows, settled = _put("grows", range(1000, 1100)), _put("settled", range(1000, 1020))
    added: dict = {}
    sample, first = planning.split_unit, planning.read_first

    def split_unit(c, read, namespace, kind, **kw):
        if namespace == "grows" and "grows" not in added:
            added["grows"] = (_put("grows", range(1, 11)), _put("grows", range(5000, 5010)))
        return sample(c, read, namespace, kind, **kw)

    def read_first(c, read, namespace, kind, bound, on_retry=None):
        got = first(c, read, namespace, kind, bound, on_retry)
        if namespace == "settled":
            added["settled"] = _put("settled", [1, 2, 3, 4, 5, 5001, 5002, 5003, 5004, 5005,
                                                5006])  # 31: past the bound
        return got

    monkeypatch.setattr(planning, "split_unit", split_unit)
    monkeypatch.setattr(planning, "read_first", read_first)
    result = run_ok("export_keys", READ_FIRST + ["--shards", "4", "--oversampling", "4",
                                                  "--launch_checks=false"], tmp_path, IN_PROCESS)
    below, above = added["grows"]
    got = Counter(key_tuple(r) for r in result.records)
    assert all(n == 1 for n in got.values()), "read twice"
    assert set(got) == set(grows) | set(above) | set(settled), (
        "the first read's keys and those after the last of them are read once; keys written "
        "behind the reader (below its last key, or after a first read that finished the "
        "namespace) are not")
    assert not set(got) & (set(below) | set(added["settled"]))
    assert result.summary["namespaces"]["settled"]["queries"] == 1
    assert result.summary["namespaces"]["grows"]["ranges"] > 1


def test_hooks_and_counters_per_namespace_with_small_and_big_namespaces(tenants, tmp_path):
    result, events = run_hooks(tmp_path, READ_FIRST, runner=IN_PROCESS)
    assert result.code == 0, result.stderr[-4000:]
    summary = result.summary
    want = {ns: len(paths) for ns, paths in tenants.items()}
    want[EMPTY] = 0
    assert_counts(events, summary, set(want))
    done = {e["namespace"]: e for e in of(events, "namespace_completed")}
    for ns, n in want.items():
        assert done[ns]["entities"] == n and done[ns]["counters"].get("keys", 0) == n, ns
    pos = {id(e): i for i, e in enumerate(events)}
    slices = defaultdict(list)
    for e in events:
        if e["event"].startswith("slice_"):
            slices[(e["namespace"], e["range_id"])].append(e)
    for started in of(events, "range_started"):
        key = (started["namespace"], started["range_id"])
        assert pos[id(started)] < pos[id(slices[key][0])], key
        ns_started = [e for e in of(events, "namespace_started")
                      if e["namespace"] == started["namespace"]][0]
        assert pos[id(ns_started)] < pos[id(started)], key
        assert [s["event"] for s in slices[key]] == ["slice_started", "slice_completed"] * (
            len(slices[key]) // 2), key
    small = {s.name for s in SMALL}
    one_slice = [k for k in slices if k[0] in small]
    assert all(len(slices[k]) == 2 for k in one_slice)  # one range, one slice each


def test_statistics_that_say_big_skip_the_first_read_and_stale_ones_change_no_record(
        tenants, tmp_path, monkeypatch):
    """Where Datastore keeps statistics (``__Stat_Namespace__``, ``__Stat_Ns_Kind__``), a unit
    they count at twice the first read's bound or more is sampled at once. The emulator keeps
    none and refuses writes to ``__Stat_*`` kinds ("The kind ... is reserved"), so the counts
    are given where the planner reads them: big-a (really big) and t003 (a few entities: stale
    statistics calling it big); big-b and t004 have none."""
    import pipeline.graph.namespaces as graph_namespaces
    stats = {"big-a": 900, "t003": 5000}
    asked: list = []

    def big_namespaces(c, policy, read_time, at_least, where="Datastore"):
        asked.append(at_least)
        return {ns: n for ns, n in stats.items() if n >= at_least}

    def kind_counts(c, namespace, policy, read_time, where="Datastore"):
        return {"Item": stats[namespace]}

    first_reads: list = []
    first = planning.read_first

    def read_first(c, read, namespace, kind, bound, on_retry=None):
        first_reads.append(namespace)
        return first(c, read, namespace, kind, bound, on_retry)

    monkeypatch.setattr(graph_namespaces, "big_namespaces", big_namespaces)
    monkeypatch.setattr(graph_namespaces, "kind_counts", kind_counts)
    monkeypatch.setattr(planning, "read_first", read_first)
    chosen = ("big-a", "big-b", "t003", "t004")
    result = run_ok("export_keys", READ_FIRST + ["--namespaces", ",".join(chosen),
                                                  "--launch_checks=false"], tmp_path, IN_PROCESS)
    assert_exactly_once(result.records, expected_keys({ns: tenants[ns] for ns in chosen}),
                        "statistics")
    assert asked == [STATS_MARGIN * BOUND]
    assert sorted(first_reads) == ["big-b", "t004"], first_reads
    n = result.summary["namespaces"]
    assert n["big-a"]["samples"] > 0 and n["big-a"]["ranges"] > 1, n["big-a"]
    assert n["t003"]["samples"] > 0, n["t003"]  # sampled at once, as the statistics said
    assert (n["t004"]["queries"], n["t004"]["samples"]) == (1, 0), n["t004"]
    assert n["big-b"]["samples"] > 0  # filled its first read: sampled after it
