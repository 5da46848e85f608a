"""The export format: Datastore entities as BigQuery-loadable JSON rows, and their schema.

Used by ``export_entities`` (files for ``bq load``) and ``stream_entities`` (streamed rows).
Pure functions; nothing here talks to a service or needs Beam.

Two steps, because what a column becomes depends on every entity:

1. ``typed_row(entity)`` (in the job's ``next``): the entity as a *typed row*, each value tagged
   with its type: ``(type, value)``; ``__key__`` holds the key.
2. The types and shapes seen per property (and per nested property) are collected
   (``add_fields``, ``merge_fields``: the files sink merges them across workers with a
   ``CombineFn``), and turned into the *columns* (column name, BigQuery type and mode per
   property) and the schema (``columns_from_fields``). ``encode(row, result)`` then writes each
   row as one line.

Conversion:

- key (``__key__``, and key-valued properties): a RECORD ``{namespace, path: [{kind, id, name}],
  id, name}`` (``namespace`` is ``""`` for the default namespace; ``id``/``name`` of the last
  path element);
- datetimes: TIMESTAMP, as ``YYYY-MM-DD HH:MM:SS.ffffff UTC``;
- embedded entities: RECORD (their own fields merged across entities); lists: REPEATED fields;
- bytes: BYTES, base64; geo points: RECORD ``{latitude, longitude}``;
- floats JSON cannot hold (NaN, +inf, -inf): written as null, and counted (the export job's
  counter ``nonfinite_floats``);
- null and missing properties are both omitted from the row (BigQuery reads NULL, or an
  empty array for a REPEATED field).

Messy data, never a load BigQuery rejects:

- **a property with different types** across entities (or within one list, or a list here and
  a single value there, or a list holding nulls) becomes a ``STRING`` (NULLABLE) column whose
  values are the JSON text of the converted value (``5`` -> ``"5"``, ``"x"`` -> ``"\\"x\\""``,
  ``[1, "a"]`` -> ``"[1, \\"a\\"]"``); the field's description says which types were seen.
- **names that are not valid column names** (``[A-Za-z_][A-Za-z0-9_]*``, at most 300
  characters, not one of BigQuery's reserved prefixes ``_TABLE_``, ``_FILE_``, ``_PARTITION``,
  ``_ROW_TIMESTAMP``, ``__ROOT__``, ``_COLIDENTIFIER``): every character outside
  ``[A-Za-z0-9_]`` becomes ``_``, ``p_`` is prepended when the result starts with a digit or a
  reserved prefix, and ``_`` plus 8 hex digits of the SHA-1 of the original name is appended
  (``order-id`` -> ``order_id_1c9f2a3b``);
- **names differing only in case** (BigQuery column names ignore case): the name that sorts first
  (by code point) keeps its name, the others get ``_`` plus the 8-hex-digit hash appended
  (``Name`` and ``name``: ``Name`` stays, ``name`` -> ``name_<hash>``).

Every renamed column's description records the original property name
(``Datastore property "order-id"``), so the rename is lossless; nothing else is renamed.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
from typing import Any, Callable, Optional

NULL, BOOLEAN, INTEGER, FLOAT, STRING, BYTES, TIMESTAMP = (
    "NULL", "BOOLEAN", "INTEGER", "FLOAT", "STRING", "BYTES", "TIMESTAMP")
KEY, GEOPOINT, RECORD, LIST = "KEY", "GEOPOINT", "RECORD", "LIST"
KEY_COLUMN = "__key__"
_UTC = dt.timezone.utc
NONFINITE_COUNTER = "nonfinite_floats"

VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
RESERVED_PREFIXES = ("_table_", "_file_", "_partition", "_row_timestamp", "__root__",
                     "_colidentifier")

KEY_FIELDS = [
    {"name": "namespace", "type": "STRING", "mode": "NULLABLE"},
    {"name": "path", "type": "RECORD", "mode": "REPEATED", "fields": [
        {"name": "kind", "type": "STRING", "mode": "NULLABLE"},
        {"name": "id", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "name", "type": "STRING", "mode": "NULLABLE"}]},
    {"name": "id", "type": "INTEGER", "mode": "NULLABLE"},
    {"name": "name", "type": "STRING", "mode": "NULLABLE"},
]
GEOPOINT_FIELDS = [{"name": "latitude", "type": "FLOAT", "mode": "NULLABLE"},
                   {"name": "longitude", "type": "FLOAT", "mode": "NULLABLE"}]


# --- 1. entity -> typed row --------------------------------------------------------------------

def timestamp_text(t: dt.datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff UTC`` (naive: taken as UTC); formatted by hand, as
    ``strftime`` would, for the years it pads alike (it is the costlier call per value)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=_UTC)
    elif t.tzinfo is not _UTC:
        t = t.astimezone(_UTC)
    if t.year < 1000:  # strftime's %Y does not pad these on every platform
        return t.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"
    return (f"{t.year}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            f".{t.microsecond:06d} UTC")


def key_record(key) -> dict:
    """A key as its RECORD, from its flat path (``Key.path`` deep-copies the path each call)."""
    flat = key.flat_path
    path = []
    for i in range(0, len(flat), 2):
        ident = flat[i + 1] if i + 1 < len(flat) else None
        path.append({"kind": flat[i], "id": ident if isinstance(ident, int) else None,
                     "name": ident if isinstance(ident, str) else None})
    last = path[-1] if path else {"id": None, "name": None}
    return {"namespace": key.namespace or "", "path": path,
            "id": last["id"], "name": last["name"]}


def typed_value(v: Any, on_nonfinite: Optional[Callable[[], None]] = None) -> tuple:
    """One Datastore value -> (type, JSON-ready value); RECORD and LIST values hold typed values."""
    if v is None:
        return (NULL, None)
    if isinstance(v, bool):
        return (BOOLEAN, v)
    if isinstance(v, int):
        return (INTEGER, v)
    if isinstance(v, float):
        if not math.isfinite(v):
            if on_nonfinite:
                on_nonfinite()
            return (FLOAT, None)
        return (FLOAT, v)
    if isinstance(v, str):
        return (STRING, v)
    if isinstance(v, (bytes, bytearray)):
        return (BYTES, base64.b64encode(bytes(v)).decode("ascii"))
    if isinstance(v, dt.datetime):
        return (TIMESTAMP, timestamp_text(v))
    if hasattr(v, "flat_path") and hasattr(v, "namespace"):
        return (KEY, key_record(v))
    if hasattr(v, "latitude") and hasattr(v, "longitude"):
        return (GEOPOINT, {"latitude": v.latitude, "longitude": v.longitude})
    if isinstance(v, dict):
        return (RECORD, {str(k): typed_value(x, on_nonfinite) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return (LIST, [typed_value(x, on_nonfinite) for x in v])
    if isinstance(v, dt.date):
        return (TIMESTAMP, timestamp_text(dt.datetime(v.year, v.month, v.day)))
    return (STRING, str(v))


def typed_row(entity, on_nonfinite: Optional[Callable[[], None]] = None) -> dict:
    """An entity -> {"__key__": (KEY, ...), property: (type, value), ...}."""
    row = {KEY_COLUMN: (KEY, key_record(entity.key))}
    for name, v in entity.items():
        row[str(name)] = typed_value(v, on_nonfinite)
    return row


def plain(tv: tuple) -> Any:
    """A typed value -> its JSON-ready value (original names)."""
    t, v = tv
    if t == RECORD:
        return {k: plain(x) for k, x in v.items()}
    if t == LIST:
        return [plain(x) for x in v]
    return v


# --- 2. types seen -> columns and schema -------------------------------------------------------

def _acc() -> dict:
    # types: of single values; elements: of list elements; flags: what shapes were seen.
    return {"types": set(), "elements": set(), "single": False, "list": False,
            "list_null": False, "children": {}}


def _add_value(acc: dict, tv: tuple) -> None:
    t, v = tv
    if t == LIST:
        acc["list"] = True
        for el in v:
            et, ev = el
            if et == NULL or ev is None:  # null (or NaN) in a list: BigQuery arrays refuse null
                acc["list_null"] = True
            elif et == LIST:  # cannot happen in Datastore; keep it a conflict
                acc["elements"].add(LIST)
            else:
                acc["elements"].add(et)
                if et == RECORD:
                    add_fields(acc["children"], ev)
        return
    if t == NULL:
        return
    acc["single"] = True
    acc["types"].add(t)
    if t == RECORD:
        add_fields(acc["children"], v)


def add_fields(fields: dict, row: dict) -> None:
    """Add one typed row's types and shapes to ``fields`` (property -> what was seen)."""
    for name, tv in row.items():
        acc = fields.get(name)
        if acc is None:
            acc = fields[name] = _acc()
        _add_value(acc, tv)


