"""The raw encoder (pipeline.datastore.encode) against the client's ``entity_to_protobuf``: the
same message, byte for byte, on every value type."""
from __future__ import annotations

import datetime

import pytest
from google.cloud.datastore import helpers
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from proto.datetime_helpers import DatetimeWithNanoseconds

from pipeline.datastore.decode import entity_from_pb
from pipeline.datastore.encode import entity_to_pb
from tests.unit.test_decode import _entity_pb, _every_value


def _check(entity: Entity) -> None:
    theirs = helpers.entity_to_protobuf(entity)._pb
    ours = entity_to_pb(entity)
    assert type(ours) is type(theirs)
    assert ours == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True)


def test_every_value_type_is_encoded_as_the_client_encodes_it():
    _check(_every_value())


def test_an_entity_read_back_with_its_meanings_and_excluded_lists_is_encoded_alike():
    pb = _entity_pb(_every_value())._pb
    pb.properties["when"].timestamp_value.nanos = 123456789
    pb.properties["text"].meaning = 15
    pb.properties["list"].meaning = 22
    pb.properties["list"].array_value.values[1].meaning = 15
    pb.properties["blob"].meaning = 16
    entity = entity_from_pb(pb)
    _check(entity)
    entity["text"] = "changed"  # a changed value loses its meaning, in both
    _check(entity)


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, 0.0, -0.0, float("nan"), "", "x", b"", b"\x00",
    datetime.datetime(2026, 1, 2, 3, 4, 5),  # naive: taken as UTC
    datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2))),
    DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, nanosecond=123456789,
                            tzinfo=datetime.timezone.utc),
    Key("A", 1, project="p"), Key("A", "x", "B", 2, project="p", namespace="n", database="d"),
    Key("A", project="p"), GeoPoint(0.0, 0.0), GeoPoint(-33.9, 151.2), [], [None], [[]],
    {"plain": "dict", "n": 1}, {}, Entity(), [Entity(key=Key("E", 1, project="p"))],
], ids=repr)
def test_one_value_is_encoded_as_the_client_encodes_it(value):
    entity = Entity(key=Key("Item", "k", project="p", namespace="acme"),
                    exclude_from_indexes=("excluded",))
    entity["v"] = value
    entity["excluded"] = value
    _check(entity)


def test_an_entity_without_a_key_and_a_value_of_no_datastore_type():
    _check(Entity())
    with pytest.raises(ValueError):
        helpers.entity_to_protobuf(_with(object()))
    with pytest.raises(ValueError):
        entity_to_pb(_with(object()))
    with pytest.raises(ValueError):
        entity_to_pb(_with(2**64))


def _with(value) -> Entity:
    e = Entity()
    e["x"] = value
    return e


@pytest.fixture
def offline(monkeypatch):
    """No emulator in the environment (an earlier test's may be): the client takes explicit
    anonymous credentials, which it refuses beside DATASTORE_EMULATOR_HOST."""
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)


def _client(database=None):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import datastore
    return datastore.Client(project="p", database=database, credentials=AnonymousCredentials())


@pytest.mark.parametrize("database", [None, "tenant-db"])
def test_a_commit_is_the_request_the_clients_batch_sends(offline, database):
    """``writes._commit_request`` against ``Batch.put``/``delete`` (what ``Batch._commit``
    sends): the same request, byte for byte, for entities, their made messages and deletes."""
    from google.cloud.datastore.batch import Batch
    from google.cloud.datastore_v1.types import datastore as ds

    from pipeline.datastore.writes import _commit_request
    c = _client(database)
    one = _every_value()
    one.key = c.key("Item", 7, "Child", "x", namespace="acme")
    two = Entity(c.key("Item", "n"))
    two.update(n=1)
    gone = c.key("Item", 9, namespace="acme")
    batch = Batch(c)
    batch.begin()
    for e in (one, two):
        batch.put(e)
    batch.delete(gone)
    theirs = ds.CommitRequest(project_id="p", mode=ds.CommitRequest.Mode.NON_TRANSACTIONAL,
                              mutations=batch.mutations,
                              **({"database_id": database} if database else {}))._pb
    for puts in ([one, two], [entity_to_pb(one), two]):
        ours = ds.CommitRequest.pb(_commit_request(c, puts, [gone], None))
        assert ours.SerializeToString(deterministic=True) == \
            theirs.SerializeToString(deterministic=True)
    txn = ds.CommitRequest.pb(_commit_request(c, [two], [], b"t1"))
    assert txn.mode == ds.CommitRequest.Mode.TRANSACTIONAL and txn.transaction == b"t1"


def test_a_commit_refuses_keys_of_another_project_or_database_and_incomplete_ones(offline):
    from pipeline.datastore.writes import _commit_request
    c = _client("tenant-db")
    other = Entity(_client().key("Item", 1))
    for puts, deletes in (([other], []), ([entity_to_pb(other)], []), ([], [other.key]),
                          ([Entity(c.key("Item"))], []), ([], [c.key("Item")])):
        with pytest.raises(ValueError):
            _commit_request(c, puts, deletes, None)
