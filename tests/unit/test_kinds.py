"""Several kinds, or all (issue 14), without an emulator: the query's kinds, the kind
parameter, the reserved-kind filter over a listing, the units' paths, the summary per kind, the
index advice for several kinds, and the case probe of an output directory."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import pickle

import pytest

from pipeline.api.job import Params
from pipeline.api.query import ALL_KINDS, Query, resolve
from pipeline.core.namespaces import is_reserved
from pipeline.core.summary import build_summary, format_summary
from pipeline.core.totals import NO_KIND, Totals
from pipeline.core.units import ESCAPED_KEPT, entity_kinds, path_part, unit_for
from pipeline.datastore.errors import missing_indexes
from pipeline.errors import QueryError, UsageError
from pipeline.sinks.files import prepare
from pipeline.sinks.files.layout import schema_path
from pipeline.sinks.files.write import SHARD_NAME_KEPT, shard_stem

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


# --- the query's kinds ----------------------------------------------------------------------

def test_one_kind_several_or_all():
    one = resolve(Query(kind="Order"))
    assert one.kinds == ("Order",) and not one.per_kind and one.kinds_text() == "kind Order"
    two = resolve(Query(kind=["Order", "Customer", "Order"]))
    assert two.kinds == ("Order", "Customer") and two.per_kind  # duplicates once, order kept
    assert two.kinds_text() == "kinds Order, Customer"
    for every in (ALL_KINDS, "*"):
        rq = resolve(Query(kind=every))
        assert rq.kinds is None and rq.per_kind and rq.kinds_text() == "every kind"
    assert resolve(Query(kind="*")).fingerprint()["kinds"] is None
    assert pickle.loads(pickle.dumps(ALL_KINDS)) is ALL_KINDS  # the sentinel survives workers


@pytest.mark.parametrize("kind, fragment", [
    (["Order", "*"], "'*' (every kind) cannot be combined"),
    ([ALL_KINDS, "Order"], "cannot be combined"),
    (["Order", "__kind__"], "'__kind__' is a Datastore metadata kind"),
    ("__Stat_Kind__", "metadata kind"),
    ([], "must name an entity kind"),
    (["Order", ""], "does not name an entity kind"),
    (["Order", 3], "does not name an entity kind"),
    (None, "must name an entity kind"),
])
def test_bad_kinds_are_refused_with_what_is_accepted(kind, fragment):
    with pytest.raises(QueryError) as e:
        resolve(Query(kind=kind))
    assert fragment in str(e.value)


@pytest.mark.parametrize("raw, want", [
    ("Order", "Order"), (" Order ", "Order"), ("Order|Customer", ("Order", "Customer")),
    ("*", ALL_KINDS), (" * ", ALL_KINDS),
])
def test_the_kind_parameter(raw, want):
    assert Params({"kind": raw}, NOW).kinds("kind", "Item") == want


def test_the_kind_parameter_default_and_bad_values():
    assert Params({}, NOW).kinds("kind", "Item") == "Item"
    with pytest.raises(UsageError, match=r"\* \(every kind\) cannot be combined"):
        Params({"kind": "*|Order"}, NOW).kinds()
    with pytest.raises(UsageError, match="an empty kind name"):
        Params({"kind": "Order||Log"}, NOW).kinds()


def test_reserved_kinds_are_left_out_of_a_listing():
    listing = ["Order", "__Stat_Kind__", "__namespace__", "Customer", "__kind__", "_private",
               "Order", "__x__"]
    assert entity_kinds(listing) == ["Customer", "Order", "_private"]


@pytest.mark.parametrize("name, reserved", [
    ("__kind__", True), ("__Stat_Kind__", True), ("__x__", True), ("____", True),
    ("__default__", True), ("__a\nb__", True),
    # Starting with __ is not enough (issue 22): the emulator stores all of these.
    ("__private", False), ("_x", False), ("__", False), ("___", False), ("__x_", False),
    ("private__", False), ("__Stat_x", False), ("Order", False), ("_", False),
])
def test_only_names_starting_and_ending_with_two_underscores_are_reserved(name, reserved):
    assert is_reserved(name) is reserved


def test_kinds_starting_with_two_underscores_are_listed_read_and_accepted():
    listing = ["__private", "_x", "__", "___", "__Stat_x", "__Stat_Kind__", "__kind__", "____"]
    assert entity_kinds(listing) == sorted(["__private", "_x", "__", "___", "__Stat_x"])
    assert resolve(Query(kind="__private")).kinds == ("__private",)
    assert resolve(Query(kind=["__", "_x"])).kinds == ("__", "_x")
    with pytest.raises(QueryError, match="metadata kind"):
        resolve(Query(kind="__x__"))


# --- the units' paths -------------------------------------------------------------------------

def test_unit_parts_keep_todays_paths_for_one_kind():
    assert unit_for("acme", "Order", per_kind=False).part == "acme"
    assert unit_for("", "Order", per_kind=False).part == "__default__"
    assert unit_for("acme", "Order", per_kind=True).part == "acme/Order"
    assert unit_for("", "Order", per_kind=True).label == "__default__/Order"


@pytest.mark.parametrize("name", ["a/b", "Ünïcode", "with space", ".hidden", "-dash", "x" * 201,
                                  "..", "日本"])
def test_names_a_file_system_cannot_take_are_escaped_and_distinct(name):
    part = path_part(name)
    assert "/" not in part and part not in (".", "..") and not part.startswith((".", "-"))
    assert part.isascii() and len(part) <= ESCAPED_KEPT + 1 + 64  # was 159 (8 hex digits)
    assert part != path_part(name + "x")


#: Two kind names the old naming (150 escaped characters, ``~``, 8 hex digits of SHA-1) gave
#: one file: a birthday search over 'A' * 200 + str(i) found them at i = 76405.
OLD_COLLISION = ("A" * 200 + "65912", "A" * 200 + "76405")


def test_two_names_the_old_naming_gave_one_file_have_their_own():
    a, b = OLD_COLLISION
    assert hashlib.sha1(a.encode()).hexdigest()[:8] == hashlib.sha1(b.encode()).hexdigest()[:8]
    assert path_part(a) != path_part(b)
    assert path_part(a).split("~")[0] == path_part(b).split("~")[0] == "A" * ESCAPED_KEPT


@pytest.mark.parametrize("a, b", [
    ("A" * 300 + "x", "A" * 300 + "y"),          # long, differing only at the end
    ("a/b" + "c" * 200 + "1", "a/b" + "c" * 200 + "2"),  # escaped, same kept prefix
    ("é" * 100 + "x", "é" * 100 + "y"),          # non-ASCII: the prefix is cut mid-escape
    ("a/b", "a%2Fb"),                            # a name that looks like another's escape
    ("a~b", "a%7Eb"),
])
def test_names_that_escape_to_the_same_prefix_have_their_own_parts(a, b):
    for case_insensitive in (False, True):
        pa, pb = path_part(a, case_insensitive), path_part(b, case_insensitive)
        assert pa != pb and pa.lower() != pb.lower()
        assert len(pa) <= ESCAPED_KEPT + 65 and len(pb) <= ESCAPED_KEPT + 65
    assert path_part(a) == path_part(a)  # the same on every worker


@pytest.mark.parametrize("name", ["Order", "a.b", "_x", "__private", "x" * 200, "9lives"])
def test_a_safe_name_is_never_another_names_escaped_form(name):
    """A safe name stays as it is and holds no ``~``; every escaped part holds one, followed by
    the 64 hex digits of its name's SHA-256: even a safe-looking name built like an escaped
    part (``x~<hex>``) is escaped itself, so it cannot take another name's part."""
    assert path_part(name) == name and "~" not in name
    lookalike = f"{name[:50]}~{hashlib.sha256(name.encode()).hexdigest()}"
    assert path_part(lookalike) != lookalike
    assert path_part(lookalike).count("~") == 1
    assert path_part(lookalike).endswith(hashlib.sha256(lookalike.encode()).hexdigest())