def merge_fields(into: dict, other: dict) -> None:
    """Merge what another worker saw (``add_fields``' result) into ``into``."""
    for name, b in other.items():
        a = into.get(name)
        if a is None:
            into[name] = b
            continue
        a["types"] |= b["types"]
        a["elements"] |= b["elements"]
        a["single"] |= b["single"]
        a["list"] |= b["list"]
        a["list_null"] |= b["list_null"]
        merge_fields(a["children"], b["children"])


def _hash8(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def valid_column(name: str) -> bool:
    return bool(VALID_NAME.fullmatch(name)) and not name.lower().startswith(RESERVED_PREFIXES)


def column_names(names) -> dict:
    """Property names of one record -> their column names (see the module's doc)."""
    out = {}
    valid = sorted(n for n in names if valid_column(n))
    by_lower: dict = {}
    for n in valid:
        by_lower.setdefault(n.lower(), []).append(n)
    for group in by_lower.values():
        out[group[0]] = group[0]
        for n in group[1:]:
            out[n] = f"{n[:290]}_{_hash8(n)}"
    for n in names:
        if n in out:
            continue
        s = re.sub(r"[^A-Za-z0-9_]", "_", n)
        if not s or s[0].isdigit() or s.lower().startswith(RESERVED_PREFIXES):
            s = "p_" + s
        out[n] = f"{s[:280]}_{_hash8(n)}"
    seen = set()
    for n in sorted(out):
        c = out[n]
        if c.lower() in seen:  # astronomically unlikely: fall back to a longer hash
            c = out[n] = f"{c[:250]}_{hashlib.sha1(n.encode('utf-8')).hexdigest()}"
        seen.add(c.lower())
    return out


def _columns(fields: dict) -> dict:
    names = column_names(list(fields))
    return {name: _column(name, names[name], acc) for name, acc in sorted(fields.items())}


def _column(name: str, column: str, acc: dict) -> dict:
    notes = []
    if column != name:
        notes.append(f"Datastore property {json.dumps(name, ensure_ascii=False)}")
    single, repeated = acc["types"], acc["elements"]
    conflict = None
    if acc["single"] and acc["list"]:
        conflict = f"single values ({', '.join(sorted(single))}) and lists"
    elif acc["list"] and acc["list_null"]:
        conflict = "lists holding nulls"
    elif acc["list"] and len(repeated) > 1:
        conflict = f"list elements of types {', '.join(sorted(repeated))}"
    elif not acc["list"] and len(single) > 1:
        conflict = f"types {', '.join(sorted(single))}"
    if conflict:
        notes.append(f"{conflict} seen: values are JSON text")
        return {"column": column, "type": STRING, "mode": "NULLABLE", "conflict": True,
                "fields": None, "description": "; ".join(notes)}
    types = repeated if acc["list"] else single
    t = next(iter(types)) if types else STRING
    col = {"column": column, "type": t, "mode": "REPEATED" if acc["list"] else "NULLABLE",
           "conflict": False, "fields": None, "description": "; ".join(notes)}
    if t == RECORD:
        col["fields"] = _columns(acc["children"])
    return col


def schema_fields(columns: dict) -> list:
    """The columns -> a BigQuery schema (the JSON list ``bq load`` takes)."""
    out = []
    for p in columns.values():
        t = p["type"]
        f = {"name": p["column"], "mode": p["mode"]}
        if t == KEY:
            f.update(type="RECORD", fields=KEY_FIELDS)
        elif t == GEOPOINT:
            f.update(type="RECORD", fields=GEOPOINT_FIELDS)
        elif t == RECORD:
            f.update(type="RECORD", fields=schema_fields(p["fields"]))
            if not f["fields"]:  # BigQuery refuses a RECORD without fields
                f.update(type="STRING", mode="NULLABLE")
                f.pop("fields")
                p["empty_record"] = True
        else:
            f["type"] = t
        f = {"name": f["name"], "type": f["type"], "mode": f["mode"],
             **({"fields": f["fields"]} if "fields" in f else {})}
        if p["description"]:
            f["description"] = p["description"][:1024]
        out.append(f)
    return out


def columns_from_fields(fields: dict) -> dict:
    """What was seen (``add_fields``) -> {"columns": property -> column, "schema": [...]}."""
    columns = _columns(fields)
    return {"columns": columns, "schema": schema_fields(columns)}


# --- 3. typed row + columns -> a JSON line -----------------------------------------------------

def _encode_value(tv: tuple, p: dict) -> Any:
    t, v = tv
    if p["conflict"] or p.get("empty_record"):
        return json.dumps(plain(tv), ensure_ascii=False, sort_keys=True)
    if t == LIST:
        return [_encode_value(x, {**p, "mode": "NULLABLE"}) for x in v]
    if t == RECORD:
        return _encode_fields(v, p["fields"])
    return v


def _encode_fields(row: dict, columns: dict) -> dict:
    out = {}
    for name, tv in row.items():
        if tv[0] == NULL or (tv[1] is None and tv[0] != LIST):
            continue
        p = columns[name]
        out[p["column"]] = _encode_value(tv, p)
    return out


def encode(row: dict, result: dict) -> str:
    """A typed row -> one line of JSON, as ``result`` (``columns_from_fields``' output) says."""
    return json.dumps(_encode_fields(row, result["columns"]), ensure_ascii=False, sort_keys=True)


def schema_text(result: dict) -> str:
    """schema.json's text."""
    return json.dumps(result["schema"], indent=2, ensure_ascii=False) + "\n"


# --- 4. streaming: a schema fixed before reading, and rows that may not fit it ------------------

UNMAPPED_COLUMN = "__unmapped__"
UNMAPPED_COUNTER = "unmapped_properties"
UNMAPPED_FIELD = {
    "name": UNMAPPED_COLUMN, "type": "STRING", "mode": "NULLABLE",
    "description": "JSON object of the properties that did not fit the table's schema (a name or "
                   "type not seen when the schema was made), with their original names"}


def columns_from_rows(rows) -> dict:
    """Typed rows (e.g. a launch-time sample) -> ``columns_from_fields``' output, plus the
    unmapped column."""
    fields: dict = {}
    for row in rows:
        add_fields(fields, row)
    result = columns_from_fields(fields)
    result["schema"] = result["schema"] + [UNMAPPED_FIELD]
    return result


def _fits(tv: tuple, p: dict) -> bool:
    t, v = tv
    if p["conflict"] or p.get("empty_record"):
        return True  # JSON text holds anything
    if t == LIST:
        return p["mode"] == "REPEATED" and all(
            x[0] != NULL and x[1] is not None and _fits_one(x, p) for x in v)
    return p["mode"] != "REPEATED" and _fits_one(tv, p)


def _fits_one(tv: tuple, p: dict) -> bool:
    t, v = tv
    if t != p["type"]:
        return False
    if t == RECORD:
        children = p["fields"] or {}
        return all(x[0] == NULL or (x[1] is None and x[0] != LIST)
                   or (name in children and _fits(x, children[name])) for name, x in v.items())
    return True


def encode_fitting(row: dict, result: dict) -> tuple:
    """A typed row -> (row for the columns in ``result``, number of unmapped properties).

    Properties that fit their column are encoded as ``encode`` does; any other (a name the
    schema lacks, or another type or shape) goes, whole and with its original name, into the
    ``__unmapped__`` column as JSON text: nothing is dropped, and BigQuery never sees a field
    it would reject."""
    columns = result["columns"]
    out, unmapped = {}, {}
    for name, tv in row.items():
        if tv[0] == NULL or (tv[1] is None and tv[0] != LIST):
            continue
        p = columns.get(name)
        if p is not None and _fits(tv, p):
            out[p["column"]] = _encode_value(tv, p)
        else:
            unmapped[name] = plain(tv)
    if unmapped:
        out[UNMAPPED_COLUMN] = json.dumps(unmapped, ensure_ascii=False, sort_keys=True)
    return out, len(unmapped)
