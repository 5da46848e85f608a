"""Query results decoded straight from the response's raw protobuf into the client's ``Entity``.

Why: google-cloud-datastore 2.x wraps every result in proto-plus objects and then builds each
key through ``Key.__init__``'s argument parsing and each timestamp through keyword arguments:
about 7 µs an entity, the largest single cost of a read after Beam's own (docs/performance.md).
This module reads the raw (upb) messages once and builds the same objects: an ``Entity`` equal
to the client's, with the same key, ``exclude_from_indexes`` and meanings, so a job cannot tell
them apart (``tests/unit/test_decode.py`` holds the two decoders against each other on every
value type).

``RawIterator`` is the client's query iterator with only its page step changed (its private
``_process_query_results``, stable across 2.x; the client is pinned below 3).
"""
from __future__ import annotations

import datetime
from typing import Any, Callable

from google.cloud.datastore import helpers
from google.cloud.datastore import query as _query
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from proto.datetime_helpers import DatetimeWithNanoseconds

__all__ = ["RawIterator", "entity_from_pb", "key_from_pb"]

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_new_datetime = datetime.datetime.__new__


def key_from_pb(pb) -> Key:
    """``helpers.key_from_protobuf`` without ``Key.__init__``'s parsing: a key read from
    Datastore is complete and valid, so its fields are set as the constructor would set them."""
    flat: list = []
    path = []
    for element in pb.path:
        kind = element.kind
        flat.append(kind)
        part = {"kind": kind}
        if element.id:
            flat.append(element.id)
            part["id"] = element.id
        if element.name:  # never both (the client appends both too, in this order)
            flat.append(element.name)
            part["name"] = element.name
        path.append(part)
    if not path or len(flat) % 2:  # not a complete key: let the client decide
        return helpers.key_from_protobuf(pb)
    partition = pb.partition_id
    key = Key.__new__(Key)
    key._flat_path = tuple(flat)
    key._parent = None
    key._namespace = partition.namespace_id or None
    key._database = partition.database_id or None
    key._project = partition.project_id or None
    key._path = path
    return key


def _timestamp(pb) -> DatetimeWithNanoseconds:
    """``DatetimeWithNanoseconds.from_timestamp_pb`` without its keyword arguments (the same
    arithmetic, so the same value at every second)."""
    ts = pb.timestamp_value
    nanos = ts.nanos
    bare = _EPOCH + datetime.timedelta(microseconds=int(ts.seconds * 1e6))
    inst = _new_datetime(DatetimeWithNanoseconds, bare.year, bare.month, bare.day, bare.hour,
                         bare.minute, bare.second, nanos // 1000 if nanos > 0 else 0, _UTC)
    inst._nanosecond = nanos or 0
    return inst


def _array(pb) -> list:
    return [_value(v) for v in pb.array_value.values]


def _geo(pb) -> GeoPoint:
    point = pb.geo_point_value
    return GeoPoint(point.latitude, point.longitude)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "string_value": lambda pb: pb.string_value,
    "integer_value": lambda pb: pb.integer_value,
    "double_value": lambda pb: pb.double_value,
    "boolean_value": lambda pb: pb.boolean_value,
    "timestamp_value": _timestamp,
    "key_value": lambda pb: key_from_pb(pb.key_value),
    "blob_value": lambda pb: pb.blob_value,
    "entity_value": lambda pb: entity_from_pb(pb.entity_value),
    "array_value": _array,
    "geo_point_value": _geo,
    "null_value": lambda pb: None,
}


def _value(pb) -> Any:
    decoder = _DECODERS.get(pb.WhichOneof("value_type"))
    if decoder is None:
        raise ValueError("Value protobuf did not have any value set")
    return decoder(pb)


def entity_from_pb(pb) -> Entity:
    """``helpers.entity_from_protobuf`` of a raw ``entity_pb2.Entity``: the same entity."""
    key = key_from_pb(pb.key) if pb.HasField("key") else None
    props: dict = {}
    meanings: dict = {}
    excluded: list = []
    properties = pb.properties
    for name in properties:  # (``items()`` on the map is collections.abc's, in Python)
        value_pb = properties[name]
        kind = value_pb.WhichOneof("value_type")
        if kind == "array_value":
            values = value_pb.array_value.values
            value = [_value(v) for v in values]
            meaning = helpers._get_meaning(value_pb, is_list=True)
            if meaning is not None:
                meanings[name] = (meaning, value)
            if value:
                flags = {v.exclude_from_indexes for v in values}
                if len(flags) != 1:
                    raise ValueError("For an array_value, subvalues must either be all indexed "
                                     "or all excluded from indexes.")
                if flags.pop():
                    excluded.append(name)
            elif value_pb.exclude_from_indexes:
                excluded.append(name)
        else:
            # The common scalars inline (a call each is a third of their cost), the rest by
            # their decoder.
            if kind == "string_value":
                value = value_pb.string_value
            elif kind == "integer_value":
                value = value_pb.integer_value
            elif kind == "double_value":
                value = value_pb.double_value
            elif kind == "timestamp_value":
                value = _timestamp(value_pb)
            else:
                decoder = _DECODERS.get(kind)
                if decoder is None:
                    raise ValueError("Value protobuf did not have any value set")
                value = decoder(value_pb)
            if value_pb.meaning:
                meanings[name] = (value_pb.meaning, value)
            if value_pb.exclude_from_indexes:
                excluded.append(name)
        props[name] = value
    entity = Entity(key=key, exclude_from_indexes=excluded)
    entity.update(props)
    if meanings:
        entity._meanings.update(meanings)
    return entity


def _item_to_entity(_iterator, entity_pb) -> Entity:
    return entity_from_pb(entity_pb)


class RawIterator(_query.Iterator):
    """The client's query iterator, its pages read from the raw response: no proto-plus
    wrapper per result, each entity decoded by ``entity_from_pb``. ``adopt`` turns the iterator
    ``Query.fetch`` made into one (so whatever watches ``Query.fetch`` still sees every query)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.item_to_value = _item_to_entity

    @classmethod
    def adopt(cls, it):
        """``it`` (the client's iterator, before its first page) read the raw way; anything
        else (a test's stand-in) is left as it is."""
        if type(it) is _query.Iterator and it.page_number == 0:
            it.__class__ = cls
            it.item_to_value = _item_to_entity
        return it

    def _process_query_results(self, response_pb):
        batch = response_pb._pb.batch
        self._skipped_results = batch.skipped_results
        more = batch.more_results
        if more == _query._NO_MORE_RESULTS:
            self.next_page_token = None
        else:
            self.next_page_token = _query.base64.urlsafe_b64encode(batch.end_cursor)
        self._end_cursor = None
        if more == _query._NOT_FINISHED:
            self._more_results = True
        elif more in _query._FINISHED:
            self._more_results = False
        else:
            raise ValueError("Unexpected value returned for `more_results`.")
        return [result.entity for result in batch.entity_results]
