"""Writing back, without an emulator: batch bounds, the ramp-up on a fake clock, the filters a
transactional delete re-checks, the lossless entity format, what migrate() may return, the
command that applies a dry run, and the summary's lines."""
from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import datastore
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key

from pipeline import DELETE, UNCHANGED
from pipeline.api.query import Query, resolve
from pipeline.core import writes as w
from pipeline.core.matching import matches
from pipeline.core.summary import format_summary
from pipeline.datastore import entity_json as ej
from pipeline.graph.writer import MigrateError, outcome
from pipeline.launch.resolve import apply_command, restore_command

UTC = dt.timezone.utc


# --- batches -----------------------------------------------------------------------------------

def test_batches_keep_count_bytes_and_groups_bounds():
    items = [(i, 10 if i != 5 else 95, i // 3) for i in range(20)]  # (id, size, group)
    got = list(w.batches(items, max_count=4, max_bytes=50, size=lambda x: x[1],
                         group=lambda x: x[2], max_groups=2))
    assert [x for b in got for x in b] == items  # everything, in order, once
    for b in got:
        assert len(b) <= 4 and len({x[2] for x in b}) <= 2
        assert sum(x[1] for x in b) <= 50 or len(b) == 1  # a huge item goes alone
    assert [x[0] for x in next(b for b in got if any(x[0] == 5 for x in b))] == [5]


def test_halves_down_to_single_mutations():
    assert w.halves([1, 2, 3]) == ([1, 2], [3])
    assert w.halves([1]) == ([1], [])


# --- the ramp-up, on a fake clock ----------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        self.slept += s


def test_the_ramp_follows_500_50_5_shared_over_the_workers():
    ramp = w.RampUp(workers=4)
    assert ramp.job_rate(0) == ramp.job_rate(299) == 500  # the first 5 minutes
    assert ramp.job_rate(600) == pytest.approx(750)  # +50 % after the next 5
    assert ramp.job_rate(900) == pytest.approx(1125)
    assert ramp.worker_rate(0) == 125
    assert w.RampUp(cap=200).job_rate(3600) == 200
    assert w.RampUp(enabled=False).job_rate(0) == float("inf")


def test_the_throttle_holds_a_worker_to_its_share_as_the_ramp_grows():
    clock = FakeClock()
    t = w.Throttle(w.RampUp(workers=2), clock=clock, sleep=clock.sleep)
    done = 0
    while clock.now < 300:  # the first 5 minutes: 250 ops/s for this worker
        t.wait(25)
        done += 25
    assert done / clock.now == pytest.approx(250, rel=0.05)
    start, done = clock.now, 0
    while clock.now < 1200:
        t.wait(25)
        done += 25
    rate = done / (clock.now - start)
    assert 250 * 1.5 ** 0 < rate < 250 * 1.5 ** 3  # growing: between the ramp's ends
    unlimited = w.Throttle(w.RampUp(enabled=False), clock=clock, sleep=clock.sleep)
    before = clock.slept
    for _ in range(100):
        unlimited.wait(500)
    assert clock.slept == before  # off (the emulator): never waits


def test_a_cap_alone_still_throttles():
    clock = FakeClock()
    t = w.Throttle(w.RampUp(enabled=False, cap=100), clock=clock, sleep=clock.sleep)
    for _ in range(40):
        t.wait(10)
    assert clock.now == pytest.approx(3.0, abs=0.2)  # 400 ops at 100/s, one second up front


# --- filters re-checked in the transaction ----------------------------------------------------

def test_matches_follows_datastores_rules():
    rq = resolve(Query(kind="Item", filters=[("category", "=", "books"),
                                             ("created", ">=", dt.datetime(2026, 1, 1,
                                                                           tzinfo=UTC))]))
    e = {"category": "books", "created": dt.datetime(2026, 2, 1, tzinfo=UTC)}
    assert matches(e, rq.equalities, rq.prop_range)
    assert not matches({**e, "category": "music"}, rq.equalities, rq.prop_range)
    assert matches({**e, "category": ["music", "books"]}, rq.equalities, rq.prop_range)  # lists
    assert not matches({**e, "created": dt.datetime(2025, 12, 31, tzinfo=UTC)}, rq.equalities,
                       rq.prop_range)
    assert not matches({"category": "books"}, rq.equalities, rq.prop_range)  # missing
    assert not matches({**e, "created": "2026-02-01"}, rq.equalities, rq.prop_range)  # a string
    ints = resolve(Query(kind="Item", filters=[("n", "=", 5)]))
    assert matches({"n": 5}, ints.equalities) and not matches({"n": 5.0}, ints.equalities)
    assert not matches({"n": True}, ints.equalities)


# --- the lossless format ------------------------------------------------------------------------

def _entity():
    key = Key("Parent", "p", "Item", 5, project="p", namespace="acme", database="db1")
    e = datastore.Entity(key, exclude_from_indexes=("blob", "text"))
    inner = datastore.Entity(Key("Inner", 1, project="p"), exclude_from_indexes=("x",))
    inner["x"] = "inside"
    e.update({"s": "héllo ✓", "n": 2 ** 62, "f": 2.5, "nan": float("nan"), "b": True,
              "blob": b"\x00\xff", "text": "long", "t": dt.datetime(2026, 1, 1, 12, 0, 0, 123456,
                                                                       tzinfo=UTC),
              "l": [1, "x", None, 2.0], "none": None, "inner": inner,
              "ref": Key("U", "ann", project="p", namespace="acme"),
              "geo": GeoPoint(1.5, -2.5), "empty": []})
    return e


def test_the_undo_format_is_lossless():
    e = _entity()
    back = ej.entity_from_json(ej.entity_to_json(e))
    assert ej.fingerprint(back) == ej.fingerprint(e)
    assert back.key == e.key and back.key.database == "db1" and back.key.namespace == "acme"
    assert back.exclude_from_indexes == {"blob", "text"}
    assert back["inner"].exclude_from_indexes == {"x"} and back["inner"]["x"] == "inside"
    assert type(back["n"]) is int and type(back["f"]) is float and back["blob"] == b"\x00\xff"
    assert back["t"] == e["t"] and back["geo"] == e["geo"] and back["empty"] == []
    assert ej.key_from_json(ej.key_to_json(e.key)) == e.key


def test_fingerprints_tell_versions_apart_but_not_endpoints():
    a, b = _entity(), _entity()
    assert ej.same(a, b)
    b["n"] = 1
    assert not ej.same(a, b)
    c = _entity()
    c["f"] = 2  # an int is not the float 2.0 in Datastore
    assert not ej.same(a, c)
    d = _entity()
    d.exclude_from_indexes.discard("text")
    assert not ej.same(a, d)
    e = _entity()
    e.key = Key(*e.key.flat_path, project="p", namespace="acme")  # no database: the emulator
    assert ej.same(a, e)
    assert ej.same(None, None) and not ej.same(a, None)


# --- what migrate() returns ---------------------------------------------------------------------

def test_outcome_of_migrate():
    e = _entity()
    assert outcome(e, None) is None and outcome(e, UNCHANGED) is None
    assert outcome(e, DELETE) is DELETE
    assert outcome(e, ej.copy_entity(e)) is None  # the same content: unchanged, not written
    changed = ej.copy_entity(e)
    changed["s"] = "new"
    assert outcome(e, changed) is changed
    other = datastore.Entity(Key("Other", 1, project="p"))
    with pytest.raises(MigrateError, match="another key"):
        outcome(e, other)
    with pytest.raises(MigrateError, match="return the entity"):
        outcome(e, {"s": 1})


# --- the command that applies a dry run, and the summary -----------------------------------------

def test_apply_command_replaces_any_writes_option():
    cmd = apply_command(["--job", "rename_property", "--writes", "dry_run", "--params",
                         "kind=Item,from=a b,to=c", "--writes=dry_run"])
    assert cmd.endswith("--writes=transactional") and cmd.count("--writes") == 1
    assert "'kind=Item,from=a b,to=c'" in cmd  # quoted for the shell


def test_restore_command_keeps_where_and_drops_the_jobs_own_options():
    cmd = restore_command(["--job", "rename_property", "--project", "p1", "--database=db2",
                           "--params", "from=a,to=b", "--params=kind=X", "--namespaces", "t1",
                           "--output", "/o", "--writes=transactional", "--emulator_host",
                           "127.0.0.1:1"], "/o/rename_property/runs/r/undo")
    assert cmd.split() == ["python", "-m", "pipeline", "--job", "restore_entities", "--params",
                           "from=/o/rename_property/runs/r/undo", "--project", "p1",
                           "--database=db2", "--output", "/o", "--emulator_host",
                           "127.0.0.1:1", "--writes=transactional"]


def _summary(mode, **counts):
    base = {c.split(".", 1)[1]: 0 for c in w.COUNTERS}
    base.update(counts)
    return {"job": "j", "query": "kind Item", "seconds": 1.0, "entities_per_second": 1.0,
            "totals": {"entities": 3, "ranges": 1, "records": 0, "counters": {}},
            "namespaces": {}, "writes": {
                "mode": mode, "counts": base, "undo_log": "/o/j/runs/r/undo",
                "changes": "/o/j/runs/r/changes.jsonl", "apply": "python -m pipeline ...",
                "restore": "python -m pipeline --job restore_entities ..."}}


def test_summary_lines_of_a_dry_run_and_of_a_real_one():
    dry = format_summary(_summary("dry_run", changed=2, unchanged=1))
    assert "dry run: nothing was written; it would have put 0, changed 2, deleted 0, " \
           "unchanged 1" in dry
    assert dry.rstrip().endswith("to apply it: python -m pipeline ...")
    real = format_summary(_summary("transactional", changed=2, conflicts=3))
    assert "writes (transactional): put 0, changed 2, deleted 0, unchanged 0 (conflicts 3)" \
        in real
    assert "undo log: /o/j/runs/r/undo (restore with: python -m pipeline --job " \
           "restore_entities" in real
    noop = format_summary(_summary("transactional", unchanged=3))
    assert "nothing was written, so nothing needs undoing" in noop


def test_a_summary_without_key_ranges_shows_no_ranges():
    """A restore reads its undo log, not key ranges: no "0 ranges", no ranges column."""
    s = _summary("transactional", changed=3)
    s["totals"]["ranges"] = 0
    s["namespaces"] = {"acme": {"entities": 3, "ranges": 0, "counters": {"writes.changed": 3}}}
    lines = format_summary(s).splitlines()
    assert lines[0] == "job j: 3 entities in 1 namespace, 1.0 s (1 entities/s)"
    assert lines[2].split() == ["namespace", "entities", "counters"]
    assert lines[3].split() == ["acme", "3", "writes.changed=3"]
    s["totals"]["ranges"] = 2  # a run that read ranges shows them
    s["namespaces"]["acme"]["ranges"] = 2
    lines = format_summary(s).splitlines()
    assert ", 2 ranges, " in lines[0] and lines[2].split()[2] == "ranges"


def test_the_adaptive_backoff_holds_commits_back_only_while_failures_dominate():
    from google.api_core import exceptions as gexc

    from pipeline.graph.writer import Overload
    clock = FakeClock()
    clock.now = 1_000_000.0
    o = Overload(delay=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):  # all good: never held back
        assert o.admit() == 0.0
        o.ended()
    assert clock.slept == 0
    for _ in range(5):  # a conflict, or data Datastore refuses, is an answer, not overload
        assert o.admit() == 0.0
        o.ended(gexc.Aborted("contention"))
        o.ended(gexc.InvalidArgument("too big"))
    assert clock.slept == 0
    for _ in range(200):  # Datastore refusing every attempt for overload
        o.admit()
        o.ended(gexc.ServiceUnavailable("overloaded"))
    assert clock.slept > 0  # held back, one delay at a time
    held = clock.slept
    clock.now += 130  # the window (2 minutes) forgets the failures
    assert o.admit() == 0.0 and clock.slept == held


def test_waiting_does_not_raise_the_odds_of_waiting_again():
    """A few overload failures early in a run: the odds of being held back stay what those
    attempts make them while the worker waits (Beam counts each wait as a request, so on one
    thread, where nothing succeeds meanwhile, they rose towards 1: minutes held)."""
    from google.api_core import exceptions as gexc

    from pipeline.graph.writer import Overload
    clock = FakeClock()
    clock.now = 1_000_000.0
    o = Overload(delay=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        o.ended()
    for _ in range(3):
        o.ended(gexc.ServiceUnavailable("reset"))
    now = int(clock.now * 1000)
    odds = o.throttler._throttling_probability(now)
    assert 0 < odds < 0.25
    for _ in range(100):
        o._held_back()
    assert o.throttler._throttling_probability(now) == odds


def test_commits_in_flight_do_not_hold_the_next_one_back():
    """Attempts count when they end: admitting several before any has ended (commits in
    flight) holds nothing back, and a run whose commits all go through is never held."""
    from pipeline.graph.writer import Overload
    clock = FakeClock()
    clock.now = 1_000_000.0
    o = Overload(delay=1.0, clock=clock, sleep=clock.sleep)
    for _ in range(300):
        assert o.admit() == 0.0
        assert o.admit() == 0.0  # the next one, before the last ended
        o.ended()
        o.ended()
        clock.now += 0.01
    assert clock.slept == 0


# --- which runners run here --------------------------------------------------------------------

@pytest.mark.parametrize("runner", [
    "FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
    "PrismRunner", None, "", "apache_beam.runners.direct.direct_runner.SwitchingDirectRunner"])
def test_a_local_runner_writes_without_the_ramp_up(runner):
    from pipeline.launch.resolve import is_local
    from tests.support.configs import run_config

    assert is_local(runner)
    args = [f"--runner={runner}"] if runner is not None else []
    run = run_config("rename_property", "--params", "kind=Item,from=a,to=b", *args)
    assert run.write.rampup is False


def test_a_remote_runner_writes_with_the_ramp_up(monkeypatch):
    from pipeline.launch.resolve import is_local
    from tests.support.configs import run_config

    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)  # an emulator: no ramp-up
    assert not is_local("DataflowRunner")
    run = run_config("rename_property", "--params", "kind=Item,from=a,to=b",
                     "--runner=DataflowRunner")
    assert run.write.rampup is True


def test_the_writers_key_comparison_is_the_clients():
    """``_same_key`` (no deep copies) against ``Key.__eq__`` on every pair of a set of keys
    that differ in one part each, partial keys included."""
    from pipeline.graph.writer import _same_key
    keys = [Key("K", 1, project="p"), Key("K", 1, project="q"), Key("K", 2, project="p"),
            Key("K", "1", project="p"), Key("K", 1, project="p", namespace="n"),
            Key("K", 1, project="p", database="d"), Key("P", 1, "K", 1, project="p"),
            Key("K", project="p"), Key("K", 1, project="p", namespace="")]
    for a in keys:
        for b in keys:
            assert _same_key(a, b) == (a == b), (a, b)
