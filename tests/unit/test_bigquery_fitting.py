"""Typed rows fitted to a schema made at launch: what fits is encoded as the export encodes it,
the rest goes to ``__unmapped__`` (``pipeline.core.export_format``, section 4)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import math

import pytest
from google.cloud import datastore

from pipeline.core.export_format import (
    UNMAPPED_COLUMN,
    UNMAPPED_FIELD,
    columns_from_rows,
    encode,
    encode_fitting,
    typed_row,
)
from pipeline.sinks.bigquery.streaming_rows import json_ready

UTC = dt.timezone.utc


# --- encode_fitting / columns_from_rows --------------------------------------------------------

def entity(id_, **props):
    e = datastore.Entity(key=datastore.Key("Item", id_, project="p"))
    e.update(props)
    return e


def sample_columns():
    rows = [typed_row(entity(1, n=1, s="a", tags=["x", "y"], when=dt.datetime(2026, 1, 1),
                             rec={"a": 1, "b": "z"}, **{"order-id": 5, "Name": "N"})),
            typed_row(entity(2, n=2, f=1.5, nums=[1, 2], name="lower"))]
    return columns_from_rows(rows)


def test_columns_from_rows_schema_ends_with_the_unmapped_field():
    result = sample_columns()
    schema = result["schema"]
    assert schema[-1] == UNMAPPED_FIELD and schema[-1]["name"] == UNMAPPED_COLUMN
    assert [f["name"] for f in schema].count(UNMAPPED_COLUMN) == 1
    names = {f["name"] for f in schema}
    assert {"__key__", "n", "s", "tags", "when", "rec", "f", "nums", "Name"} <= names
    assert any(n.startswith("order_id_") for n in names)
    assert any(n.startswith("name_") for n in names)  # case clash with "Name"
    assert columns_from_rows([])["schema"] == [UNMAPPED_FIELD]


def test_fitting_rows_encode_like_encode():
    result = sample_columns()
    for e in [entity(3, n=7, s="b", tags=["q"], when=dt.datetime(2026, 2, 1, 1, 2, 3),
                     rec={"a": 2}, f=2.5, nums=[], **{"order-id": 9, "Name": "M", "name": "m"}),
              entity(4), entity(5, n=None, s=None, tags=[]), entity(6, f=math.nan)]:
        row = typed_row(e)
        out, unmapped = encode_fitting(row, result)
        assert unmapped == 0 and UNMAPPED_COLUMN not in out
        assert out == json.loads(encode(row, result))
        json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("props, unmapped_names", [
    ({"new_prop": 1}, ["new_prop"]),  # absent from the columns
    ({"n": "text"}, ["n"]),  # INTEGER -> STRING
    ({"n": 1.5}, ["n"]),  # INTEGER -> FLOAT
    ({"n": [1, 2]}, ["n"]),  # single -> list
    ({"tags": "x"}, ["tags"]),  # list -> single
    ({"tags": ["x", None]}, ["tags"]),  # a list with a null
    ({"nums": ["a"]}, ["nums"]),  # REPEATED INTEGER -> list of strings
    ({"rec": {"a": 1, "c": True}}, ["rec"]),  # nested record with a new child
    ({"rec": {"a": "one"}}, ["rec"]),  # nested type change
    ({"rec": "flat"}, ["rec"]),  # record -> scalar
    ({"when": dt.date(2026, 1, 1), "s": 5, "other-new": b"\x01"}, ["s", "other-new"]),
])
def test_rows_that_do_not_fit_go_to_unmapped(props, unmapped_names):
    result = sample_columns()
    row = typed_row(entity(9, **{"n": 3, **props}))
    out, count = encode_fitting(row, result)
    assert count == len(unmapped_names)
    unmapped = json.loads(out[UNMAPPED_COLUMN])
    assert set(unmapped) == set(unmapped_names)
    for name in unmapped_names:
        assert name not in out
        expected = props[name]
        if isinstance(expected, bytes):
            expected = base64.b64encode(expected).decode()
        assert unmapped[name] == json_ready(expected), name
    assert out["__key__"]["path"] == [{"kind": "Item", "id": 9, "name": None}]
    if "n" not in props:  # every other property still lands in its own column
        assert out["n"] == 3
    if "when" in props:  # a date fits a TIMESTAMP column
        assert out["when"] == "2026-01-01 00:00:00.000000 UTC"
    json.dumps(out, allow_nan=False)


def test_unmapped_keeps_original_names_and_json_text():
    result = sample_columns()
    row = typed_row(entity(10, **{"order-id": "not an int", "weird name!": [1, "a"],
                                  "Name": 3}))
    out, count = encode_fitting(row, result)
    assert count == 3
    assert isinstance(out[UNMAPPED_COLUMN], str)
    assert json.loads(out[UNMAPPED_COLUMN]) == {"order-id": "not an int", "weird name!": [1, "a"],
                                                "Name": 3}
    assert set(out) == {"__key__", UNMAPPED_COLUMN}
    # Names the columns renamed still use the column name when they fit.
    out, count = encode_fitting(typed_row(entity(11, **{"order-id": 4})), result)
    assert count == 0
    [col] = [c for c in out if c.startswith("order_id_")]
    assert out[col] == 4


def test_conflict_columns_take_anything_as_json_text():
    result = columns_from_rows([typed_row(entity(1, v=1)), typed_row(entity(2, v="a"))])
    [field] = [f for f in result["schema"] if f["name"] == "v"]
    assert field["type"] == "STRING"
    for value, text in [(5, "5"), ("x", '"x"'), ([1, "a"], '[1, "a"]'), ({"k": 1}, '{"k": 1}')]:
        out, count = encode_fitting(typed_row(entity(3, v=value)), result)
        assert count == 0 and out["v"] == text
