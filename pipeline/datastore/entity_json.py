"""The lossless entity format of undo logs (and backups): the entity's protobuf as JSON.

Datastore's own representation, so nothing is lost or guessed: the key with its partition
(project, database, namespace), every value's type (integers, doubles, timestamps, bytes, geo
points, keys, nested entities, arrays, nulls), ``exclude_from_indexes`` and meanings. Not the
BigQuery export's JSON, which is made for loading, not for putting back.
"""
from __future__ import annotations

from typing import Any, Optional

from google.cloud.datastore import helpers
from google.cloud.datastore_v1.types import entity as entity_pb2
from google.protobuf import json_format

from pipeline.datastore import pbjson
from pipeline.datastore.decode import entity_from_pb
from pipeline.datastore.encode import entity_to_pb, key_into


def entity_to_json(entity: Any) -> dict:
    """A ``google.cloud.datastore.Entity`` -> its protobuf as a JSON-ready dict."""
    return pbjson.entity_json(entity_to_pb(entity))


def entity_from_json(data: dict) -> Any:
    """The inverse of ``entity_to_json``."""
    pb = entity_pb2.Entity()._pb
    json_format.ParseDict(data, pb)
    return entity_from_pb(pb)


def key_to_json(key: Any) -> dict:
    pb = entity_pb2.Key.pb()()
    key_into(pb, key)
    return pbjson.key_json(pb)


def key_from_json(data: dict) -> Any:
    k = entity_pb2.Key()
    json_format.ParseDict(data, k._pb)
    return helpers.key_from_protobuf(k)


def fingerprint(entity: Optional[Any]) -> Optional[bytes]:
    """The entity's exact content (key, values, types, index exclusions) as bytes, for telling
    whether two versions are the same; None for no entity."""
    if entity is None:
        return None
    pb = entity_to_pb(entity)
    # The entity's own key without its project and database: the same entity whichever
    # endpoint answered (the emulator leaves the database id out of what it returns).
    pb.key.partition_id.ClearField("project_id")
    pb.key.partition_id.ClearField("database_id")
    return pb.SerializeToString(deterministic=True)


def same(a: Optional[Any], b: Optional[Any]) -> bool:
    """Whether two versions of an entity (or two absences) are identical."""
    return fingerprint(a) == fingerprint(b)


def size_bytes(entity: Any) -> int:
    """The entity's size as Datastore counts it (its protobuf), for the commit size bounds."""
    return entity_to_pb(entity).ByteSize()


def copy_entity(entity: Any) -> Any:
    """A deep copy (through the protobuf): what ``migrate`` gets, so the read version stays."""
    return entity_from_pb(entity_to_pb(entity))


class Pb:
    """An entity's protobuf, made once (``encode.entity_to_pb``; the conversion is still the
    costly part of writing back): its fingerprint, JSON, size and a copy all come from it. The entity must
    not change after the first use."""

    __slots__ = ("entity", "_pb", "_bytes", "_fingerprint")

    def __init__(self, entity: Any):
        self.entity, self._pb, self._bytes, self._fingerprint = entity, None, None, None

    @property
    def pb(self):
        if self._pb is None:
            self._pb = entity_to_pb(self.entity)
        return self._pb

    def serialized(self) -> bytes:
        """The message's bytes (deterministic), key and all: equal for two versions of an
        entity with the same key exactly when their fingerprints are."""
        if self._bytes is None:
            self._bytes = self.pb.SerializeToString(deterministic=True)
        return self._bytes

    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            pb = type(self.pb)()
            pb.CopyFrom(self.pb)
            pb.key.partition_id.ClearField("project_id")
            pb.key.partition_id.ClearField("database_id")
            self._fingerprint = pb.SerializeToString(deterministic=True)
        return self._fingerprint

    def json(self) -> dict:
        return pbjson.entity_json(self.pb)

    def size(self) -> int:
        return self.pb.ByteSize()

    def copy(self) -> Any:
        return entity_from_pb(self.pb)


def fingerprint_of(entity: Optional[Any], pb: Optional[Pb] = None) -> Optional[bytes]:
    """``fingerprint``, from ``pb`` when given (the same entity's, made once)."""
    if entity is None:
        return None
    return pb.fingerprint() if pb is not None else fingerprint(entity)
