"""The raw decoder (pipeline.datastore.decode) against the client's own, on every value type: a
job must not be able to tell the entities apart."""
from __future__ import annotations

import datetime

import pytest
from google.cloud.datastore import helpers
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from google.cloud.datastore_v1.types import entity as entity_pb2
from proto.datetime_helpers import DatetimeWithNanoseconds

from pipeline.datastore.decode import entity_from_pb, key_from_pb


def _same(ours, theirs) -> None:
    """Equal, and equal in everything ``==`` does not look at."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, Entity):
        _same_key(ours.key, theirs.key)
        assert ours.exclude_from_indexes == theirs.exclude_from_indexes
        assert ours._meanings == theirs._meanings
        assert list(ours) == list(theirs)  # the properties' order
        for name in theirs:
            _same(ours[name], theirs[name])
    elif isinstance(theirs, Key):
        _same_key(ours, theirs)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    elif isinstance(theirs, datetime.datetime):
        assert ours == theirs and ours.tzinfo == theirs.tzinfo
        assert ours.nanosecond == theirs.nanosecond
        assert ours.isoformat() == theirs.isoformat()
        assert ours.rfc3339() == theirs.rfc3339()
    else:
        assert ours == theirs or (ours != ours and theirs != theirs)  # NaN


def _same_key(ours, theirs) -> None:
    if theirs is None:
        assert ours is None
        return
    for attr in ("_flat_path", "_path", "_namespace", "_project", "_database", "_parent"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.is_partial == theirs.is_partial
    if not theirs.is_partial:  # a partial key equals no key, itself included
        assert ours == theirs and hash(ours) == hash(theirs)
    if theirs.database is None:  # the legacy form has no database
        assert ours.to_legacy_urlsafe() == theirs.to_legacy_urlsafe()
    assert ours.to_protobuf() == theirs.to_protobuf()


def _both(pb: entity_pb2.Entity):
    return entity_from_pb(pb._pb), helpers.entity_from_protobuf(pb)


def _entity_pb(entity: Entity) -> entity_pb2.Entity:
    return helpers.entity_to_protobuf(entity)


KEYS = [
    Key("Item", 5, project="p"),
    Key("Item", "name", project="p", namespace="acme"),
    Key("Parent", "a", "Child", 7, "Leaf", "x", project="p", namespace="ns", database="db2"),
    Key("Item", 2**63 - 1, project="p"),
    Key("__kind__", "Item", project="p"),
    Key("Item", "ünïcødé ✓", project="p", namespace="ténant"),
]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_a_key_is_decoded_as_the_client_decodes_it(key):
    pb = key.to_protobuf()
    _same_key(key_from_pb(pb._pb), helpers.key_from_protobuf(pb))


def test_a_partial_key_is_left_to_the_client():
    pb = Key("Item", project="p").to_protobuf()
    ours, theirs = key_from_pb(pb._pb), helpers.key_from_protobuf(pb)
    assert ours.is_partial and theirs.is_partial
    _same_key(ours, theirs)


def _every_value() -> Entity:
    e = Entity(key=Key("Item", 1, project="p", namespace="acme"),
               exclude_from_indexes=("text", "blob", "list_excluded"))
    inner = Entity(key=Key("Inner", "i", project="p"))
    inner.update({"a": 1, "b": "two"})
    keyless = Entity()
    keyless.update({"deep": [1, 2.5, None]})
    e.update({
        "none": None,
        "true": True,
        "false": False,
        "zero": 0,
        "int": -42,
        "big": 2**63 - 1,
        "float": 3.25,
        "nan": float("nan"),
        "inf": float("-inf"),
        "text": "payload " * 30,
        "empty": "",
        "unicode": "ünïcødé ✓",
        "blob": b"\x00\xffbytes",
        "when": datetime.datetime(2026, 12, 5, 12, 0, 1, 123456, tzinfo=datetime.timezone.utc),
        "epoch": datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc),
        "before": datetime.datetime(1901, 2, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc),
        "far": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999,
                                 tzinfo=datetime.timezone.utc),
        "ref": Key("Other", "o", "Item", 3, project="p", namespace="acme"),
        "geo": GeoPoint(51.5, -0.12),
        "inner": inner,
        "keyless": keyless,
        "list": [1, "two", 3.0, None, True],
        "list_excluded": ["a", "b"],
        "empty_list": [],
        "nested": [inner, keyless],
    })
    return e


def test_every_value_type_is_decoded_as_the_client_decodes_it():
    ours, theirs = _both(_entity_pb(_every_value()))
    _same(ours, theirs)


def test_nanoseconds_and_meanings_survive_as_the_client_keeps_them():
    pb = _entity_pb(_every_value())
    raw = pb._pb
    raw.properties["when"].timestamp_value.nanos = 123456789
    raw.properties["text"].meaning = 15  # a TEXT meaning, from an old App Engine writer
    raw.properties["list"].meaning = 22
    raw.properties["list"].array_value.values[1].meaning = 15
    raw.properties["list_excluded"].exclude_from_indexes = True
    ours, theirs = _both(pb)
    _same(ours, theirs)
    assert ours["when"].nanosecond == 123456789
    assert ours._meanings["text"][0] == 15 and ours._meanings["list"][0] == (22, [None, 15, None,
                                                                                 None, None])
    # What the client writes back from either is the same protobuf.
    assert helpers.entity_to_protobuf(ours) == helpers.entity_to_protobuf(theirs)


def test_a_list_indexed_in_part_is_refused_as_the_client_refuses_it():
    pb = _entity_pb(_every_value())
    pb._pb.properties["list"].array_value.values[0].exclude_from_indexes = True
    with pytest.raises(ValueError):
        helpers.entity_from_protobuf(pb)
    with pytest.raises(ValueError):
        entity_from_pb(pb._pb)


def test_a_value_with_nothing_set_is_refused_as_the_client_refuses_it():
    pb = _entity_pb(_every_value())
    pb._pb.properties["none"].ClearField("null_value")
    with pytest.raises(ValueError, match="did not have any value set"):
        helpers.entity_from_protobuf(pb)
    with pytest.raises(ValueError, match="did not have any value set"):
        entity_from_pb(pb._pb)


def test_the_timestamp_arithmetic_is_the_clients_at_every_second_of_a_range():
    """The client converts seconds through a float: the same values, edge years included."""
    from google.protobuf import timestamp_pb2

    from pipeline.datastore import decode

    value = entity_pb2.Value()._pb
    for seconds in [-62135596800, -1, 0, 1, 253402300799, 1764936001,
                    *range(4102444800 - 50, 4102444800 + 50)]:
        for nanos in (0, 1, 999, 1000, 999999999):
            value.timestamp_value.CopyFrom(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
            ours = decode._timestamp(value)
            theirs = DatetimeWithNanoseconds.from_timestamp_pb(value.timestamp_value)
            assert (ours, ours.nanosecond, ours.tzinfo) == (theirs, theirs.nanosecond,
                                                           theirs.tzinfo), (seconds, nanos)
