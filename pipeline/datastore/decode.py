"""Query results decoded straight from the response's raw protobuf into the client's ``Entity``.

Why: google-cloud-datastore 2.x wraps every result in proto-plus objects and then builds each
key through ``Key.__init__``'s argument parsing and each timestamp through keyword arguments:
about 7 µs an entity, the largest single cost of a read after Beam's own (docs/performance.md).
This module reads the raw (upb) messages once and builds the same objects: an ``Entity`` equal
to the client's, with the same key, ``exclude_from_indexes`` and meanings, so a job cannot tell
them apart (``tests/unit/test_decode.py`` holds the two decoders against each other on every
value type).

``RawIterator`` is the client's query iterator with only its page step changed (its private
``_process_query_results``, stable across 2.x; the client is pinned below 3), and it **reads
ahead**: when a page arrives that Datastore says is not the last (``NOT_FINISHED``), the next
page's request is built at once and sent from a small thread pool, so the backend works on it
while this thread decodes and maps the page in hand (on one worker thread the two used to take
turns). Only the page the client itself would ask for next is asked for, with the same cursor and
limit; all the iterator's state (cursor, counts) changes on the reading thread alone, when it
takes the page; an error of the call ahead is raised there, as the call's own would be. A page
read ahead is wasted only when the reader abandons the query (a claim lost to a split); a reader
that stops at a time budget takes the page in hand first (``stop_reading_ahead``).
"""
from __future__ import annotations

import datetime
from typing import Any, Callable, Optional

from google.api_core import page_iterator
from google.cloud.datastore import helpers
from google.cloud.datastore import query as _query
from google.cloud.datastore_v1.types import entity as entity_pb2
from google.cloud.datastore.entity import Entity
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore.key import Key
from proto.datetime_helpers import DatetimeWithNanoseconds

from pipeline.core.pools import shared_pool

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


#: Threads sending the calls ahead, for the whole process (a call ahead not started when its
#: reader needs it is made by the reader itself: a busy pool never makes a reader wait longer).
READ_AHEAD_THREADS = 16


class RawIterator(_query.Iterator):
    """The client's query iterator, its pages read from the raw response: no proto-plus
    wrapper per result, each entity decoded by ``entity_from_pb``; the next page read ahead
    (module docstring). ``adopt`` turns the iterator ``Query.fetch`` made into one (so whatever
    watches ``Query.fetch`` still sees every query)."""

    read_ahead = True
    _ahead: Optional[tuple] = None  # (the next page's request, its call's future)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.item_to_value = _item_to_entity

    @classmethod
    def adopt(cls, it, read_ahead: bool = True):
        """``it`` (the client's iterator, before its first page) read the raw way; anything
        else (a test's stand-in) is left as it is."""
        if type(it) is _query.Iterator and it.page_number == 0:
            it.__class__ = cls
            it.item_to_value = _item_to_entity
            it.read_ahead = read_ahead
        return it

    def stop_reading_ahead(self) -> bool:
        """No call ahead from now on; True when a page is ahead already (paid for: the reader
        should take it before it stops)."""
        self.read_ahead = False
        return self._ahead is not None

    def _simple(self) -> bool:
        """A query this iterator builds itself: no offset (its re-run loop), no explain
        options, no client transaction (the client's own page step does those)."""
        return (not self._offset and self._query._explain_options is None
                and self.client.current_transaction is None)

    def _request(self, taken: int = 0) -> dict:
        """The RunQuery request for the page after ``taken`` more results, as the client's
        ``_next_page`` builds it (``_build_protobuf`` from the cursor and the count)."""
        self.num_results += taken
        try:
            query = self._build_protobuf()
        finally:
            self.num_results -= taken
        request = {
            "project_id": self._query.project,
            "partition_id": entity_pb2.PartitionId(project_id=self._query.project,
                                                   database_id=self.client.database,
                                                   namespace_id=self._query.namespace),
            "read_options": helpers.get_read_options(self._eventual, None, self._read_time,
                                                     None),
            "query": query,
        }
        helpers.set_database_id_to_request(request, self.client.database)
        return request

    def _call(self, request: dict):
        kwargs = {}
        if self._retry is not None:
            kwargs["retry"] = self._retry
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        return self.client._datastore_api.run_query(request=request, **kwargs)

    def _next_page(self):
        if not self._more_results:
            return None
        ahead, self._ahead = self._ahead, None
        if ahead is None and not self._simple():
            return super()._next_page()
        if ahead is None:
            response = self._call(self._request())
        else:
            request, future = ahead
            # not started (the pool is busy): made here, not waited for
            response = self._call(request) if future.cancel() else future.result()
        entity_pbs = self._process_query_results(response)
        if self._more_results and self.read_ahead and (
                self.max_results is None
                or self.max_results - self.num_results - len(entity_pbs) > 0):
            request = self._request(len(entity_pbs))
            pool = shared_pool("read-ahead", READ_AHEAD_THREADS)
            self._ahead = (request, pool.submit(self._call, request))
        return page_iterator.Page(self, entity_pbs, self.item_to_value)

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
