"""BigQuery table names: parsing ``--bigquery_table`` and naming a table after a namespace.

Pure functions; nothing here talks to BigQuery.

A namespace may hold characters a table name cannot (``.``, ``-``, ...), so ``{namespace}`` in a
table template is replaced by an escaped form that is a valid table name and never the same for
two namespaces:

- ASCII letters and digits are kept;
- every other character, ``_`` included, becomes ``_`` plus the lowercase hex of each of its
  UTF-8 bytes (``acme.eu`` -> ``acme_2eeu``, ``tenant_1`` -> ``tenant_5f1``, ``é`` -> ``_c3_a9``);
- the default namespace becomes ``__default__`` (no escaped name can start with ``__``, as every
  ``_`` an escape writes is followed by two hex digits).

``namespace_from_table_part`` inverts it.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from pipeline.core.namespaces import namespace_label

NAMESPACE_FIELD = "{namespace}"
KIND_FIELD = "{kind}"
DEFAULT_TABLE_PART = "__default__"
MAX_TABLE_NAME = 1024

_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")
# BigQuery also accepts some Unicode letters, marks, dashes and spaces in table names; we accept
# letters, digits, '_' and '-' (what the escaping produces, and common existing names).
_TABLE = re.compile(r"[A-Za-z0-9_-]{1,1024}")
_KEEP = re.compile(r"[A-Za-z0-9]")


def table_part(namespace: str) -> str:
    """A namespace -> the text that replaces ``{namespace}`` in a table template."""
    if not namespace:
        return DEFAULT_TABLE_PART
    out = []
    for ch in namespace:
        if ch.isascii() and _KEEP.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def namespace_from_table_part(part: str) -> str:
    """The inverse of ``table_part``; ValueError for text it cannot have produced."""
    if part == DEFAULT_TABLE_PART:
        return ""
    raw, i = bytearray(), 0
    while i < len(part):
        ch = part[i]
        if ch == "_":
            hx = part[i + 1:i + 3]
            if not re.fullmatch(r"[0-9a-f]{2}", hx):
                raise ValueError(f"{part!r} is not an escaped namespace")
            raw.append(int(hx, 16))
            i += 3
        elif _KEEP.fullmatch(ch):
            raw.extend(ch.encode("ascii"))
            i += 1
        else:
            raise ValueError(f"{part!r} is not an escaped namespace")
    ns = raw.decode("utf-8")
    if table_part(ns) != part:
        raise ValueError(f"{part!r} is not an escaped namespace")
    return ns


def kind_table_part(kind: str) -> str:
    """A kind -> the text that replaces ``{kind}``: escaped as a namespace is (``Order`` stays
    ``Order``; ``order_line`` becomes ``order_5fline``), so no two kinds share a table."""
    return table_part(kind)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """``project.dataset.table``; ``table`` may hold ``{namespace}`` and ``{kind}``."""

    project: str
    dataset: str
    table: str

    @property
    def templated(self) -> bool:
        return self.by_namespace or self.by_kind

    @property
    def by_namespace(self) -> bool:
        return NAMESPACE_FIELD in self.table

    @property
    def by_kind(self) -> bool:
        return KIND_FIELD in self.table

    def for_namespace(self, namespace: str) -> "TableSpec":
        if not self.by_namespace:
            return self
        return dataclasses.replace(self, table=self.table.replace(NAMESPACE_FIELD,
                                                                   table_part(namespace)))

    def for_unit(self, namespace: str, kind: str) -> "TableSpec":
        """The table of one kind in one namespace."""
        spec = self.for_namespace(namespace)
        if not spec.by_kind:
            return spec
        return dataclasses.replace(spec, table=spec.table.replace(KIND_FIELD,
                                                                   kind_table_part(kind)))

    @property
    def dataset_id(self) -> str:
        return f"{self.project}.{self.dataset}"

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"


FORMS = ("PROJECT:DATASET.TABLE, PROJECT.DATASET.TABLE or DATASET.TABLE (the run's project); "
         "TABLE may contain {namespace} and {kind}")


def parse_table(text: str, default_project: Optional[str]) -> TableSpec:
    """``[PROJECT:|PROJECT.]DATASET.TABLE`` -> TableSpec; ValueError says what is accepted."""
    s = text.strip()
    if ":" in s:
        project, _, rest = s.rpartition(":")
        parts = rest.split(".")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not a table: use {FORMS}")
        dataset, table = parts
    else:
        parts = s.split(".")
        if len(parts) == 3:
            project, dataset, table = parts
        elif len(parts) == 2:
            project, (dataset, table) = default_project or "", parts
        else:
            raise ValueError(f"{text!r} is not a table: use {FORMS}")
    if not project:
        raise ValueError(f"{text!r} names no project: use {FORMS}")
    if not _PROJECT.fullmatch(project):
        raise ValueError(f"{project!r} in {text!r} is not a project id")
    if not _DATASET.fullmatch(dataset):
        raise ValueError(f"dataset {dataset!r} in {text!r} is not valid: letters, digits and _")
    if table.count(NAMESPACE_FIELD) > 1 or table.count(KIND_FIELD) > 1 or not _TABLE.fullmatch(
            table.replace(NAMESPACE_FIELD, "x").replace(KIND_FIELD, "x")):
        raise ValueError(f"table {table!r} in {text!r} is not valid: letters, digits, _ and -, "
                         f"with at most one {NAMESPACE_FIELD} and one {KIND_FIELD}")
    return TableSpec(project, dataset, table)


def check_table_name(spec: TableSpec, namespace: str, kind: str = "") -> None:
    """A unit's table name fits BigQuery's length limit (ValueError otherwise)."""
    name = spec.for_unit(namespace, kind).table if kind else spec.for_namespace(namespace).table
    if len(name) > MAX_TABLE_NAME:
        where = f"namespace {namespace_label(namespace)}" + (f", kind {kind}" if kind else "")
        raise ValueError(f"the table for {where} would be named {name[:60]}... "
                         f"({len(name)} characters; BigQuery allows {MAX_TABLE_NAME})")
