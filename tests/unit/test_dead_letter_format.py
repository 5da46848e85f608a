"""Dead letters: one format for every source, and one identity (``pipeline.core.deadletters``)."""
from __future__ import annotations

from pipeline.core import deadletters as dl


def _boom():
    raise ValueError("cannot handle 'x'")


def test_a_job_error_names_the_entity_the_error_and_the_last_frames():
    try:
        _boom()
    except ValueError as e:
        d = dl.job_error("j", "acme", "Item", ("Item", "x"), e)
    assert (d["source"], d["job"], d["namespace"], d["kind"], d["key"]) == (
        "job", "j", "acme", "Item", ["Item", "x"])
    assert (d["error"], d["message"]) == ("ValueError", "cannot handle 'x'")
    assert d["traceback"] and "_boom" in d["traceback"][-1] and d["time"]


def test_a_record_error_keeps_a_truncated_repr():
    d = dl.record_error("j", "", "Item", ("Item", 1), 2, {"big": "x" * 5000}, TypeError("no"))
    assert d["source"] == "record" and d["index"] == 2 and d["namespace"] == ""
    assert d["record"].startswith("{'big': 'xxx") and len(d["record"]) < 1100


def test_identity_is_the_same_letter_written_twice_and_only_that():
    a = dl.job_error("j", "acme", "Item", ("Item", "x"), ValueError("a"))
    b = dl.job_error("j", "acme", "Item", ("Item", "x"), ValueError("b"))  # a retried slice
    assert dl.identity(a) == dl.identity(b)
    others = [dl.job_error("j", "other", "Item", ("Item", "x"), ValueError("a")),
              dl.job_error("j", "acme", "Item", ("Item", "y"), ValueError("a")),
              dl.record_error("j", "acme", "Item", ("Item", "x"), 0, {}, ValueError("a")),
              dl.bigquery_rejection("j", "acme", "p.d.t", "id1", [], {})]
    assert len({dl.identity(x) for x in [a, *others]}) == 5


def test_a_slice_writes_its_letters_under_one_name_whatever_the_attempt():
    name = dl.slice_part_name("acme", "acme#3", "[Item(1), -)")
    assert name == dl.slice_part_name("acme", "acme#3", "[Item(1), -)")
    assert name != dl.slice_part_name("acme", "acme#3", "(Item(1), -)")
    assert name != dl.slice_part_name("acme", "acme#4", "[Item(1), -)")
    assert name.startswith("slice-") and name.endswith(".jsonl")


def test_a_restored_files_letters_have_a_part_of_their_own():
    """Issue 22: a backup has a KIND.jsonl per namespace; named after the base name, the
    letters of one namespace's file replaced another's (6 counted, 3 listed)."""
    names = {dl.restore_part_name(f"/o/backup_entities/namespaces/{ns}/Item.jsonl")
             for ns in ("__default__", "acme", "globex")}
    assert len(names) == 3
    path = "gs://b/backup_entities/namespaces/acme/Item.jsonl"
    assert dl.restore_part_name(path) == dl.restore_part_name(path)  # a retry replaces its own
    assert all(n.startswith("restore-") and n.endswith(".jsonl") and len(n) < 100 for n in names)