def test_namespaces_and_kinds_of_a_unit_never_share_a_file():
    a, b = OLD_COLLISION
    parts = {unit_for(ns, kind, True).part for ns in ("acme", a, b, "") for kind in (a, b, "Order")}
    assert len(parts) == 12
    assert unit_for(a, "Order", False).part != unit_for(b, "Order", False).part
    assert schema_path("/o", "j", a) != schema_path("/o", "j", b)
    assert schema_path("/o", "j", "Order", True).lower() != \
        schema_path("/o", "j", "order", True).lower()


def test_shard_names_stay_short_and_distinct():
    a, b = OLD_COLLISION
    stems = {shard_stem(unit_for(ns, kind, True).part) for ns in ("acme", a) for kind in (a, b)}
    assert len(stems) == 4 and all(len(s) <= SHARD_NAME_KEPT for s in stems)
    assert shard_stem("acme/Order") == "acme~~Order"


def test_names_differing_only_in_case_on_a_case_insensitive_file_system():
    assert path_part("Order") == "Order" and path_part("order") == "order"
    a, b = path_part("Order", case_insensitive=True), path_part("order", case_insensitive=True)
    assert a.lower() != b.lower()
    assert b == "order"  # all lower case: unchanged
    assert unit_for("Acme", "Order", True, True).part.lower() != \
        unit_for("acme", "order", True, True).part.lower()


