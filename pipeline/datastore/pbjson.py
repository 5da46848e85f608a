"""``json_format.MessageToDict`` of a raw ``Entity`` or ``Key`` message, written for the two
messages only: the same dict, key for key and in the same order.

Why: ``MessageToDict`` walks descriptors in pure Python for every field of every value; it was
a fifth of a backup's CPU and a tenth of a transactional migration's (the undo records). Values
of a rare type (geo points; a value with nothing set) are handed to ``MessageToDict`` itself.
``tests/unit/test_pbjson.py`` holds the two against each other on every value type.
"""
from __future__ import annotations

import base64
import math
from typing import Any

from google.protobuf import json_format

__all__ = ["entity_json", "key_json"]


def key_json(pb) -> dict:
    """A raw ``Key``: ``{"partitionId": {...}, "path": [{"kind", "id" | "name"}]}``."""
    out: dict = {}
    if pb.HasField("partition_id"):
        partition = pb.partition_id
        p: dict = {}
        if partition.project_id:
            p["projectId"] = partition.project_id
        if partition.database_id:
            p["databaseId"] = partition.database_id
        if partition.namespace_id:
            p["namespaceId"] = partition.namespace_id
        out["partitionId"] = p
    path = []
    for element in pb.path:
        e: dict = {}
        if element.kind:
            e["kind"] = element.kind
        if element.HasField("id"):
            e["id"] = str(element.id)
        if element.HasField("name"):
            e["name"] = element.name
        path.append(e)
    if path:
        out["path"] = path
    return out


def _double(v: float) -> Any:
    if math.isinf(v):
        return "-Infinity" if v < 0.0 else "Infinity"
    if math.isnan(v):
        return "NaN"
    return v


def _value_json(pb) -> dict:
    kind = pb.WhichOneof("value_type")
    if kind == "string_value" or kind == "blob_value":  # field numbers after meaning's
        out: dict = {}
        if pb.meaning:
            out["meaning"] = pb.meaning
        if kind == "string_value":
            out["stringValue"] = pb.string_value
        else:
            out["blobValue"] = base64.b64encode(pb.blob_value).decode("utf-8")
    else:
        if kind == "integer_value":
            out = {"integerValue": str(pb.integer_value)}
        elif kind == "timestamp_value":
            out = {"timestampValue": pb.timestamp_value.ToJsonString()}
        elif kind == "double_value":
            out = {"doubleValue": _double(pb.double_value)}
        elif kind == "boolean_value":
            out = {"booleanValue": pb.boolean_value}
        elif kind == "null_value":
            out = {"nullValue": None}
        elif kind == "array_value":
            values = pb.array_value.values
            out = {"arrayValue": {"values": [_value_json(v) for v in values]} if values else {}}
        elif kind == "entity_value":
            out = {"entityValue": entity_json(pb.entity_value)}
        elif kind == "key_value":
            out = {"keyValue": key_json(pb.key_value)}
        else:  # a geo point, or nothing set: the general printer
            return json_format.MessageToDict(pb)
        if pb.meaning:
            out["meaning"] = pb.meaning
    if pb.exclude_from_indexes:
        out["excludeFromIndexes"] = True
    return out


def entity_json(pb) -> dict:
    """A raw ``Entity``: ``{"key": ..., "properties": {name: value}}``."""
    out: dict = {}
    if pb.HasField("key"):
        out["key"] = key_json(pb.key)
    properties = pb.properties
    if properties:
        out["properties"] = {name: _value_json(properties[name]) for name in properties}
    return out
