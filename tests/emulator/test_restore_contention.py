"""A restore that meets contention writes as the job's writer does (one write-back path): the
batch is retried, then halved down to the entity that still conflicts; everything else is
restored in the halves written before it, the lost transactions leave no undo records, and the
entity that kept conflicting stops the restore (one line; the halves after it are not tried),
which, run again once the entity is free, puts back what is still missing.

Contention is real and needs no timing: the restore's client is a real client whose lookups in
a transaction (at its API object, where every lookup goes) are followed, before the commit, by
another client's write of the held entity (a concurrent user's, as ``tests.support.jobs_writes.TagConcurrently`` makes one from migrate).
"""
from __future__ import annotations

import pytest
from google.cloud import datastore
from google.cloud.datastore_v1.types import datastore as ds

from pipeline.core.writes import Op
from pipeline.errors import MapperError
from pipeline.graph.restore import RestoreFileFn
from pipeline.graph.writeback import UndoLog
from pipeline.sinks.files import undo
from tests.support import TEST_PROJECT
from tests.support.configs import run_config

ITEMS = 8
HELD = 3  # the entity another transaction holds


@pytest.fixture
def migrated(emulator, tmp_path):
    """ITEMS entities a run changed (n -> n * 10), and that run's undo log."""
    c = datastore.Client(project=TEST_PROJECT)
    ops = []
    for i in range(1, ITEMS + 1):
        before = datastore.Entity(c.key("Item", i))
        before.update(n=i)
        after = datastore.Entity(c.key("Item", i))
        after.update(n=i * 10)
        ops.append(Op(before.key, before, after))
    c.put_multi([op.after for op in ops])
    log_dir = tmp_path / "undo"
    UndoLog(str(log_dir), "rename_property", "run0", "transactional").write("", ops)
    (path,) = undo.undo_files(str(log_dir))
    return c, path


class _WriteAfterLookup:
    """The client's API object, each lookup in a transaction that finds the held entity
    followed by another client's write of it, as it is."""

    def __init__(self, api, owner: "ConcurrentWriter"):
        self._api, self._owner = api, owner

    def __getattr__(self, name):
        return getattr(self._api, name)

    def lookup(self, request=None, **kw):
        answer = self._api.lookup(request=request, **kw)
        options = ds.LookupRequest.pb(request).read_options  # in a transaction, or beginning one
        in_txn = bool(options.transaction) or options.HasField("new_transaction")
        for found in ds.LookupResponse.pb(answer).found:
            if self._owner.holding and in_txn and found.entity.key.path[-1].id == HELD:
                other = datastore.Client(project=TEST_PROJECT)
                again = datastore.Entity(other.key("Item", HELD))
                again.update(n=found.entity.properties["n"].integer_value)
                other.put(again)
        return answer


class ConcurrentWriter(datastore.Client):
    """While ``holding``: each lookup in a transaction that finds the held entity is followed
    by another client's write of it, as it is (the transaction then loses at its commit)."""

    holding = True

    @property
    def _datastore_api(self):
        return _WriteAfterLookup(super()._datastore_api, self)


def _restore(emulator, tmp_path, path, holding: bool):
    run = run_config("restore_entities", "--params", f"from={path}", "--writes=transactional",
                     "--output", str(tmp_path / "out"), host=emulator.host)
    fn = RestoreFileFn(run)
    fn.setup()
    fn._client = ConcurrentWriter(project=TEST_PROJECT)
    fn._client.holding = holding
    return run, list(fn.process(path))


def _ns(c):
    return {e.key.id: e["n"] for e in c.query(kind="Item").fetch()}


def test_a_restore_halves_a_batch_that_meets_contention_down_to_the_entity(
        emulator, tmp_path, migrated):
    c, path = migrated
    with pytest.raises(MapperError, match="restoring 1 entities in namespace __default__: "
                                          "contention outlasted every retry"):
        _restore(emulator, tmp_path, path, holding=True)
    # halved [1..8] -> [1..4] -> [1, 2] (restored), [3, 4] -> [3]: it stops there
    restored = {1, 2}
    assert _ns(c) == {i: i if i in restored else i * 10 for i in range(1, ITEMS + 1)}
    # the restore's own undo log names exactly what it committed (lost transactions: nothing)
    run_undo = [r for f in undo.undo_files(str(tmp_path / "out")) for r in undo.read_records(f)]
    assert sorted(int(r["key"]["path"][0]["id"]) for r in run_undo) == sorted(restored)
    # run again once the entity is free: it is restored, the others are left as they are
    run, out = _restore(emulator, tmp_path, path, holding=False)
    ((namespace, totals),) = [o for o in out if isinstance(o, tuple)]  # and change samples
    assert namespace == ""
    assert totals.counters["writes.changed"] == ITEMS - len(restored)
    assert totals.counters["writes.unchanged"] == len(restored)
    assert "writes.conflicts" not in totals.counters
    assert _ns(c) == {i: i for i in range(1, ITEMS + 1)}
