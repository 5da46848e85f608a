"""Entities into the raw protobuf, as ``helpers.entity_to_protobuf`` makes them, at less CPU.

Why: the client builds each entity through proto-plus (a map wrapper made again for every
property, keys through proto-plus path elements, the path deep-copied): most of a writing run's
CPU went there (a transactional migration called it four to five times an entity: fingerprint,
unchanged check, size, undo record, copy). This module writes the raw (upb) message directly;
the result is the same message, byte for byte (``tests/unit/test_encode.py`` holds the two
against each other on every value type, meanings and excluded indexes included).
"""
from __future__ import annotations

import datetime
from typing import Any

from google.cloud._helpers import _datetime_to_pb_timestamp
from google.cloud.datastore import helpers
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from google.cloud.datastore_v1.types import entity as entity_pb2

__all__ = ["entity_into", "entity_to_pb", "key_into"]

_RawEntity = entity_pb2.Entity.pb()


def key_into(target, key: Key) -> None:
    """Write ``key`` into the raw ``Key`` message ``target`` (empty), as ``Key.to_protobuf``
    does, from its flat path (``Key.path`` is a deep copy each call)."""
    if key.project is None:  # the client's own rules for a key without a project
        target.CopyFrom(key.to_protobuf()._pb)
        return
    partition = target.partition_id
    partition.project_id = key.project
    if key.database:
        partition.database_id = key.database
    if key.namespace:
        partition.namespace_id = key.namespace
    flat = key.flat_path
    path = target.path
    for i in range(0, len(flat), 2):
        element = path.add()
        element.kind = flat[i]
        if i + 1 < len(flat):
            ident = flat[i + 1]
            if isinstance(ident, str):
                element.name = ident
            else:
                element.id = ident


def _set_value(value_pb, val: Any) -> None:
    """``helpers._set_protobuf_value`` on a raw ``Value``: the same types, in the same order of
    checks (a bool before an int, a datetime to microseconds as the client rounds it)."""
    if isinstance(val, datetime.datetime):
        value_pb.timestamp_value.CopyFrom(_datetime_to_pb_timestamp(val))
    elif isinstance(val, Key):
        value_pb.key_value.SetInParent()
        key_into(value_pb.key_value, val)
    elif isinstance(val, bool):
        value_pb.boolean_value = val
    elif isinstance(val, float):
        value_pb.double_value = val
    elif isinstance(val, int):
        value_pb.integer_value = val
    elif isinstance(val, str):
        value_pb.string_value = val
    elif isinstance(val, bytes):
        value_pb.blob_value = val
    elif isinstance(val, Entity):
        value_pb.entity_value.SetInParent()
        _entity_into(value_pb.entity_value, val)
    elif isinstance(val, dict):
        embedded = Entity(key=None)
        embedded.update(val)
        value_pb.entity_value.SetInParent()
        _entity_into(value_pb.entity_value, embedded)
    elif isinstance(val, list):
        value_pb.array_value.SetInParent()
        values = value_pb.array_value.values
        for item in val:
            _set_value(values.add(), item)
    elif isinstance(val, GeoPoint):
        value_pb.geo_point_value.SetInParent()
        value_pb.geo_point_value.latitude = val.latitude
        value_pb.geo_point_value.longitude = val.longitude
    elif val is None:
        value_pb.null_value = 0
    else:
        raise ValueError("Unknown protobuf attr type", type(val))


def _entity_into(target, entity: Entity) -> None:
    if entity.key is not None:
        target.key.SetInParent()
        key_into(target.key, entity.key)
    properties = target.properties
    excluded = entity.exclude_from_indexes
    meanings = entity._meanings
    for name, value in entity.items():
        value_pb = properties.get_or_create(name)
        _set_value(value_pb, value)
        is_list = isinstance(value, list)
        if name in excluded:
            if is_list:
                for sub in value_pb.array_value.values:
                    sub.exclude_from_indexes = True
            else:
                value_pb.exclude_from_indexes = True
        if name in meanings:
            helpers._set_pb_meaning_from_entity(entity, name, value, value_pb, is_list=is_list)


def entity_into(target, entity: Entity) -> None:
    """Write ``entity`` into the raw ``Entity`` message ``target`` (empty): a commit's
    mutation is filled in place, without a message made and copied."""
    _entity_into(target, entity)


def entity_to_pb(entity: Entity):
    """``helpers.entity_to_protobuf(entity)._pb``: the raw ``Entity`` message."""
    pb = _RawEntity()
    _entity_into(pb, entity)
    return pb
