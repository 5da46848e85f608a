"""The hand-written JSON of entities and keys (pipeline.datastore.pbjson) against
``json_format.MessageToDict``: the same dict, in the same order, on every value type."""
from __future__ import annotations

import json

import pytest
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from google.protobuf import json_format

from pipeline.datastore.encode import entity_to_pb
from pipeline.datastore.pbjson import entity_json, key_json
from tests.unit.test_decode import _entity_pb, _every_value


def _same(ours: dict, theirs: dict) -> None:
    assert json.dumps(ours) == json.dumps(theirs)  # NaN as NaN, and the keys' order


def test_every_value_type_reads_as_message_to_dict_writes_it():
    pb = _entity_pb(_every_value())._pb
    _same(entity_json(pb), json_format.MessageToDict(pb))


def test_meanings_nanoseconds_exclusions_and_defaults_read_alike():
    pb = _entity_pb(_every_value())._pb
    pb.properties["when"].timestamp_value.nanos = 123456789
    pb.properties["epoch"].timestamp_value.nanos = 1000000
    pb.properties["text"].meaning = 15
    pb.properties["blob"].meaning = 16
    pb.properties["int"].meaning = 7
    pb.properties["list"].meaning = 22
    pb.properties["list"].array_value.values[1].meaning = 15
    pb.properties["list"].array_value.values[0].exclude_from_indexes = True
    pb.properties["none"].exclude_from_indexes = True
    pb.properties["nothing"].SetInParent()  # a value with nothing set
    _same(entity_json(pb), json_format.MessageToDict(pb))


@pytest.mark.parametrize("value", [
    0, -1, 2**63 - 1, -2**63, 0.0, -0.0, 1e-300, 1.5, float("nan"), float("inf"),
    float("-inf"), "", "x\u2028y", b"", b"\x00\xff", True, False, None, [], [0], [[]], {},
    GeoPoint(0.0, 0.0), GeoPoint(-0.0, 1.0), GeoPoint(51.5, -0.12),
    Key("A", 1, project="p"), Key("A", "x", "B", 0, project="p", namespace="n", database="d"),
    Key("A", project="p"), Entity(), [Entity(key=Key("E", "e", project="p"))],
], ids=repr)
def test_one_value_reads_as_message_to_dict_writes_it(value):
    e = Entity(key=Key("Item", "k", project="p", namespace="acme"),
               exclude_from_indexes=("excluded",))
    e["v"] = value
    e["excluded"] = value
    pb = entity_to_pb(e)
    _same(entity_json(pb), json_format.MessageToDict(pb))


@pytest.mark.parametrize("key", [
    Key("A", 1, project="p"), Key("A", "x", "B", 2, project="p", namespace="n", database="d"),
    Key("A", project="p"), Key("A", 7, project="p"),
], ids=str)
def test_a_key_reads_as_message_to_dict_writes_it(key):
    pb = key.to_protobuf()._pb
    _same(key_json(pb), json_format.MessageToDict(pb))


def test_an_empty_entity_and_an_empty_key():
    pb = entity_to_pb(Entity())
    _same(entity_json(pb), json_format.MessageToDict(pb))
    pb.key.SetInParent()
    _same(entity_json(pb), json_format.MessageToDict(pb))
