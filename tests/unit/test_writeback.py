"""The write-back path the job's writer and restore share, without an emulator: retrying then
halving a batch that meets contention, binding keys to the run's database, the undo records
(from the ops' protobufs or not: the same records), and what is counted and sampled."""
from __future__ import annotations

import json
import os

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import datastore
from google.cloud.datastore.key import Key

from pipeline.core import writes as w
from pipeline.core.writes import Contention, Op
from pipeline.datastore import entity_json as ej
from pipeline.datastore.writes import bind, bind_key
from pipeline.graph.writeback import UndoLog, change_sample, tally
from pipeline.sinks.files import undo


# --- retry, then halve -----------------------------------------------------------------------

class Datastore:
    """Stands for the commits: items in ``conflicting`` make any batch holding them lose."""

    def __init__(self, conflicting=(), losses_before_success: int = 0):
        self.conflicting = set(conflicting)
        self.losses_before_success = losses_before_success
        self.attempts: list = []
        self.committed: list = []

    def attempt(self, batch: list) -> None:
        self.attempts.append(list(batch))
        if self.conflicting & set(batch):
            raise Contention("too much contention")
        if self.losses_before_success:
            self.losses_before_success -= 1
            raise Contention("too much contention")
        self.committed.extend(batch)


def write(batch, ds, retries=3):
    """``retry_then_halve`` as a caller drives it: its own entry for the halves."""
    slept, conflicts, gave_up = [], [], []

    def entry(b):
        w.retry_then_halve(b, ds.attempt, entry, retries, lambda: conflicts.append(1),
                           lambda item, e: gave_up.append((item, str(e))), sleep=slept.append)

    entry(batch)
    return slept, len(conflicts), gave_up


def test_a_batch_that_loses_is_retried_with_a_doubling_backoff():
    ds = Datastore(losses_before_success=2)
    slept, conflicts, gave_up = write([1, 2, 3], ds)
    assert ds.committed == [1, 2, 3] and len(ds.attempts) == 3
    assert slept == [w.CONTENTION_BACKOFF, w.CONTENTION_BACKOFF * 2]
    assert conflicts == 2 and gave_up == []


def test_a_batch_that_keeps_losing_is_halved_down_to_the_one_that_conflicts():
    ds = Datastore(conflicting={3})
    slept, conflicts, gave_up = write([1, 2, 3, 4, 5], ds, retries=1)
    assert sorted(ds.committed) == [1, 2, 4, 5]  # nothing else is lost
    assert gave_up == [(3, "too much contention")]  # only the one that still conflicts
    # every batch holding 3 was tried retries + 1 times: [1..5], [1, 2, 3], [3]
    assert [a for a in ds.attempts if 3 in a] == [[1, 2, 3, 4, 5]] * 2 + [[1, 2, 3]] * 2 + \
        [[3]] * 2
    assert conflicts == 6 and slept == [w.CONTENTION_BACKOFF] * 3


def test_no_retries_halves_at_once_and_a_single_item_is_given_up_at_once():
    ds = Datastore(conflicting={"a"})
    slept, conflicts, gave_up = write(["a"], ds, retries=0)
    assert ds.attempts == [["a"]] and slept == [] and conflicts == 1
    assert [item for item, _ in gave_up] == ["a"]


def test_other_errors_are_the_callers():
    def attempt(batch):
        raise ValueError("not contention")

    with pytest.raises(ValueError):
        w.retry_then_halve([1, 2], attempt, lambda b: None, 3, lambda: None,
                           lambda item, e: None, sleep=lambda s: None)


# --- the pure pieces -------------------------------------------------------------------------

def test_an_op_says_its_change_and_its_counter():
    key = Key("Item", 1, project="p")
    e = datastore.Entity(key)
    assert Op(key, None, e).change == "put" and Op(key, e, e).change == "changed"
    assert Op(key, e, None).change == "deleted"
    assert [w.change_counter(c) for c in ("put", "changed", "deleted")] == \
        [w.PUT, w.CHANGED, w.DELETED]


def test_the_entity_group_is_the_root():
    assert w.entity_group(Key("Customer", "c1", "Order", 7, project="p")) == ("Customer", "c1")
    assert w.entity_group(Key("Item", 3, project="p")) == ("Item", 3)


# --- keys bound to the run's project and database ----------------------------------------------

@pytest.fixture(autouse=True)
def no_emulator(monkeypatch):
    """Clients made here talk to nothing (an emulator fixture of the session may have set it)."""
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)


def _client(project: str, database=None) -> datastore.Client:
    return datastore.Client(project=project, database=database,
                            credentials=AnonymousCredentials())


def test_a_key_of_the_run_is_kept_as_it_is():
    c = _client("p")
    key = c.key("Item", 1, namespace="acme")
    assert bind_key(c, key) is key


@pytest.mark.parametrize("project,database", [("other", None), ("p", "db2")])
def test_a_key_of_another_project_or_database_is_bound_to_the_runs(project, database):
    c = _client("p")
    key = Key("Parent", "x", "Item", 1, project=project, database=database, namespace="acme")
    bound = bind_key(c, key)
    assert (bound.project, bound.database, bound.namespace, bound.flat_path) == \
        ("p", None, "acme", ("Parent", "x", "Item", 1))
    entity = datastore.Entity(key)
    entity["n"] = 1
    assert bind(c, entity) is entity and entity.key == bound and entity["n"] == 1