def test_the_case_probe_of_an_output_directory(tmp_path, monkeypatch):
    out = tmp_path / "Out" / "not-yet"
    (tmp_path / "Out").mkdir()
    assert prepare.case_insensitive_directory(str(out)) is False  # Linux: case matters
    assert prepare.case_insensitive_directory("gs://bucket/x") is False
    real_exists, real_samefile = os.path.exists, os.path.samefile

    def exists(p):  # a file system that ignores case
        return real_exists(p) or real_exists(str(p).replace("oUT", "Out"))

    def samefile(a, b):
        return real_samefile(str(a).replace("oUT", "Out"), str(b).replace("oUT", "Out"))

    monkeypatch.setattr(prepare.os.path, "exists", exists)
    monkeypatch.setattr(prepare.os.path, "samefile", samefile)
    assert prepare.case_insensitive_directory(str(out)) is True


# --- totals and the summary per kind -----------------------------------------------------------

def _t(entities, ranges=1, **counters):
    return Totals(entities=entities, ranges=ranges, counters=counters)


def test_the_summary_shows_entities_per_namespace_and_kind():
    acme, tiny = Totals(), Totals()
    acme.add_kind("Order", _t(600, 3, keys=600), 100)
    acme.add_kind("Rare", _t(5, keys=5), 100)
    tiny.add_kind("Order", _t(3, keys=3), 100)
    empty = Totals()
    empty.add_kind(NO_KIND, _t(0, 0), 100)  # none of the kinds there: no kind entry
    s = build_summary("export_keys", "every kind", {}, NOW, NOW + dt.timedelta(seconds=2),
                      {"acme": acme, "tiny": tiny, "other": empty}, 100)
    assert s["namespaces"]["acme"]["kinds"]["Rare"]["entities"] == 5
    assert s["totals"]["kinds"]["Order"]["entities"] == 603
    assert s["namespaces"]["other"]["entities"] == 0 and "kinds" not in s["namespaces"]["other"]
    rows = [line.split() for line in format_summary(s).splitlines()]
    assert ["acme", "Order", "600", "3", "keys=600"] in rows
    assert ["acme", "Rare", "5", "1", "keys=5"] in rows
    assert ["acme", "(all)", "605", "4", "keys=605"] in rows
    assert ["tiny", "Order", "3", "1", "keys=3"] in rows
    assert not any(r[:2] == ["tiny", "(all)"] for r in rows)  # one kind: no subtotal row
    assert Totals.from_dict(acme.to_dict()) == acme  # a resumed unit's totals, losslessly


# --- several kinds lacking an index ------------------------------------------------------------

def test_missing_indexes_of_several_kinds_in_one_message():
    rq = resolve(Query(kind=["Order", "Customer"], filters=[("status", "=", "open"),
                                                            ("created", ">=", NOW)]))
    msg = str(missing_indexes(rq, ["Customer", "Order"]))
    assert "lacks one for the kinds Customer, Order" in msg
    assert msg.count("indexes:") == 1
    assert ("- kind: Customer\n  properties:\n  - name: status\n  - name: created\n"
            "- kind: Order\n  properties:\n  - name: status\n  - name: created") in msg
