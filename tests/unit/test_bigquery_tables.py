"""BigQuery table names: ``--bigquery_table`` parsed, and a namespace escaped into a table
name and back (``pipeline.sinks.bigquery.tables``)."""
from __future__ import annotations

import random
import re

import pytest

from pipeline.sinks.bigquery.tables import (
    DEFAULT_TABLE_PART,
    FORMS,
    MAX_TABLE_NAME,
    TableSpec,
    check_table_name,
    namespace_from_table_part,
    parse_table,
    table_part,
)

PART = re.compile(r"[A-Za-z0-9_]+")

# --- namespace <-> table part -------------------------------------------------------------------

TRICKY = ["", "a", "A", "acme.eu", "tenant-1", "tenant_1", "a_2e", "_", "__", "__default__",
          "default", "é", "日本", "\U0001F600", "a b", "0", "x" * 100, "é" * 100, "_2e",
          "a.b-c_d", "ß\u00a0\u200b", "\U0010FFFF", "Z9"]


@pytest.mark.parametrize("ns", TRICKY)
def test_table_part_round_trips(ns):
    part = table_part(ns)
    assert PART.fullmatch(part), part
    assert namespace_from_table_part(part) == ns
    if ns:
        assert not part.startswith("__")


def test_table_part_examples():
    assert table_part("") == DEFAULT_TABLE_PART == "__default__"
    assert table_part("acme") == "acme"
    assert table_part("acme.eu") == "acme_2eeu"
    assert table_part("tenant_1") == "tenant_5f1"
    assert table_part("tenant-1") == "tenant_2d1"
    assert table_part("é") == "_c3_a9"
    assert table_part("__default__") != DEFAULT_TABLE_PART


def test_table_part_is_injective_over_many_namespaces():
    rng = random.Random(20261127)
    alphabet = list("aAzZ09._-_ ") + ["é", "日", "\U0001F600", "ß", "_2e", "5f"]
    namespaces = {""} | set(TRICKY)
    while len(namespaces) < 20000:
        namespaces.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
    seen: dict = {}
    for ns in namespaces:
        part = table_part(ns)
        assert PART.fullmatch(part), (ns, part)
        assert part not in seen, f"{ns!r} and {seen[part]!r} both map to {part!r}"
        seen[part] = ns
        if ns:
            assert not part.startswith("__"), (ns, part)
        assert namespace_from_table_part(part) == ns


@pytest.mark.parametrize("text", [
    "a_zz", "a_2", "_", "a.b", "_41", "_5F", "a_2E", "___", "__default", "x-y", "é", "",
    "_ff",  # not UTF-8
    "_c3",  # truncated UTF-8
    "_30",  # "0", which table_part keeps as is
])
def test_namespace_from_table_part_refuses_what_table_part_cannot_produce(text):
    with pytest.raises(ValueError):
        namespace_from_table_part(text)


# --- parse_table --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("my-proj:ds.t", ("my-proj", "ds", "t")),
    ("example.com:my-proj:ds.t", ("example.com:my-proj", "ds", "t")),
    ("my-proj.ds.t", ("my-proj", "ds", "t")),
    ("ds.t", ("run-proj", "ds", "t")),
    ("  ds.t  ", ("run-proj", "ds", "t")),
    ("ds_1.T-x_9", ("run-proj", "ds_1", "T-x_9")),
    ("p:ds.t_{namespace}", ("p", "ds", "t_{namespace}")),
    ("ds.{namespace}", ("run-proj", "ds", "{namespace}")),
    ("p.ds.{namespace}_rows", ("p", "ds", "{namespace}_rows")),
])
def test_parse_table_forms(text, want):
    spec = parse_table(text, "run-proj")
    assert (spec.project, spec.dataset, spec.table) == want
    assert spec.templated == ("{namespace}" in want[2])


def test_table_spec_methods():
    spec = parse_table("p:ds.t_{namespace}", None)
    assert spec.templated
    assert str(spec) == "p.ds.t_{namespace}" and spec.dataset_id == "p.ds"
    assert spec.for_namespace("acme.eu") == TableSpec("p", "ds", "t_acme_2eeu")
    assert str(spec.for_namespace("")) == "p.ds.t___default__"
    assert not spec.for_namespace("a").templated
    plain = parse_table("p:ds.t", None)
    assert not plain.templated and plain.for_namespace("anything") is plain
    assert str(plain) == "p.ds.t"
    assert hash(spec) == hash(TableSpec("p", "ds", "t_{namespace}"))  # frozen, usable as a key


@pytest.mark.parametrize("text", [
    "t", "", "a.b.c.d", "p:ds", "p:ds.t.x", "p:", "ds.", ".t", "ds..t",
    "ds-1.t", "d s.t", "dé.t", "ds.t t", "ds.t.", "ds.t/x", "ds.té", "ds.t$",
    "ds.{namespace}{namespace}", "ds.a{namespace}b{namespace}", "ds.{name}", "ds.{NAMESPACE}",
    "P:ds.t", "1proj:ds.t", "proj-:ds.t", "pr_oj.ds.t", "p:{namespace}.t",
    "ds." + "t" * (MAX_TABLE_NAME + 1), ("d" * 1025) + ".t",
])
def test_parse_table_refuses(text):
    with pytest.raises(ValueError):
        parse_table(text, "run-proj")


def test_parse_table_errors_say_what_is_accepted():
    for text in ["t", "a.b.c.d", "p:ds"]:
        with pytest.raises(ValueError) as e:
            parse_table(text, "run-proj")
        assert FORMS in str(e.value) and repr(text) in str(e.value)
    with pytest.raises(ValueError, match="dataset"):
        parse_table("bad-ds.t", "run-proj")
    with pytest.raises(ValueError, match="at most one"):
        parse_table("ds.{namespace}_{namespace}", "run-proj")
    with pytest.raises(ValueError, match="letters, digits, _ and -"):
        parse_table("ds.t!", "run-proj")


@pytest.mark.parametrize("text", [":ds.t", ".ds.t"])
def test_parse_table_refuses_an_empty_project(text):
    with pytest.raises(ValueError):
        parse_table(text, "run-proj")


def test_check_table_name_length():
    spec = parse_table("p:ds.{namespace}", None)
    check_table_name(spec, "a" * MAX_TABLE_NAME)  # exactly at the limit
    with pytest.raises(ValueError, match="1025 characters"):
        check_table_name(spec, "a" * (MAX_TABLE_NAME + 1))
    # Escaping multiplies: 342 dots become 1026 characters.
    with pytest.raises(ValueError, match="BigQuery allows 1024"):
        check_table_name(spec, "." * 342)
    check_table_name(spec, "." * 341)  # 1023
    check_table_name(parse_table("p:ds.t", None), "." * 1000)  # not templated: no change