# --- undo records ------------------------------------------------------------------------------

def _ops():
    key = Key("Item", 1, project="p", namespace="acme")
    before = datastore.Entity(key, exclude_from_indexes=("note",))
    before.update(n=1, note="x" * 2000, tags=["a", "b"])
    after = ej.copy_entity(before)
    after["n"] = 2
    created = datastore.Entity(Key("Item", 2, project="p", namespace="acme"))
    created["n"] = 3
    gone = datastore.Entity(Key("Item", 3, project="p", namespace="acme"))
    return [Op(key, before, after), Op(created.key, None, created),
            Op(gone.key, gone, None)], before, after


def test_undo_records_are_the_same_from_the_protobufs_made_already_or_not():
    ops, before, after = _ops()
    log = UndoLog("unused", "job", "run1", "transactional")
    plain = log.records("acme", ops)
    with_pbs = log.records("acme", [Op(ops[0].key, before, after, before_pb=ej.Pb(before),
                                       after_pb=ej.Pb(after)), *ops[1:]])
    for r in plain + with_pbs:
        r.pop("time")
    assert plain == with_pbs
    changed, put, deleted = plain
    assert ej.entity_from_json(changed["before"]) == before
    assert changed["after_sha256"] == undo.digest(ej.fingerprint(after))
    assert put["before"] is None and deleted["after_sha256"] is None
    assert {r["job"] for r in plain} == {"job"} and {r["mode"] for r in plain} == \
        {"transactional"}


def test_the_undo_log_writes_one_file_a_batch_that_reads_back(tmp_path):
    ops, _, _ = _ops()
    assert UndoLog(None, "job", "run1", "blind").write("acme", ops) is None  # --undo_log=false
    log = UndoLog(str(tmp_path), "job", "run1", "blind")
    assert log.write("acme", []) is None
    path = log.write("acme", ops)
    assert undo.undo_files(str(tmp_path)) == [path]
    records = list(undo.read_records(path))
    assert [ej.key_from_json(r["key"]) for r in records] == [op.key for op in ops]
    log.discard(path)
    assert undo.undo_files(str(tmp_path)) == []


def test_discarding_a_batch_deletes_only_its_undo_file(tmp_path):
    """Only a regular undo file of the log's own directory goes: a symlink, a directory or a
    file of another name at the path is left, and so is what they point to or hold, and an
    undo file anywhere else (another run's, a user's)."""
    undo_dir = tmp_path / "undo"
    ns_dir = undo_dir / "acme"
    ns_dir.mkdir(parents=True)
    foreign = tmp_path / "users-data.jsonl"
    foreign.write_text("mine\n")
    link = ns_dir / f"link{undo.SUFFIX}"
    link.symlink_to(foreign)
    folder = ns_dir / f"folder{undo.SUFFIX}"
    folder.mkdir()
    (folder / "inside.txt").write_text("mine\n")
    other = ns_dir / "notes.txt"
    other.write_text("mine\n")
    elsewhere = tmp_path / "other-run" / "acme" / f"20260101T000000-1-abc{undo.SUFFIX}"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("mine\n")
    dotted = ns_dir / ".." / ".." / "users-data.jsonl"  # the foreign file, by a path in the log
    log = UndoLog(str(undo_dir), "job", "run1", "blind")
    for path in (link, folder, other, elsewhere, dotted, foreign, None, ""):
        log.discard(str(path) if path else path)
    undo.discard(str(foreign), None)
    assert link.is_symlink() and foreign.read_text() == "mine\n"
    assert (folder / "inside.txt").read_text() == "mine\n" and other.read_text() == "mine\n"
    assert elsewhere.read_text() == "mine\n"
    ops, _, _ = _ops()
    path = log.write("acme", ops)
    log.discard(path)
    assert not os.path.exists(path) and foreign.exists() and link.is_symlink()
    assert not undo._within("gs://b/out/undo/../x/f.jsonl", "gs://b/out/undo")
    assert undo._within("gs://b/out/undo/acme/f.jsonl", "gs://b/out/undo/")
    assert not undo._within("gs://b/out/undo-other/acme/f.jsonl", "gs://b/out/undo")


# --- what is counted and sampled ---------------------------------------------------------------

def test_tally_counts_every_op_and_samples_up_to_the_limit():
    ops, _, _ = _ops()
    counted, samples = [], []
    tally(ops, "acme", counted.append, samples, limit=2)
    assert counted == [w.CHANGED, w.PUT, w.DELETED]
    assert [s["change"] for s in samples] == ["changed", "put"]
    tally(ops, "acme", counted.append, samples, limit=2)
    assert len(samples) == 2 and len(counted) == 6


def test_a_change_sample_shows_what_differs():
    ops, _, _ = _ops()
    s = change_sample("acme", ops[0])
    assert (s["namespace"], s["kind"], s["change"]) == ("acme", "Item", "changed")
    assert s["diff"] == {"n": [1, 2]}
    json.dumps(s)  # a line of changes.jsonl
    assert change_sample("acme", ops[2])["after"] is None
