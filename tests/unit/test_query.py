"""The job's query checked and normalised at launch (``pipeline.api.query.resolve``)."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.api.query import (
    ALL_NAMESPACES,
    DEFAULT_NAMESPACE_ONLY,
    PropertyRange,
    Query,
    resolve,
)
from pipeline.errors import QueryError

UTC = dt.timezone.utc


def test_resolve_equalities_and_a_range():
    rq = resolve(Query(kind="Item", filters=[("status", "=", "open"), ("size", ">", 5),
                                             ("owner", "==", "ann"), ("size", "<=", 50)]))
    assert rq.kinds == ("Item",) and not rq.per_kind
    assert rq.equalities == (("status", "open"), ("owner", "ann"))
    assert rq.prop_range == PropertyRange(prop="size", lo=5, lo_inclusive=False, hi=50,
                                          hi_inclusive=True)
    assert rq.namespaces is ALL_NAMESPACES and rq.ancestor is None and rq.keys_only
    assert "size > 5" in rq.describe() and "size <= 50" in rq.describe()


def test_resolve_one_sided_ranges():
    r = resolve(Query(kind="Item", filters=[("n", ">=", 3)])).prop_range
    assert (r.prop, r.lo, r.lo_inclusive, r.hi) == ("n", 3, True, None)
    r = resolve(Query(kind="Item", filters=[("n", "<", 3)])).prop_range
    assert (r.lo, r.hi, r.hi_inclusive) == (None, 3, False)
    assert resolve(Query(kind="Item")).prop_range is None
    # Naive datetime bounds are taken as UTC.
    r = resolve(Query(kind="Item", filters=[("t", ">=", dt.datetime(2026, 1, 1))])).prop_range
    assert r.lo == dt.datetime(2026, 1, 1, tzinfo=UTC) and r.lo.tzinfo is not None


def test_resolve_rejects_inequalities_on_two_properties():
    with pytest.raises(QueryError) as e:
        resolve(Query(kind="Item", filters=[("price", ">", 5), ("weight", "<", 3)]))
    assert "price" in str(e.value) and "weight" in str(e.value)


@pytest.mark.parametrize("op", ["!=", "IN", "in", "not-in", "=>"])
def test_resolve_rejects_unsupported_operators(op):
    with pytest.raises(QueryError) as e:
        resolve(Query(kind="Item", filters=[("a", op, 1)]))
    msg = str(e.value)
    assert repr(op) in msg
    for supported in ("=", "<", "<=", ">", ">="):
        assert supported in msg.split("use one of", 1)[1]


@pytest.mark.parametrize("filters, fragment", [
    ([("n", ">", 5), ("n", "<", "z")], "different types"),
    ([("n", ">=", 10), ("n", "<", 5)], "empty"),
    ([("n", ">", 5), ("n", "<", 5)], "empty"),
    ([("n", ">=", 5), ("n", "<", 5)], "empty"),
    ([("n", ">", 1), ("n", ">=", 2)], "two lower bounds"),
    ([("n", "<", 1), ("n", "<=", 2)], "two upper bounds"),
    ([("n", ">", True)], "boolean"),
    ([("n", ">", b"x")], "bytes"),
    ([("__key__", ">", 1)], "__key__"),
    ([("n", "=")], "triple"),
])
def test_resolve_rejects_bad_ranges(filters, fragment):
    with pytest.raises(QueryError, match=fragment):
        resolve(Query(kind="Item", filters=filters))


def test_resolve_allows_an_equal_bounds_range_and_refuses_mixed_numbers():
    r = resolve(Query(kind="Item", filters=[("n", ">=", 5), ("n", "<=", 5)])).prop_range
    assert (r.lo, r.hi) == (5, 5)
    # Datastore orders all integers before all floats: 1 <= n < 2.5 is not a numeric range there.
    with pytest.raises(QueryError, match="different types"):
        resolve(Query(kind="Item", filters=[("n", ">=", 1), ("n", "<", 2.5)]))


@pytest.mark.parametrize("kind", ["__kind__", "__namespace__", "", None])
def test_resolve_rejects_metadata_or_missing_kinds(kind):
    with pytest.raises(QueryError):
        resolve(Query(kind=kind))


def test_resolve_ancestor():
    rq = resolve(Query(kind="Item", ancestor=("Customer", "c1", "Order", 7)))
    assert rq.ancestor == (("Customer", "c1"), ("Order", 7))
    with pytest.raises(QueryError, match="ancestor"):
        resolve(Query(kind="Item", ancestor=("Customer", "c1", "Order")))


def test_resolve_namespaces():
    assert resolve(Query(kind="K", namespaces=DEFAULT_NAMESPACE_ONLY)).namespaces == ("",)
    assert resolve(Query(kind="K", namespaces=["__default__", "a", "a"])).namespaces == ("", "a")
    assert resolve(Query(kind="K", namespaces=["b", "", "__default__"])).namespaces == ("b", "")
    with pytest.raises(QueryError):
        resolve(Query(kind="K", namespaces="a"))
    with pytest.raises(QueryError):
        resolve(Query(kind="K", namespaces=[]))


def test_resolve_rejects_something_that_is_not_a_query():
    with pytest.raises(QueryError, match="pipeline.Query"):
        resolve({"kind": "Item"})


def test_describe_shows_times_in_rfc3339_not_as_python_objects():
    import datetime as dt
    day = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
    rq = resolve(Query(kind="Order", keys_only=False, filters=[
        ("status", "=", "paid"), ("created", ">=", day),
        ("created", "<", day + dt.timedelta(days=1))]))
    text = rq.describe()
    assert "datetime" not in text, text
    assert ("status = 'paid', created >= 2026-11-27T00:00:00+00:00, "
            "created < 2026-11-28T00:00:00+00:00") in text
