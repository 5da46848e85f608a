"""The end of a tenant erase (issue 22), without an emulator: what is left, as the summary
says it and as the run's failure names it; which runs check."""
from __future__ import annotations

import datetime as dt

from jobs.migrations import DeleteEntities
from pipeline.api.job import Params
from pipeline.core.erase import erase_failure, erase_lines, erase_section, left_in_namespace
from pipeline.core.summary import format_summary
from pipeline.graph.erase import checks_erase
from tests.support.configs import run_config

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def test_an_empty_namespace_is_said_to_be_empty():
    section = erase_section({"t1": [], "__default__": []})
    assert section == {"checked": 2, "left": {}}
    assert erase_failure(section) is None and erase_failure(None) is None
    assert erase_lines(section) == ["erase checked: the 2 namespaces read hold no entity of any "
                                    "kind"]


def test_what_is_left_is_named_by_kind_count_and_key():
    keys = [("Order", 1), ("__private", "a"), ("Order", 2), ("Customer", "c", "Order", 3)]
    section = erase_section({"t1": keys, "t2": []})
    assert section["checked"] == 2 and list(section["left"]) == ["t1"]
    entry = section["left"]["t1"]
    assert entry["entities"] == 4 and not entry["at_least"]
    assert entry["kinds"] == {"Order": 3, "__private": 1}  # the kind is the key's last
    assert entry["sample"][0] == "Order(1)" and entry["sample"][3] == "Customer('c')/Order(3)"
    failure = erase_failure(section)
    assert failure.startswith("the erase is not complete: namespace t1 still holds 4 entities")
    assert "Order 3, __private 1" in failure and "__private('a')" in failure
    assert erase_lines(section)[0] == ("erase NOT complete: 1 of the 2 namespaces read still hold "
                                       "entities:")


def test_a_count_at_the_limit_is_at_least():
    entry = left_in_namespace([("K", i) for i in range(1, 11)], limit=10)
    assert entry["at_least"] and len(entry["sample"]) == 5
    assert "at least 10" in erase_failure({"checked": 1, "left": {"t": entry}})


def test_many_namespaces_left_are_named_up_to_five():
    section = erase_section({f"t{i}": [("K", 1)] for i in range(8)})
    failure = erase_failure(section)
    assert failure.count("still holds") == 5 and "and 3 more namespaces" in failure


def test_the_printed_summary_ends_with_the_check():
    summary = {"job": "delete_entities", "query": "every kind", "seconds": 1.0,
               "entities_per_second": 1.0, "namespaces": {},
               "totals": {"entities": 0, "ranges": 0, "records": 0, "counters": {}},
               "erase": erase_section({"t1": [("Late", 1)]})}
    assert format_summary(summary).splitlines()[-1].startswith(
        "  namespace t1 still holds 1 entity (Late 1")


def test_only_an_unfiltered_delete_of_every_kind_empties_namespaces():
    def empties(**params) -> bool:
        job = DeleteEntities()
        job.query(Params(params, NOW))
        return job.empties_namespaces

    assert empties(kind="*")
    assert not empties(kind="Order") and not empties(kind="Order|Customer")
    assert not empties(kind="*", property="status", value="old")
    assert not empties(kind="*", before="2026-01-01T00:00:00Z")


def test_which_runs_check_the_erase():
    def checks(*args: str) -> bool:
        return checks_erase(run_config("delete_entities", "--undo_log=false", *args))

    assert checks("--params", "kind=*", "--writes=transactional")
    assert checks("--params", "kind=*", "--namespaces", "t1", "--writes=blind")
    assert not checks("--params", "kind=*")  # a dry run deletes nothing
    assert not checks("--params", "kind=*", "--writes=dry_run")
    assert not checks("--params", "kind=Order", "--writes=transactional")
    assert not checks("--params", "kind=*,property=a,value=b", "--writes=transactional")
    assert not checks_erase(run_config("rename_property", "--params", "kind=*,from=a,to=b",
                                       "--writes=transactional", "--undo_log=false"))
